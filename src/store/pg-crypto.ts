import { createHmac } from 'node:crypto'
import { KDF_ID_SCRYPT, STORE_ID_BYTES } from './format.js'
import type { KdfParams } from './kdf.js'

// The derivations of the PostgreSQL store (docs/store-format.md, "On PostgreSQL"): what each
// sealed box binds as its AAD, and the keyed hashes that stand for key names in the database.

export const PG_FORMAT_VERSION = 1

const label = (text: string) => Buffer.from(`securelogin pg ${text} v${PG_FORMAT_VERSION}\0`, 'ascii')
const ROOT = label('root key')
const INDEX = label('index key')
const DATA = label('data key')
const VALUE = label('value')
const NAME = label('name')

const uint32 = (n: number) => {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(n)
  return bytes
}

/** The root key's wrap under the passphrase's KEK binds the format, the store id, the KDF and its salt. */
export function rootAad(storeId: Buffer, kdf: KdfParams, salt: Buffer): Buffer {
  const fixed = Buffer.alloc(2 + STORE_ID_BYTES + 1 + 1 + 4 + 4)
  fixed.writeUInt16BE(PG_FORMAT_VERSION, 0)
  storeId.copy(fixed, 2)
  fixed.writeUInt8(KDF_ID_SCRYPT, 18)
  fixed.writeUInt8(kdf.logN, 19)
  fixed.writeUInt32BE(kdf.r, 20)
  fixed.writeUInt32BE(kdf.p, 24)
  return Buffer.concat([ROOT, fixed, salt])
}

export const indexKeyAad = (storeId: Buffer): Buffer => Buffer.concat([INDEX, storeId])

export const dataKeyAad = (storeId: Buffer, keyVersion: number): Buffer =>
  Buffer.concat([DATA, storeId, uint32(keyVersion)])

/** A value's box is bound to its row (hkey) and to the data key that sealed it: moved or relabelled, it fails. */
export const valueAad = (storeId: Buffer, keyVersion: number, hkey: Buffer): Buffer =>
  Buffer.concat([VALUE, storeId, uint32(keyVersion), hkey])

export const nameAad = (storeId: Buffer, keyVersion: number, hkey: Buffer): Buffer =>
  Buffer.concat([NAME, storeId, uint32(keyVersion), hkey])

/** A row's id: HMAC-SHA256(indexKey, name). The database never sees the name itself. */
export const rowId = (indexKey: Buffer, name: string): Buffer =>
  createHmac('sha256', indexKey).update(name, 'utf8').digest()

/** The id of a prefix ("user/", "role/admin/"): a different input domain from row ids. */
export const prefixId = (indexKey: Buffer, prefix: string): Buffer =>
  createHmac('sha256', indexKey).update(`prefix\0${prefix}`, 'utf8').digest()

/** A key's first segment with its '/' (the whole key when it has none). */
export function firstSegment(key: string): string {
  const slash = key.indexOf('/')
  return slash === -1 ? key : key.slice(0, slash + 1)
}

/** A key's first two segments with the second '/', or undefined when it has no second '/'. */
export function firstTwoSegments(key: string): string | undefined {
  const first = key.indexOf('/')
  if (first === -1) return undefined
  const second = key.indexOf('/', first + 1)
  return second === -1 ? undefined : key.slice(0, second + 1)
}

/** The prefix columns of a row named `key`. */
export function prefixIds(indexKey: Buffer, key: string): { p1: Buffer; p2: Buffer | null } {
  const two = firstTwoSegments(key)
  return { p1: prefixId(indexKey, firstSegment(key)), p2: two === undefined ? null : prefixId(indexKey, two) }
}

/**
 * How `keys(prefix)` and `count(prefix)` find rows: every row (''), the rows of one first
 * segment ('user/'), of two ('role/admin/'), or, for any other prefix, the narrowest of those
 * that contains it, with each row's name then opened and compared (`exact` false).
 */
export type PrefixQuery = { by: 'all'; exact: boolean } | { by: 'p1' | 'p2'; id: Buffer; exact: boolean }

export function prefixQuery(indexKey: Buffer, prefix: string): PrefixQuery {
  if (prefix === '') return { by: 'all', exact: true }
  const first = prefix.indexOf('/')
  if (first === -1) return { by: 'all', exact: false }
  const two = firstTwoSegments(prefix)
  if (two !== undefined) return { by: 'p2', id: prefixId(indexKey, two), exact: two === prefix }
  const one = prefix.slice(0, first + 1)
  return { by: 'p1', id: prefixId(indexKey, one), exact: one === prefix }
}
