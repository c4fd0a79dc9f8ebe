import { createDiffieHellman, createHash, type DiffieHellman } from 'node:crypto'
import type { SrpGroup } from './srp-group.js'

// SRP-6a maths (RFC 5054 2.4-2.6, RFC 2945 3), pure and parameterised, so the same code meets
// RFC 5054 appendix B's vectors and the secure-remote-password package byte for byte.
//
// Integers come in and go out as big-endian bytes. Every integer that goes into H is PAD()ed to
// N's length (RFC 5054 2.6) except g, which is hashed unpadded in H(g) and, under the package's
// k rule, in k; the salt s and the hash outputs are hashed as the bytes they are. The package
// hashes a value as the bytes of its hex string: A, s as the client sent them, everything it
// computes mod N zero-padded to N's length. So with A carried at N's length (our wire does), its
// bytes are exactly these.
//
// The modular exponentiations run on OpenSSL (Node's DiffieHellman: computeSecret(y) = y^e mod N
// for the private key e, in constant time for e); multiplication and addition mod N are BigInt.
// The server and the client use the same functions; the client's params pick a DiffieHellman
// object that costs nothing to create (see SrpParams.opensslModulus).

export type SrpHash = 'sha1' | 'sha256'

/**
 * How k is made. RFC 5054 2.5.3 pads g to N's length: k = H(N | PAD(g)). The secure-remote-password
 * package hashes g as its one byte: k = H(N | g). Nothing else differs between the two.
 */
export type SrpKRule = 'rfc5054' | 'package'

export interface SrpParams {
  readonly group: SrpGroup
  readonly hash: SrpHash
  readonly kRule: SrpKRule
  /** The modulus of the OpenSSL object that computes y^e mod N (see modPow): 'N' when absent. */
  readonly opensslModulus?: OpensslModulus
}

/**
 * 'N': a DiffieHellman object on N itself. Node runs OpenSSL's DH_check when it makes one,
 * primality tests of N and (N - 1) / 2 that cost 0.2 to 0.6 s of CPU for the 2048-bit group, once
 * per process: a server pays it at start-up (prepareServerSrp). '3N': one on 3N, with the result
 * taken mod N, since (y^e mod 3N) mod N = y^e mod N. DH_check finds 3N composite by trial division
 * at once, so it costs well under a millisecond: for a process that does one login, the client,
 * where the check would cost more than the login. The exponentiation itself is OpenSSL's same
 * constant-time one, on a modulus two bits longer.
 */
export type OpensslModulus = 'N' | '3N'

/** x = H(s | H(I | ":" | P)): the private key from the salt, the user name and the password (RFC 5054 2.4). */
export function x(params: SrpParams, s: Buffer, I: string, P: string): Buffer {
  return H(params, s, H(params, `${I}:${P}`))
}

/** v = g^x % N: the verifier the server keeps instead of the password (RFC 5054 2.4). */
export function v(params: SrpParams, x: Buffer): Buffer {
  const { group } = params
  return PAD(group, modPow(group, group.g, x, params.opensslModulus))
}

/** A = g^a % N: the client's public ephemeral value (RFC 5054 2.5.4). */
export function A(params: SrpParams, a: Buffer): Buffer {
  const { group } = params
  return PAD(group, modPow(group, group.g, a, params.opensslModulus))
}

/** k = H(N | PAD(g)) under RFC 5054, k = H(N | g) under the package's rule: the multiplier. */
export function k(params: SrpParams): Buffer {
  const { group } = params
  return H(params, group.NBytes, params.kRule === 'rfc5054' ? PAD(group, group.g) : group.gBytes)
}

/** B = (k * v + g^b) % N: the server's public ephemeral value (RFC 5054 2.5.3). */
export function B(params: SrpParams, v: Buffer, b: Buffer): Buffer {
  const { group } = params
  const { N } = group
  const kv = (toBigInt(k(params)) * toBigInt(v)) % N
  return PAD(group, (kv + modPow(group, group.g, b, params.opensslModulus)) % N)
}

