import { createHash } from 'node:crypto'
import { SecureLoginError } from '../base/errors.js'
import { checkKdfParams, type KdfParams } from './kdf.js'

// The store file's layout, byte for byte (docs/store-format.md is the normative description).

export const MAGIC = Buffer.from([0x89, 0x53, 0x4c, 0x53, 0x54, 0x4f, 0x52, 0x45]) // \x89SLSTORE
export const FORMAT_VERSION = 2
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
/** The wrapped data key is sealed with every byte before it as AAD. */
export const WRAP_AAD_BYTES = OFF_STORE_ID + STORE_ID_BYTES // 68
const OFF_WRAP = WRAP_AAD_BYTES
export const WRAPPED_KEY_BYTES = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES // 60
const OFF_CHECKSUM = OFF_WRAP + WRAPPED_KEY_BYTES // 128
export const HEADER_BYTES = OFF_CHECKSUM + 32 // 160

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
  /** Bytes 0..67, the AAD of the wrapped key. */
  aad: Buffer
  /** Bytes 128..159: a new data key (compaction) or a new wrap (rekey) changes it. */
  checksum: Buffer
}

/** The checksum field of a whole header (bytes 128..159). */
export const headerChecksum = (header: Buffer): Buffer => Buffer.from(header.subarray(OFF_CHECKSUM, HEADER_BYTES))

/** Bytes 0..67: what the key wrap authenticates. */
export function encodeWrapAad(kdf: KdfParams, salt: Buffer, storeId: Buffer): Buffer {
  const aad = Buffer.alloc(WRAP_AAD_BYTES)
  MAGIC.copy(aad, 0)
  aad.writeUInt16BE(FORMAT_VERSION, OFF_VERSION)
  aad.writeUInt8(KDF_ID_SCRYPT, OFF_KDF_ID)
  aad.writeUInt8(kdf.logN, OFF_LOGN)
  aad.writeUInt32BE(kdf.r, OFF_R)
  aad.writeUInt32BE(kdf.p, OFF_P)
  salt.copy(aad, OFF_SALT)
  storeId.copy(aad, OFF_STORE_ID)
  return aad
}

/** The whole 160-byte header: the wrap AAD, the wrapped key, and a SHA-256 of both. */
export function encodeHeader(aad: Buffer, wrappedKey: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES)
  aad.copy(header, 0)
  wrappedKey.copy(header, OFF_WRAP)
  createHash('sha256').update(header.subarray(0, OFF_CHECKSUM)).digest().copy(header, OFF_CHECKSUM)
  return header
}

/**
 * Parses and checks the plaintext header: magic, version, checksum, KDF id, and the KDF parameters
 * against the floor and the cap, so every reader (info included) refuses them before any KDF work.
 */
export function decodeHeader(file: Buffer, path: string): Header {
  if (file.length < HEADER_BYTES) {
    if (file.length === 0) throw corrupt(`${path} is empty`)
    if (!MAGIC.subarray(0, Math.min(file.length, MAGIC.length)).equals(file.subarray(0, MAGIC.length)))
      throw notAStore(path)
    throw corrupt(`${path} is truncated inside its header (${file.length} of ${HEADER_BYTES} bytes)`)
  }
  if (!file.subarray(0, MAGIC.length).equals(MAGIC)) throw notAStore(path)
  const formatVersion = file.readUInt16BE(OFF_VERSION)
  if (formatVersion !== FORMAT_VERSION) {
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `unsupported store format version ${formatVersion} in ${path} (this securelogin reads version ${FORMAT_VERSION})`,
      {
        hint:
          formatVersion > FORMAT_VERSION
            ? 'use the securelogin that wrote it, or a newer one'
            : 'version 1 stores came from a development build before 0.2; make a new store',
      },
    )
  }
  const checksum = createHash('sha256').update(file.subarray(0, OFF_CHECKSUM)).digest()
  if (!checksum.equals(file.subarray(OFF_CHECKSUM, HEADER_BYTES)))
    throw corrupt(`the header of ${path} is damaged (checksum mismatch)`)
  const kdfId = file.readUInt8(OFF_KDF_ID)
  if (kdfId !== KDF_ID_SCRYPT) throw corrupt(`unknown key derivation function ${kdfId} in ${path}`)
  const kdf: KdfParams = {
    name: 'scrypt',
    logN: file.readUInt8(OFF_LOGN),
    r: file.readUInt32BE(OFF_R),
    p: file.readUInt32BE(OFF_P),
  }
  checkKdfParams(kdf)
  return {
    formatVersion,
    kdf,
    salt: Buffer.from(file.subarray(OFF_SALT, OFF_SALT + SALT_BYTES)),
    storeId: Buffer.from(file.subarray(OFF_STORE_ID, OFF_STORE_ID + STORE_ID_BYTES)),
    wrappedKey: Buffer.from(file.subarray(OFF_WRAP, OFF_WRAP + WRAPPED_KEY_BYTES)),
    aad: Buffer.from(file.subarray(0, WRAP_AAD_BYTES)),
    checksum: headerChecksum(file),
  }
}

