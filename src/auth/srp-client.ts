import { randomBytes, timingSafeEqual } from 'node:crypto'
import { SecureLoginError } from '../protocol/errors.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword, type PasswordKdf } from './password-stretch.js'
import { RFC5054_2048 } from './srp-group.js'
import * as srp from './srp-math.js'

// The client side of SRP-6a, byte for byte what the secure-remote-password package's client.js
// computes (RFC 5054 2048-bit group, SHA-256, k = H(N | g), x = H(s, H(I | ':' | P'))), where P'
// is the password stretched with scrypt first (password-stretch.ts), with the exponentiations on
// OpenSSL (srp-math.ts) and the server's proof compared in constant time: the package's own maths
// (jsbn) cost each login some twenty times the CPU, and it compares M2 as numbers. The password is
// used here and goes nowhere else.

/**
 * The package's parameters. A client process does about one login, so its exponentiations run
 * on OpenSSL's object on 3N, which costs nothing to make; the server's, on N, first spends about
 * 0.2 s checking N, more than the login itself (srp-math.ts, OpensslModulus).
 */
const params: srp.SrpParams = { group: RFC5054_2048, hash: 'sha256', kRule: 'package', opensslModulus: '3N' }
/** A, B and v travel as N's length in bytes; s, a, the proofs and K as one SHA-256 output. */
const INT_BYTES = params.group.byteLength
const HASH_BYTES = 32

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
  // s: 32 random bytes, as the package's generateSalt draws them
  const salt = randomBytes(HASH_BYTES).toString('hex')
  const x = await derivePrivateKey({ salt, username, password, kdf })
  const xBytes = Buffer.from(x, 'hex')
  // v = g^x % N, 512 hex digits
  const verifier = srp.v(params, xBytes).toString('hex')
  xBytes.fill(0)
  return { salt, verifier, kdf }
}

/** P' = scrypt(p, s), then x = H(s, H(I | ':' | P')): the cost of every offline guess. */
export async function derivePrivateKey(opts: {
  salt: string
  username: string
  password: string
  kdf: PasswordKdf
}): Promise<string> {
  // Checked before the stretch: the package would read other text as some other number.
  const s = hexBytes(opts.salt, 'salt')
  const stretched = await stretchPassword(opts.password, opts.salt, opts.kdf)
  // x = H(s | H(I | ":" | P')), I and P' hashed as UTF-8 text (the package's String(...))
  const x = srp.x(params, s, opts.username, stretched)
  const hex = x.toString('hex')
  x.fill(0)
  return hex
}

export interface ClientEphemeral {
  A: string
  a: string
}

/** A = g^a mod N, a random. */
export function startClientLogin(): ClientEphemeral {
  // a: 32 random bytes, as the package's generateEphemeral draws them
  const a = randomBytes(HASH_BYTES)
  // A = g^a % N, 512 hex digits
  const ephemeral = { A: srp.A(params, a).toString('hex'), a: a.toString('hex') }
  a.fill(0)
  return ephemeral
}

export interface ClientSession {
  M1: string
  K: string
}

/**
 * From the server's salt and B, and x: u = H(A, B), S = (B - kg^x)^(a + ux), K = H(S), M1.
 * A B outside 0 < B < N, or not 512 hex digits as the wire carries it, is ERR_SERVER_AUTH_FAILED
 * (the package checks only B mod N != 0, and hashes B as the digits it was sent).
 */
export function deriveClientSession(opts: {
  ephemeral: ClientEphemeral
  salt: string
  B: string
  username: string
  x: string
}): ClientSession {
  let s: Buffer
  let B: Buffer
  try {
    s = hexBytes(opts.salt, 'salt')
    B = hexBytes(opts.B, 'B', INT_BYTES)
  } catch (cause) {
    throw serverAuthFailed(cause)
  }
  // A as startClientLogin made it from a (the package makes it again from a: the same bytes)
  const A = hexBytes(opts.ephemeral.A, 'A', INT_BYTES)
  const a = hexBytes(opts.ephemeral.a, 'a')
  const x = hexBytes(opts.x, 'x')
  let S: Buffer
  try {
    // u = H(PAD(A) | PAD(B))
    const u = srp.u(params, A, B)
    // S = (B - k * g^x) ^ (a + u * x) % N; refuses a B outside 0 < B < N
    S = srp.clientS(params, B, x, a, u)
  } catch (cause) {
    throw serverAuthFailed(cause)
  } finally {
    a.fill(0)
    x.fill(0)
  }
  // K = H(S)
  const K = srp.K(params, S)
  S.fill(0)
  // M1 = H(H(N) xor H(g) | H(I) | s | A | B | K)
  const M1 = srp.M1(params, opts.username, s, A, B, K)
  const session = { M1: M1.toString('hex'), K: K.toString('hex') }
  K.fill(0)
  return session
}

/**
 * M2 = H(A, M1, K): the server proves it holds the verifier (mutual authentication). The M2 sent
 * must be those 32 bytes (the package compares numbers, so it would also take them with a
 * leading zero byte added or dropped), compared in constant time.
 */
export function verifyServerProof(opts: { A: string; session: ClientSession; M2: string }): void {
  let expected: Buffer
  let M2: Buffer
  try {
    const A = hexBytes(opts.A, 'A', INT_BYTES)
    const K = hexBytes(opts.session.K, 'K', HASH_BYTES)
    // M2 = H(PAD(A) | M1 | K)
    expected = srp.M2(params, A, hexBytes(opts.session.M1, 'M1', HASH_BYTES), K)
    K.fill(0)
    M2 = hexBytes(opts.M2, 'M2')
  } catch (cause) {
    throw serverAuthFailed(cause)
  }
  // Length first (it is no secret), then every byte, whatever the first wrong one.
  if (M2.length !== expected.length || !timingSafeEqual(M2, expected))
    throw serverAuthFailed(new Error('M2 is not H(A | M1 | K)'))
}

/** Hex digits in pairs to bytes as given (leading zeros kept: they are hashed); `bytes` if the length is fixed. */
function hexBytes(hex: string, name: string, bytes?: number): Buffer {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new TypeError(`SRP: ${name} must be hex digits in pairs`)
  if (bytes !== undefined && hex.length !== bytes * 2)
    throw new RangeError(`SRP: ${name} must be ${bytes} bytes, got ${hex.length / 2}`)
  return Buffer.from(hex, 'hex')
}

function serverAuthFailed(cause: unknown): SecureLoginError {
  return new SecureLoginError('ERR_SERVER_AUTH_FAILED', 'the server could not prove that it holds your verifier', {
    hint: 'this server may be an impostor; do not send it a code, and tell its administrator',
    cause,
  })
}
