import { createHash } from 'node:crypto'
import { SecureLoginError } from '../protocol/errors.js'
import type { KdfParams } from './kdf.js'

// The store file's layout, byte for byte (docs/store-format.md is the normative description).

export const MAGIC = Buffer.from([0x89, 0x53, 0x4c, 0x53, 0x54, 0x4f, 0x52, 0x45]) // \x89SLSTORE
export const FORMAT_VERSION = 1
export const KDF_ID_SCRYPT = 1
export const SALT_BYTES = 32
export const STORE_ID_BYTES = 16
export const NONCE_BYTES = 12
export const TAG_BYTES = 16
export const DATA_KEY_BYTES = 32

const OFF_VERSION = 8
const OFF_KDF_ID = 10
const OFF_LOGN = 11
const OFF_R = 12
const OFF_P = 16
const OFF_SALT = 20
const OFF_STORE_ID = OFF_SALT + SALT_BYTES // 52
const OFF_CHECKSUM = OFF_STORE_ID + STORE_ID_BYTES // 68
/** The wrapped data key is sealed with every byte before it as AAD. */
export const WRAP_AAD_BYTES = OFF_CHECKSUM + 32 // 100
const OFF_WRAP = WRAP_AAD_BYTES
export const HEADER_BYTES = OFF_WRAP + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES // 160

/** A record's length prefix counts nonce, ciphertext and tag; at most 1 MiB. */
export const LENGTH_PREFIX_BYTES = 4
export const MAX_RECORD_BYTES = 1024 * 1024
export const MIN_RECORD_BYTES = NONCE_BYTES + TAG_BYTES

export interface Header {
  formatVersion: number
  kdf: KdfParams
  salt: Buffer
  storeId: Buffer
  /** nonce || ciphertext || tag of the data key. */
  wrappedKey: Buffer
  /** Bytes 0..100, the AAD of the wrapped key. */
  aad: Buffer
}

/** The fixed part of a header, before the wrapped key is known. */
export function encodeHeaderPrefix(kdf: KdfParams, salt: Buffer, storeId: Buffer): Buffer {
  const prefix = Buffer.alloc(WRAP_AAD_BYTES)
  MAGIC.copy(prefix, 0)
  prefix.writeUInt16BE(FORMAT_VERSION, OFF_VERSION)
  prefix.writeUInt8(KDF_ID_SCRYPT, OFF_KDF_ID)
  prefix.writeUInt8(kdf.logN, OFF_LOGN)
  prefix.writeUInt32BE(kdf.r, OFF_R)
  prefix.writeUInt32BE(kdf.p, OFF_P)
  salt.copy(prefix, OFF_SALT)
  storeId.copy(prefix, OFF_STORE_ID)
  createHash('sha256').update(prefix.subarray(0, OFF_CHECKSUM)).digest().copy(prefix, OFF_CHECKSUM)
  return prefix
}

/** Parses and checks the plaintext header: magic, version, checksum, KDF id. Not the KDF cap. */
export function decodeHeader(file: Buffer, path: string): Header {
  if (file.length < HEADER_BYTES) {
    if (file.length >= MAGIC.length && !file.subarray(0, MAGIC.length).equals(MAGIC)) throw notAStore(path)
    throw corrupt(`${path} is truncated inside its header (${file.length} of ${HEADER_BYTES} bytes)`)
  }
  if (!file.subarray(0, MAGIC.length).equals(MAGIC)) throw notAStore(path)
  const formatVersion = file.readUInt16BE(OFF_VERSION)
  if (formatVersion !== FORMAT_VERSION) throw corrupt(`unsupported store format version ${formatVersion} in ${path}`)
  const checksum = createHash('sha256').update(file.subarray(0, OFF_CHECKSUM)).digest()
  if (!checksum.equals(file.subarray(OFF_CHECKSUM, OFF_CHECKSUM + 32))) throw corrupt(`the header of ${path} is damaged (checksum mismatch)`)
  const kdfId = file.readUInt8(OFF_KDF_ID)
  if (kdfId !== KDF_ID_SCRYPT) throw corrupt(`unknown key derivation function ${kdfId} in ${path}`)
  return {
    formatVersion,
    kdf: { name: 'scrypt', logN: file.readUInt8(OFF_LOGN), r: file.readUInt32BE(OFF_R), p: file.readUInt32BE(OFF_P) },
    salt: Buffer.from(file.subarray(OFF_SALT, OFF_SALT + SALT_BYTES)),
    storeId: Buffer.from(file.subarray(OFF_STORE_ID, OFF_STORE_ID + STORE_ID_BYTES)),
    wrappedKey: Buffer.from(file.subarray(OFF_WRAP, HEADER_BYTES)),
    aad: Buffer.from(file.subarray(0, WRAP_AAD_BYTES)),
  }
}

/** AAD of record number `seq`: binds it to its place in this store and no other. */
export function recordAad(storeId: Buffer, seq: number): Buffer {
  const aad = Buffer.alloc(RECORD_AAD_LABEL.length + STORE_ID_BYTES + 8)
  RECORD_AAD_LABEL.copy(aad, 0)
  storeId.copy(aad, RECORD_AAD_LABEL.length)
  aad.writeBigUInt64BE(BigInt(seq), RECORD_AAD_LABEL.length + STORE_ID_BYTES)
  return aad
}
const RECORD_AAD_LABEL = Buffer.from('securelogin record v1', 'ascii')

export function corrupt(message: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_CORRUPT', message, {
    hint: 'the file may be damaged or tampered with; it has not been changed. restore it from a backup',
  })
}

function notAStore(path: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_CORRUPT', `${path} is not a securelogin store`, { hint: 'check the --store path' })
}