/** u = H(PAD(A) | PAD(B)): the scrambling parameter (RFC 5054 2.6). */
export function u(params: SrpParams, A: Buffer, B: Buffer): Buffer {
  const { group } = params
  return H(params, PAD(group, A), PAD(group, B))
}

/**
 * S = (A * v^u) ^ b % N: the server's premaster secret (RFC 5054 2.6). Refuses an A outside
 * 0 < A < N: RFC 5054 2.5.4 makes the host abort on A % N == 0, since A = 0 (or N, 2N, ...) makes
 * S = 0 whatever the password; an honest client never sends A >= N.
 */
export function S(params: SrpParams, A: Buffer, v: Buffer, u: Buffer, b: Buffer): Buffer {
  const { group } = params
  const { N } = group
  const Anum = toBigInt(A)
  if (Anum <= 0n || Anum >= N) throw new RangeError('SRP: A must satisfy 0 < A < N')
  // A * v^u % N
  const base = (Anum * modPow(group, toBigInt(v), u, params.opensslModulus)) % N
  // (A * v^u) ^ b % N
  return PAD(group, modPow(group, base, b, params.opensslModulus))
}

/**
 * S = (B - k * g^x) ^ (a + u * x) % N: the client's premaster secret (RFC 5054 2.6), the same S
 * as the server's. Refuses a B outside 0 < B < N: RFC 5054 2.5.4 makes the client abort on
 * B % N == 0, and an honest server never sends B >= N (the package would reduce it here but hash
 * it as sent in u and M1).
 */
export function clientS(params: SrpParams, B: Buffer, x: Buffer, a: Buffer, u: Buffer): Buffer {
  const { group } = params
  const { N } = group
  const Bnum = toBigInt(B)
  if (Bnum <= 0n || Bnum >= N) throw new RangeError('SRP: B must satisfy 0 < B < N')
  // k * g^x % N
  const kgx = (toBigInt(k(params)) * modPow(group, group.g, x, params.opensslModulus)) % N
  // B - k * g^x is negative when k * g^x % N > B: taken into 0..N-1, as jsbn's modPow (the package's) takes it
  const base = (Bnum - kgx + N) % N
  // a + u * x: an exponent of up to 513 bits, not reduced (nothing here knows the group's order)
  const exponent = bytesOf(toBigInt(a) + toBigInt(u) * toBigInt(x))
  try {
    return PAD(group, modPow(group, base, exponent, params.opensslModulus))
  } finally {
    exponent.fill(0)
  }
}

/**
 * K = H(S): the session key, as the package makes it. RFC 5054 hands S to the TLS PRF instead, and
 * RFC 2945 3.1 would interleave two hashes; neither applies to us.
 */
export function K(params: SrpParams, S: Buffer): Buffer {
  return H(params, PAD(params.group, S))
}

/**
 * M1 = H(H(N) xor H(g) | H(I) | s | PAD(A) | PAD(B) | K): the client's proof (RFC 2945 3, as the
 * package computes it; RFC 5054 has no M1, the TLS Finished messages do its work).
 */
export function M1(params: SrpParams, I: string, s: Buffer, A: Buffer, B: Buffer, K: Buffer): Buffer {
  const { group } = params
  const HN = H(params, group.NBytes)
  const Hg = H(params, group.gBytes)
  for (let i = 0; i < HN.length; i++) HN[i] ^= Hg[i]!
  return H(params, HN, H(params, I), s, PAD(group, A), PAD(group, B), K)
}

/** M2 = H(PAD(A) | M1 | K): the server's proof that it holds the verifier (RFC 2945 3). */
export function M2(params: SrpParams, A: Buffer, M1: Buffer, K: Buffer): Buffer {
  return H(params, PAD(params.group, A), M1, K)
}

