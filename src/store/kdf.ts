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

export function checkKdfParams(kdf: KdfParams): void {
  if (!(kdf.logN >= 1 && kdf.r >= 1 && kdf.p >= 1)) {
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `invalid scrypt parameters (logN ${kdf.logN}, r ${kdf.r}, p ${kdf.p})`,
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
