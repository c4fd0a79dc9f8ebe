import srp from 'secure-remote-password/client.js'
import { SecureLoginError } from '../protocol/errors.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword, type PasswordKdf } from './password-stretch.js'
import { RFC5054_2048 } from './srp-group.js'

// The client side of SRP-6a is the secure-remote-password package (RFC 5054 2048-bit group,
// SHA-256, x = H(s, H(I | ':' | P'))), where P' is the password stretched with scrypt first
// (password-stretch.ts). The password is used here and goes nowhere else.

export interface Registration {
  salt: string
  verifier: string
  kdf: PasswordKdf
}

/** s = random, x = H(s, H(I | ':' | P')), v = g^x mod N: what the server stores instead of a password. */
export async function createRegistration(
  username: string,
  password: string,
  kdf: PasswordKdf = DEFAULT_PASSWORD_KDF,
): Promise<Registration> {
  const salt = srp.generateSalt()
  const x = await derivePrivateKey({ salt, username, password, kdf })
  return { salt, verifier: srp.deriveVerifier(x), kdf }
}

/** P' = scrypt(p, s), then x = H(s, H(I | ':' | P')): the cost of every offline guess. */
export async function derivePrivateKey(opts: {
  salt: string
  username: string
  password: string
  kdf: PasswordKdf
}): Promise<string> {
  return srp.derivePrivateKey(opts.salt, opts.username, await stretchPassword(opts.password, opts.salt, opts.kdf))
}

export interface ClientEphemeral {
  A: string
  a: string
}

/** A = g^a mod N, a random. */
export function startClientLogin(): ClientEphemeral {
  const { public: A, secret: a } = srp.generateEphemeral()
  return { A, a }
}

export interface ClientSession {
  M1: string
  K: string
}

/** From the server's salt and B, and x: u = H(A, B), S = (B - kg^x)^(a + ux), K = H(S), M1. */
export function deriveClientSession(opts: {
  ephemeral: ClientEphemeral
  salt: string
  B: string
  username: string
  x: string
}): ClientSession {
  // The same range the server holds A to: 0 < B < N as sent (the package checks only B mod N).
  const B = /^[0-9a-f]+$/i.test(opts.B) ? BigInt(`0x${opts.B}`) : 0n
  if (B <= 0n || B >= RFC5054_2048.N) throw serverAuthFailed(new RangeError('B is outside 0 < B < N'))
  try {
    const { proof: M1, key: K } = srp.deriveSession(opts.ephemeral.a, opts.B, opts.salt, opts.username, opts.x)
    return { M1, K }
  } catch (cause) {
    // The package throws only when B mod N == 0, which an honest server never sends.
    throw serverAuthFailed(cause)
  }
}

/** M2 = H(A, M1, K): the server proves it holds the verifier (mutual authentication). */
export function verifyServerProof(opts: { A: string; session: ClientSession; M2: string }): void {
  try {
    srp.verifySession(opts.A, { proof: opts.session.M1, key: opts.session.K }, opts.M2)
  } catch (cause) {
    throw serverAuthFailed(cause)
  }
}

function serverAuthFailed(cause: unknown): SecureLoginError {
  return new SecureLoginError('ERR_SERVER_AUTH_FAILED', 'the server could not prove that it holds your verifier', {
    hint: 'this server may be an impostor; do not send it a code, and tell its administrator',
    cause,
  })
}
