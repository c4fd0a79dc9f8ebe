import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { NONCE_BYTES, TAG_BYTES } from './format.js'

// The only code that touches the data key: AES-256-GCM seal and open (like Vault's barrier).

/** nonce (12 random bytes) || ciphertext || tag (16 bytes). */
export function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([nonce, body, cipher.getAuthTag()])
}

/** Returns the plaintext, or undefined when the box fails to authenticate. */
export function open(key: Buffer, box: Buffer, aad: Buffer): Buffer | undefined {
  if (box.length < NONCE_BYTES + TAG_BYTES) return undefined
  const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES })
  decipher.setAAD(aad)
  decipher.setAuthTag(box.subarray(box.length - TAG_BYTES))
  try {
    return Buffer.concat([decipher.update(box.subarray(NONCE_BYTES, box.length - TAG_BYTES)), decipher.final()])
  } catch {
    return undefined
  }
}