/** H(...): one hash over the parts in order; a string part is hashed as UTF-8. */
function H(params: SrpParams, ...parts: Array<Buffer | string>): Buffer {
  const hash = createHash(params.hash)
  for (const part of parts) hash.update(part)
  return hash.digest()
}

/** PAD(x): x as big-endian bytes, left-padded with zeros to N's length, as RFC 5054 hashes integers. */
function PAD(group: SrpGroup, x: bigint | Buffer): Buffer {
  if (Buffer.isBuffer(x) && x.length === group.byteLength) return x
  const n = Buffer.isBuffer(x) ? toBigInt(x) : x
  const hex = n.toString(16)
  if (n < 0n || hex.length > group.byteLength * 2)
    throw new RangeError(`SRP: a value does not fit in ${group.byteLength} bytes`)
  return Buffer.from(hex.padStart(group.byteLength * 2, '0'), 'hex')
}

function toBigInt(bytes: Buffer): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${bytes.toString('hex')}`)
}

/** A non-negative integer as its shortest big-endian bytes (0 as one zero byte). */
function bytesOf(n: bigint): Buffer {
  const hex = n.toString(16)
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex')
}

// One DiffieHellman object per group and modulus: creating one on N runs OpenSSL's DH_check, a
// primality test of N and of (N - 1) / 2 that costs about 0.6 s for the 2048-bit group, so it is
// paid once, at the first use (on 3N the check stops at trial division). Each use sets the
// exponent and computes in one synchronous step, so two logins never see each other's exponent.
const engines: Record<OpensslModulus, WeakMap<SrpGroup, DiffieHellman>> = { N: new WeakMap(), '3N': new WeakMap() }
const ONE = Buffer.from([1])

/**
 * y^e mod N. OpenSSL computes it, but refuses what a Diffie-Hellman peer must never send or get
 * (SP 800-56A 5.6.2.3, 5.7.1.1): an exponent of 0, a base of 0, 1 or M - 1, a result of 1 or
 * M - 1, for its modulus M (N or 3N). The first three have plain answers here (y is reduced mod
 * N first, so y < M - 1 on 3N); the last cannot happen in a safe-prime group for an exponent
 * below q = (N - 1) / 2 (every SRP exponent is a hash, 32 random bytes or a + u * x, under 2^514),
 * since y^e would be 1 or -1 mod N, and for a larger one BigInt computes it.
 */
export function modPow(group: SrpGroup, base: bigint, exponent: Buffer, modulus: OpensslModulus = 'N'): bigint {
  const { N } = group
  const y = ((base % N) + N) % N
  // Read the exponent (b, a secret, most of the time) without a branch on any of its bytes.
  let nonZero = 0
  for (const byte of exponent) nonZero |= byte
  if (nonZero === 0) return 1n
  if (y === 0n || y === 1n) return y
  if (y === N - 1n) return (exponent[exponent.length - 1]! & 1) === 1 ? y : 1n
  let engine = engines[modulus].get(group)
  if (engine === undefined) {
    engine = createDiffieHellman(modulus === 'N' ? group.NBytes : bytesOf(3n * N), group.gBytes)
    engines[modulus].set(group, engine)
  }
  engine.setPrivateKey(exponent)
  try {
    // Node pads the result to its modulus's length (older versions stripped leading zeros): read
    // it as a number, so either way gives the same value; on 3N, mod N is the answer.
    return toBigInt(engine.computeSecret(PAD(group, y))) % N
  } catch {
    return slowModPow(y, toBigInt(exponent), N)
  } finally {
    // Replacing the exponent makes OpenSSL clear the old one (BN_clear_free).
    engine.setPrivateKey(ONE)
  }
}

/** Square and multiply in BigInt: only for the results OpenSSL refuses to return (see modPow). */
function slowModPow(y: bigint, e: bigint, N: bigint): bigint {
  let result = 1n
  for (let bit = BigInt(e.toString(2).length - 1); bit >= 0n; bit--) {
    result = (result * result) % N
    if ((e >> bit) & 1n) result = (result * y) % N
  }
  return result
}
