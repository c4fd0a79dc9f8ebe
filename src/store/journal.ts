import { open as openFile, readFile, rename, mkdir, rm, stat, type FileHandle } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../protocol/errors.js'
import { open, seal } from './barrier.js'
import { deriveKek, checkKdfParams, type KdfParams } from './kdf.js'
import {
  DATA_KEY_BYTES, HEADER_BYTES, LENGTH_PREFIX_BYTES, MAX_RECORD_BYTES, MIN_RECORD_BYTES, SALT_BYTES, STORE_ID_BYTES,
  corrupt, decodeHeader, encodeHeaderPrefix, recordAad, type Header,
} from './format.js'

/**
 * RFC/NIST SP 800-38D 8.3: with random 96-bit nonces, at most 2^32 messages under one key. The
 * journal refuses to append past it (issue 4's compaction rotates the data key).
 */
export const MAX_RECORDS_PER_KEY = 2 ** 32

export type Report = (event: string, fields: Record<string, unknown>) => void

export interface Replayed {
  header: Header
  records: Buffer[]
  /** Where the next record goes (the end of the last whole record). */
  end: number
  fileSize: number
}

/** An open journal: the data key, the file handle, and an append queue. */
export class Journal {
  readonly path: string
  readonly #handle: FileHandle
  readonly #dataKey: Buffer
  readonly #storeId: Buffer
  #seq: number
  #end: number
  #queue: Promise<unknown> = Promise.resolve()
  #failed: SecureLoginError | undefined
  #closed = false

  private constructor(path: string, handle: FileHandle, dataKey: Buffer, storeId: Buffer, seq: number, end: number) {
    this.path = path
    this.#handle = handle
    this.#dataKey = dataKey
    this.#storeId = storeId
    this.#seq = seq
    this.#end = end
  }

