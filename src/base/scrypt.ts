import { scrypt } from 'node:crypto'

// The one place that calls crypto.scrypt: the store's key-encryption key, the client's password
// stretch and the recovery-code hashes all go through it.

export interface ScryptCost {
  /** N = 2^logN */
  logN: number
  r: number
  p: number
}

/** The working memory scrypt needs: 128 * r * N bytes. */
export const scryptMemory = (cost: ScryptCost): number => 128 * 2 ** cost.logN * cost.r

/**
 * scrypt(input, salt, N, r, p, keyBytes) on the libuv thread pool, so the event loop (other
 * connections, the terminal) goes on meanwhile; maxmem leaves room above the working memory.
 */
export function scryptAsync(input: Buffer, salt: Buffer, cost: ScryptCost, keyBytes = 32): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(
      input,
      salt,
      keyBytes,
      { N: 2 ** cost.logN, r: cost.r, p: cost.p, maxmem: 2 * scryptMemory(cost) },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  )
}
