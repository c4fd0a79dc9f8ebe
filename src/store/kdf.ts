import { scryptAsync, scryptMemory } from '../base/scrypt.js'
import { SecureLoginError } from '../base/errors.js'

export interface KdfParams {
  name: 'scrypt'
  /** N = 2^logN */
  logN: number
  r: number
  p: number
}

/** About 0.6 s and 128 MiB on the 2-core machine this project runs on (docs/store-format.md). */
export const DEFAULT_KDF: KdfParams = { name: 'scrypt', logN: 17, r: 8, p: 1 }

/**
 * The most work a store header may ask of the reader, as age's maxWorkFactor: a planted header
 * cannot make start-up spend minutes or gigabytes.
 */
export const KDF_CAP = { logN: 20, r: 32, p: 16, memoryBytes: 1024 ** 3 }

/**
 * The least work a store header may ask for: no securelogin makes a store under it (`--kdf-logn`
 * is 10 to 20), so a header under it was planted or damaged, never written by us.
 */
export const KDF_FLOOR = { logN: 10 }

/**
 * Refuses parameters before any KDF work. Under the floor, or outside what scrypt itself accepts
 * (RFC 7914 section 2: N < 2^(128 * r / 8)), is ERR_STORE_CORRUPT: crypto.scrypt would otherwise
 * throw a RangeError that surfaces as ERR_INTERNAL. Above the cap is ERR_STORE_KDF_LIMIT.
 */
export function checkKdfParams(kdf: KdfParams): void {
  const whole = [kdf.logN, kdf.r, kdf.p].every((n) => Number.isInteger(n) && n >= 1)
  if (!whole || kdf.logN < KDF_FLOOR.logN || kdf.logN >= 16 * kdf.r) {
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `invalid scrypt parameters (logN ${kdf.logN}, r ${kdf.r}, p ${kdf.p}): no securelogin writes them ` +
        `(logN ${KDF_FLOOR.logN} to ${KDF_CAP.logN}, and N < 2^(16 r))`,
      { hint: 'the header may have been tampered with; the file has not been changed. restore it from a backup' },
    )
  }
  if (kdf.logN > KDF_CAP.logN || kdf.r > KDF_CAP.r || kdf.p > KDF_CAP.p || scryptMemory(kdf) > KDF_CAP.memoryBytes) {
    throw new SecureLoginError(
      'ERR_STORE_KDF_LIMIT',
      `store asks for scrypt logN ${kdf.logN}, r ${kdf.r}, p ${kdf.p}, above this reader's cap (logN ` +
        `${KDF_CAP.logN}, r ${KDF_CAP.r}, p ${KDF_CAP.p}, ${KDF_CAP.memoryBytes / 1024 ** 2} MiB)`,
      { hint: 'the header may have been tampered with; restore the store from a backup' },
    )
  }
}

/**
 * KEK = scrypt(NFC(passphrase) as UTF-8, salt, N, r, p, 32). crypto.scrypt runs on the libuv
 * thread pool, so other connections are served while it works.
 */
export async function deriveKek(passphrase: string, salt: Buffer, kdf: KdfParams): Promise<Buffer> {
  checkKdfParams(kdf)
  const secret = Buffer.from(passphrase.normalize('NFC'), 'utf8')
  try {
    return await scryptAsync(secret, salt, kdf)
  } finally {
    secret.fill(0)
  }
}
