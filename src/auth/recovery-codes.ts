import { timingSafeEqual } from 'node:crypto'
import { scryptAsync, type ScryptCost } from '../base/scrypt.js'
import { SecureLoginError } from '../protocol/errors.js'

// Recovery codes: single-use stand-ins for a TOTP code when the phone is lost. Each is 10
// characters of Crockford's base32 (50 random bits), shown once, and stored only as a slow hash.

export const RECOVERY_CODE_COUNT = 10
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz' // Crockford: no i, l, o, u
const CODE_CHARS = 10
/** What a code looks like on the wire: two groups of five. */
export const RECOVERY_CODE_PATTERN = /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/

export interface RecoveryKdf {
  name: 'scrypt'
  logN: number
  r: number
  p: number
}

/**
 * 16 MiB, about 65 ms here. The codes carry 50 random bits each, so the hash need not make up
 * for a weak secret; it makes a stolen store's hashes cost 2^49 scrypt calls per code.
 */
export const RECOVERY_KDF: RecoveryKdf = { name: 'scrypt', logN: 14, r: 8, p: 1 }

/** The stored form: one salt per set, one hash per code, null once a code has been used. */
export interface RecoveryHashes {
  kdf: RecoveryKdf
  salt: string
  hashes: Array<string | null>
}

/** Ten fresh codes, `xxxxx-xxxxx`, from `random` (rejection-free: 32 divides 256). */
export function generateRecoveryCodes(random: (bytes: number) => Buffer): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const bytes = random(CODE_CHARS)
    const chars = [...bytes].map((byte) => ALPHABET[byte % 32]!)
    bytes.fill(0)
    return `${chars.slice(0, 5).join('')}-${chars.slice(5).join('')}`
  })
}

/**
 * What a person typed, as the code's canonical form: case, spaces and dashes do not matter, and
 * Crockford's look-alikes are read as the digits they resemble (o -> 0, i and l -> 1).
 */
export function normalizeRecoveryCode(input: string): string {
  // ASCII only, as README says: a Unicode-aware lower-casing would read the Kelvin sign as k,
  // and \s would take no-break and other spaces; a code typed with those is refused instead.
  const chars = input
    .replace(/[A-Z]/g, (c) => c.toLowerCase())
    .replace(/[ \t\r\n-]+/g, '')
    .replace(/o/g, '0')
    .replace(/[il]/g, '1')
  if (chars.length !== CODE_CHARS || [...chars].some((c) => !ALPHABET.includes(c))) {
    throw new SecureLoginError(
      'ERR_USAGE',
      `a recovery code is 10 letters and digits (xxxxx-xxxxx), got ${chars.length} characters`,
      {
        hint: 'use one of the codes shown when you registered or last renewed them',
      },
    )
  }
  return `${chars.slice(0, 5)}-${chars.slice(5)}`
}

/**
 * How a caller runs each scrypt call: by default scryptAsync, on the libuv thread pool; the server
 * gives its KDF slot (src/server/kdf-slot.ts), one call at a time on a low-priority thread.
 */
export type KdfRunner = (input: Buffer, salt: Buffer, cost: ScryptCost, opts?: { urgent?: boolean }) => Promise<Buffer>

const onThreadPool: KdfRunner = (input, salt, cost) => scryptAsync(input, salt, cost)

async function hashCode(
  code: string,
  salt: Buffer,
  kdf: RecoveryKdf,
  run: KdfRunner,
  opts: { urgent?: boolean } = {},
): Promise<Buffer> {
  const input = Buffer.from(code.replace('-', ''), 'ascii')
  try {
    return await run(input, salt, kdf, opts)
  } finally {
    input.fill(0)
  }
}

/**
 * The stored form of a new set: scrypt of each code under one fresh salt, one call after another
 * through `run` (off the event loop: it goes on meanwhile).
 */
export async function hashRecoveryCodes(
  codes: string[],
  salt: Buffer,
  kdf: RecoveryKdf = RECOVERY_KDF,
  run: KdfRunner = onThreadPool,
): Promise<RecoveryHashes> {
  const hashes: string[] = []
  for (const code of codes) {
    const hash = await hashCode(code, salt, kdf, run)
    hashes.push(hash.toString('hex'))
    hash.fill(0)
  }
  return { kdf, salt: salt.toString('hex'), hashes }
}

/**
 * The index of the unused code that `code` (canonical form) matches, or -1. One scrypt call,
 * then a constant-time comparison with every stored hash (used ones included, as zeros), so
 * neither the time nor the answer depends on which code matched or how many are left.
 */
export async function findRecoveryCode(
  stored: RecoveryHashes,
  code: string,
  run: KdfRunner = onThreadPool,
): Promise<number> {
  // Urgent: a person is waiting to log in; new codes' hashes (a registration's) can wait.
  const candidate = await hashCode(code, Buffer.from(stored.salt, 'hex'), stored.kdf, run, { urgent: true })
  let found = -1
  stored.hashes.forEach((hex, index) => {
    const hash = hex === null ? Buffer.alloc(candidate.length) : Buffer.from(hex, 'hex')
    const equal = hash.length === candidate.length && timingSafeEqual(hash, candidate)
    if (equal && hex !== null && found === -1) found = index
  })
  candidate.fill(0)
  return found
}

export const recoveryCodesLeft = (stored: RecoveryHashes): number =>
  stored.hashes.filter((hash) => hash !== null).length