  /** Writes header and first records to a new file beside `path`, fsyncs it, renames it into place. */
  static async create(path: string, passphrase: string, kdf: KdfParams, firstRecords: Buffer[]): Promise<Journal> {
    checkKdfParams(kdf)
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const salt = randomBytes(SALT_BYTES)
    const storeId = randomBytes(STORE_ID_BYTES)
    const dataKey = randomBytes(DATA_KEY_BYTES)
    const kek = await deriveKek(passphrase, salt, kdf)
    const prefix = encodeHeaderPrefix(kdf, salt, storeId)
    const wrapped = seal(kek, dataKey, prefix)
    kek.fill(0)
    const parts = [prefix, wrapped]
    firstRecords.forEach((plaintext, seq) => parts.push(frameRecord(seal(dataKey, plaintext, recordAad(storeId, seq)))))
    const bytes = Buffer.concat(parts)

    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.new`)
    const handle = await openFile(tmp, 'wx', 0o600).catch((error) => {
      throw ioError(`cannot create ${tmp}`, error)
    })
    try {
      try {
        await handle.write(bytes, 0, bytes.length, 0)
        await handle.sync()
      } finally {
        await handle.close()
      }
      // Never replace a store that appeared meanwhile.
      if (await exists(path)) throw ioError(`${path} already exists`)
      await rename(tmp, path)
    } catch (error) {
      await rm(tmp, { force: true })
      throw error
    }
    await syncDirectory(dirname(path))
    const writer = await openFile(path, 'r+')
    return new Journal(path, writer, dataKey, storeId, firstRecords.length, bytes.length)
  }

  /**
   * Opens and authenticates every record. Nothing on disk changes when this fails. A torn last
   * record (a crash mid-append) is reported and cut off so that appends can go on.
   */
  static async open(path: string, passphrase: string, report: Report): Promise<{ journal: Journal; records: Buffer[] }> {
    const replayed = await replay(path, passphrase)
    const handle = await openFile(path, 'r+').catch((error) => {
      throw ioError(`cannot open ${path} for writing`, error)
    })
    if (replayed.end < replayed.fileSize) {
      report('store_torn_tail', { offset: replayed.end, length: replayed.fileSize - replayed.end })
      await handle.truncate(replayed.end)
      await handle.sync()
    }
    const { header, records } = replayed
    return { journal: new Journal(path, handle, replayed.dataKey, header.storeId, records.length, replayed.end), records }
  }

  get recordCount(): number {
    return this.#seq
  }

  /** Seals and appends one record, fsync'd before the promise resolves. One append at a time. */
  append(plaintext: Buffer): Promise<void> {
    const next = this.#queue.then(() => this.#append(plaintext))
    this.#queue = next.catch(() => {})
    return next
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#queue
    this.#dataKey.fill(0)
    await this.#handle.close()
  }

  async #append(plaintext: Buffer): Promise<void> {
    if (this.#closed) throw new SecureLoginError('ERR_STORE_IO', `${this.path} is closed`)
    if (this.#failed) throw this.#failed
    if (this.#seq >= MAX_RECORDS_PER_KEY) {
      throw new SecureLoginError('ERR_STORE_IO', `${this.path} holds ${MAX_RECORDS_PER_KEY} records under one data key, the most random nonces allow`, {
        hint: 'compact the store to rotate its data key',
      })
    }
    const record = frameRecord(seal(this.#dataKey, plaintext, recordAad(this.#storeId, this.#seq)))
    try {
      await this.#handle.write(record, 0, record.length, this.#end)
      await this.#handle.sync()
    } catch (error) {
      // Leave no half record behind to corrupt the next append; refuse writes from now on.
      this.#failed = ioError(`cannot write to ${this.path}`, error)
      await this.#handle.truncate(this.#end).catch(() => {})
      throw this.#failed
    }
    this.#seq += 1
    this.#end += record.length
  }
}

/** Reads the header only: no passphrase needed. */
export async function readHeader(path: string): Promise<{ header: Header; fileSize: number }> {
  const file = await readStoreFile(path)
  return { header: decodeHeader(file, path), fileSize: file.length }
}

async function replay(path: string, passphrase: string): Promise<Replayed & { dataKey: Buffer }> {
  const file = await readStoreFile(path)
  const header = decodeHeader(file, path)
  checkKdfParams(header.kdf)
  const kek = await deriveKek(passphrase, header.salt, header.kdf)
  const dataKey = open(kek, header.wrappedKey, header.aad)
  kek.fill(0)
  if (!dataKey) {
    throw new SecureLoginError('ERR_STORE_BAD_PASSPHRASE', 'wrong passphrase or damaged store', {
      hint: 'the store is unchanged; type the passphrase again',
    })
  }
  const records: Buffer[] = []
  let offset = HEADER_BYTES
  while (offset < file.length) {
    const index = records.length
    if (file.length - offset < LENGTH_PREFIX_BYTES) break // torn length prefix
    const length = file.readUInt32BE(offset)
    if (length < MIN_RECORD_BYTES || length > MAX_RECORD_BYTES) {
      throw corrupt(`record ${index} at offset ${offset} of ${path} has an impossible length (${length} bytes)`)
    }
    if (offset + LENGTH_PREFIX_BYTES + length > file.length) break // torn body
    const box = file.subarray(offset + LENGTH_PREFIX_BYTES, offset + LENGTH_PREFIX_BYTES + length)
    const plaintext = open(dataKey, box, recordAad(header.storeId, index))
    if (!plaintext) {
      dataKey.fill(0)
      throw corrupt(`record ${index} at offset ${offset} of ${path} fails to authenticate`)
    }
    records.push(plaintext)
    offset += LENGTH_PREFIX_BYTES + length
  }
  return { header, records, end: offset, fileSize: file.length, dataKey }
}

async function readStoreFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EISDIR') throw ioError(`${path} is a directory, not a store file`, error)
    if (code === 'ENOENT') throw ioError(`no store at ${path}`, error)
    if (code === 'EACCES' || code === 'EPERM') throw ioError(`no permission to read ${path}`, error)
    throw ioError(`cannot read ${path}`, error)
  }
}

function frameRecord(box: Buffer): Buffer {
  const prefix = Buffer.alloc(LENGTH_PREFIX_BYTES)
  prefix.writeUInt32BE(box.length, 0)
  return Buffer.concat([prefix, box])
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw ioError(`cannot look at ${path}`, error)
  }
}

function ioError(message: string, cause?: unknown): SecureLoginError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return new SecureLoginError('ERR_STORE_IO', code ? `${message} (${code})` : message, cause === undefined ? {} : { cause })
}
