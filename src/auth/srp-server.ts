import { createHmac } from 'node:crypto'
import srp from 'secure-remote-password/server.js'
import srpClient from 'secure-remote-password/client.js'
import { authFailed } from '../protocol/errors.js'

// The server side of SRP-6a, wire-compatible with the secure-remote-password package.

export interface ServerEphemeral {
  B: string
  b: string
}

/** B = kv + g^b mod N, b random. */
export function startServerLogin(verifier: string): ServerEphemeral {
  const { public: B, secret: b } = srp.generateEphemeral(verifier)
  return { B, b }
}

/**
 * Checks M1 and returns M2 = H(A, M1, K). Every way this can fail (A mod N == 0, a wrong
 * proof) is the same ERR_AUTH_FAILED, so the client learns nothing about which.
 */
export function finishServerLogin(opts: {
  ephemeral: ServerEphemeral
  A: string
  salt: string
  username: string
  verifier: string
  M1: string
}): { M2: string; K: string } {
  try {
    const session = srp.deriveSession(opts.ephemeral.b, opts.A, opts.salt, opts.username, opts.verifier, opts.M1)
    return { M2: session.proof, K: session.key }
  } catch (cause) {
    throw Object.assign(authFailed(), { cause })
  }
}

/**
 * A salt and verifier for a name that has no account, derived from the server secret so they
 * are stable for that name and look like a real user's; the login then fails at M1 as a wrong
 * password does.
 */
export function deriveDecoyCredentials(serverSecret: Buffer, username: string): { salt: string; verifier: string } {
  const salt = createHmac('sha256', serverSecret).update(`securelogin decoy salt\0${username}`).digest('hex')
  const x = createHmac('sha256', serverSecret).update(`securelogin decoy x\0${username}`).digest('hex')
  return { salt, verifier: srpClient.deriveVerifier(x) }
}