const RECORD_AAD_LABEL = Buffer.from('securelogin record v2', 'ascii')
export const RECORD_AAD_BYTES = RECORD_AAD_LABEL.length + STORE_ID_BYTES + 8

/** AAD of record number `seq`: binds it to its place in this store and no other. */
export function recordAad(storeId: Buffer, seq: number): Buffer {
  const aad = Buffer.alloc(RECORD_AAD_BYTES)
  RECORD_AAD_LABEL.copy(aad, 0)
  storeId.copy(aad, RECORD_AAD_LABEL.length)
  aad.writeBigUInt64BE(BigInt(seq), RECORD_AAD_LABEL.length + STORE_ID_BYTES)
  return aad
}

// A record's plaintext is one or more entries back to back. The journal appends one entry per
// record; compaction packs many live entries into each record.
//   entry = op (1 byte) | key length (2) | key (UTF-8) | value length (4) | value (UTF-8 JSON)

export const OP_PUT = 1
export const OP_DELETE = 2
/** An entry that is never superseded (the audit log): always live. */
export const OP_EVENT = 3
export type Op = typeof OP_PUT | typeof OP_DELETE | typeof OP_EVENT

export interface Entry {
  op: Op
  key: string
  value: Buffer
}

export const ENTRY_OVERHEAD = 1 + 2 + 4
/** An entry's key starts after its op and key length. */
export const ENTRY_KEY_START = 3

export function encodeEntry(entry: Entry): Buffer {
  const key = Buffer.from(entry.key, 'utf8')
  if (key.length === 0 || key.length > 0xffff)
    throw new SecureLoginError('ERR_INTERNAL', 'a store key is 1 to 65535 bytes')
  const out = Buffer.alloc(ENTRY_OVERHEAD + key.length + entry.value.length)
  out.writeUInt8(entry.op, 0)
  out.writeUInt16BE(key.length, 1)
  key.copy(out, 3)
  out.writeUInt32BE(entry.value.length, 3 + key.length)
  entry.value.copy(out, ENTRY_OVERHEAD + key.length)
  return out
}

/**
 * Calls `each` with every entry of a record's plaintext: its op, where its key's bytes are, where
 * it ends, and where it starts (its offset in the record). Returns
 * false when the plaintext is not a whole sequence of entries (authentic, so written by a
 * different version, never by an attacker without the key).
 */
export function forEachEntry(
  plaintext: Buffer,
  each: (op: Op, keyStart: number, keyEnd: number, valueEnd: number, at: number) => void,
): boolean {
  let at = 0
  while (at < plaintext.length) {
    if (plaintext.length - at < ENTRY_OVERHEAD) return false
    const op = plaintext[at]!
    if (op !== OP_PUT && op !== OP_DELETE && op !== OP_EVENT) return false
    const keyLength = plaintext.readUInt16BE(at + 1)
    const valueLengthAt = at + 3 + keyLength
    if (keyLength === 0 || valueLengthAt + 4 > plaintext.length) return false
    const valueStart = valueLengthAt + 4
    const valueEnd = valueStart + plaintext.readUInt32BE(valueLengthAt)
    if (valueEnd > plaintext.length) return false
    each(op as Op, at + 3, valueLengthAt, valueEnd, at)
    at = valueEnd
  }
  return true
}

/** The entry that starts at `at` (an offset `forEachEntry` reported). */
export function entryAt(plaintext: Buffer, at: number): Entry {
  const keyLength = plaintext.readUInt16BE(at + 1)
  const valueStart = at + ENTRY_OVERHEAD + keyLength
  return {
    op: plaintext[at] as Op,
    key: plaintext.toString('utf8', at + 3, at + 3 + keyLength),
    value: plaintext.subarray(valueStart, valueStart + plaintext.readUInt32BE(at + 3 + keyLength)),
  }
}

export function corrupt(message: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_CORRUPT', message, {
    hint: 'the file may be damaged or tampered with; it has not been changed. restore it from a backup',
  })
}

function notAStore(path: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_CORRUPT', `${path} is not a securelogin store`, {
    hint: 'check the --store path',
  })
}
