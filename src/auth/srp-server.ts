import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { authFailed } from '../protocol/errors.js'
import { RFC5054_2048 } from './srp-group.js'
import * as srp from './srp-math.js'

// The server side of SRP-6a, byte for byte what the secure-remote-password package's server.js
// computes (our client, src/auth/srp-client.ts, is byte for byte its client.js), with the
// exponentiations on OpenSSL and the client's proof compared in constant time.

/** The package's parameters: the RFC 5054 2048-bit group, SHA-256, k = H(N | g) with g unpadded. */
const params: srp.SrpParams = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
/** A, B and v travel as N's length in bytes, the proofs and K as one SHA-256 output. */
const INT_BYTES = params.group.byteLength
const HASH_BYTES = 32

export interface ServerEphemeral {
  B: string
  b: string
}

/** B = (k * v + g^b) % N, b 32 random bytes (as the package draws it). */
export function startServerLogin(verifier: string): ServerEphemeral {
  const b = randomBytes(HASH_BYTES)
  const B = srp.B(params, numberBytes(verifier), b)
  const ephemeral = { B: B.toString('hex'), b: b.toString('hex') }
  b.fill(0)
  return ephemeral
}

/**
 * Checks M1 and returns M2 = H(A, M1, K). Every way this can fail (A outside 0 < A < N, a proof
 * of the wrong length, a wrong proof) is the same ERR_AUTH_FAILED, so the client learns nothing
 * about which. B is the one startServerLogin made, not made again.
 */
export interface ServerProofInput {
  ephemeral: ServerEphemeral
  A: string
  salt: string
  username: string
  verifier: string
  M1: string
}

export function finishServerLogin(opts: ServerProofInput): { M2: string; K: string } {
  let session: { M1: Buffer; M2: Buffer; K: Buffer }
  let M1: Buffer
  try {
    // The wire carries A as PAD(A), which is what the package hashes for a 512-digit A.
    const A = hexBytes(opts.A, INT_BYTES)
    const B = hexBytes(opts.ephemeral.B, INT_BYTES)
    session = deriveSession(
      A,
      B,
      hexBytes(opts.ephemeral.b),
      hexBytes(opts.salt),
      opts.username,
      numberBytes(opts.verifier),
    )
    M1 = hexBytes(opts.M1)
  } catch (cause) {
    throw Object.assign(authFailed(), { cause })
  }
  // Length first (it is no secret), then every byte, whatever the first wrong one.
  const proven = M1.length === session.M1.length && timingSafeEqual(M1, session.M1)
  const result = { M2: session.M2.toString('hex'), K: session.K.toString('hex') }
  session.K.fill(0)
  if (!proven) throw authFailed()
  return result
}

function deriveSession(A: Buffer, B: Buffer, b: Buffer, s: Buffer, I: string, v: Buffer) {
  // u = H(PAD(A) | PAD(B))
  const u = srp.u(params, A, B)
  // S = (A * v^u) ^ b % N; refuses A % N == 0 (RFC 5054 2.5.4) and any A >= N
  const S = srp.S(params, A, v, u, b)
  b.fill(0)
  // K = H(S)
  const K = srp.K(params, S)
  S.fill(0)
  // M1 = H(H(N) xor H(g) | H(I) | s | A | B | K)
  const M1 = srp.M1(params, I, s, A, B, K)
  // M2 = H(A | M1 | K)
  const M2 = srp.M2(params, A, M1, K)
  return { M1, M2, K }
}

/**
 * A salt and verifier for a name that has no account, derived from the server secret so they
 * are stable for that name and look like a real user's; the login then fails at M1 as a wrong
 * password does. The salt is the only part anyone sees, and is what it always was. The
 * verifier is never sent (B = kv + g^b hides it), so it is 256 bytes of HMAC output mod N
 * rather than g^x: a real name's login_start does no exponentiation for v, and a decoy must
 * not do one either, or the extra 0.5 ms would say that the name has no account
 * (bench/enumeration.mjs). Nobody knows a password for it, so M1 always fails.
 */
export function deriveDecoyCredentials(serverSecret: Buffer, username: string): { salt: string; verifier: string } {
  const salt = createHmac('sha256', serverSecret).update(`securelogin decoy salt\0${username}`).digest('hex')
  const blocks = Array.from({ length: INT_BYTES / 32 }, (_, i) =>
    createHmac('sha256', serverSecret).update(`securelogin decoy v\0${username}\0${i}`).digest(),
  )
  const wide = Buffer.concat(blocks)
  const v = BigInt(`0x${wide.toString('hex')}`) % params.group.N
  wide.fill(0)
  return { salt, verifier: v.toString(16).padStart(INT_BYTES * 2, '0') }
}

/**
 * Whether a verifier is a usable element of the group: 1 < v < N. With v = 0 (or N, 0 mod N)
 * S = (A * v^u)^b = 0, so an M1 made with S = 0 proves any password; with v = 1, S = A^b and
 * g^b = B - k, both known to the client, so again no password is needed. A client that sends
 * such a verifier is broken or hostile: it is refused at registration and at a password change.
 */
export function isUsableVerifier(hex: string): boolean {
  const v = BigInt(`0x${hex}`)
  return v > 1n && v < params.group.N
}

/** Whether the client's A may start a login: A mod N != 0 (RFC 5054 2.5.4), and A < N as sent. */
export function isUsableA(hex: string): boolean {
  const A = BigInt(`0x${hex}`)
  return A > 0n && A < params.group.N
}

/** Hex digits in pairs to bytes as given (leading zeros kept: they are hashed); `bytes` if the length is fixed. */
function hexBytes(hex: string, bytes?: number): Buffer {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new TypeError('SRP: expected an even number of hex digits')
  if (bytes !== undefined && hex.length !== bytes * 2)
    throw new RangeError(`SRP: expected ${bytes} bytes, got ${hex.length / 2}`)
  return Buffer.from(hex, 'hex')
}

/** A number in hex (the verifier, used only as a number): any length. */
function numberBytes(hex: string): Buffer {
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new TypeError('SRP: expected hex digits')
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex')
}

/**
 * Pays the one-off cost of the first login (OpenSSL checks N when the exponentiation engine is
 * made, about 0.5 s of blocked event loop) at start-up, before any client waits on it.
 */
export function prepareServerSrp(): void {
  startServerLogin('2'.padStart(512, '0'))
}
