import { readSync } from 'node:fs'
import { open as openFile, mkdir, rename, rm, readdir, type FileHandle } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../base/errors.js'
import { open, seal } from './barrier.js'
import { deriveKek, checkKdfParams, type KdfParams } from './kdf.js'
import {
  DATA_KEY_BYTES,
  HEADER_BYTES,
  LENGTH_PREFIX_BYTES,
  MAX_RECORD_BYTES,
  MIN_RECORD_BYTES,
  SALT_BYTES,
  STORE_ID_BYTES,
  corrupt,
  decodeHeader,
  encodeHeader,
  encodeWrapAad,
  headerChecksum,
  recordAad,
  type Header,
} from './format.js'
import { identityOf, readExactly, stateTempPrefix, type FileBytes, type FileIdentity } from './state.js'

// The file under the store: a header, then sealed records appended one at a time and fsync'd.
// Knows nothing of what records mean (store.ts does). docs/store-format.md describes the bytes.

/**
 * NIST SP 800-38D 8.3: with random 96-bit nonces, at most 2^32 messages under one key. The
 * journal refuses to seal more under one data key; the store compacts first, which rotates it.
 */
export const MAX_RECORDS_PER_KEY = 2 ** 32

/** Compaction packs entries into records of at most this many plaintext bytes. */
export const PAGE_BYTES = 32 * 1024

const READ_CHUNK_BYTES = 4 * 1024 * 1024
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024

export type Report = (event: string, fields: Record<string, unknown>) => void

export interface TornTail {
  offset: number
  length: number
}

/** Where each record is: the offset of its length prefix and its sealed length, by sequence number. */
class RecordIndex {
  offsets = new Float64Array(1024)
  lengths = new Uint32Array(1024)
  count = 0

  push(offset: number, length: number): void {
    if (this.count === this.offsets.length) {
      const offsets = new Float64Array(this.count * 2)
      offsets.set(this.offsets)
      const lengths = new Uint32Array(this.count * 2)
      lengths.set(this.lengths)
      this.offsets = offsets
      this.lengths = lengths
    }
    this.offsets[this.count] = offset
    this.lengths[this.count] = length
    this.count += 1
  }
}

/** One generation of the file: a handle, its data key and its record index. Compaction makes a new one. */
class FileState {
  readers = 0
  retired = false
  constructor(
    readonly handle: FileHandle,
    readonly dataKey: Buffer,
    readonly index: RecordIndex,
    public end: number,
    readonly headerChecksum: Buffer,
  ) {}

  /** Its bytes as the state file's checks read them (src/store/state.ts). */
  bytes(storeId: Buffer): FileBytes {
    return {
      storeId,
      headerChecksum: this.headerChecksum,
      size: this.end,
      read: (at, length) => readExactly(this.handle, at, length),
      records: this.index.count,
      offsetOf: (seq) => this.index.offsets[seq]!,
    }
  }

  /** How far this file has got: its generation and its last whole record. */
  identity(storeId: Buffer): Promise<FileIdentity> {
    const count = this.index.count
    const lastAt = count === 0 ? HEADER_BYTES : this.index.offsets[count - 1]!
    return identityOf(this.bytes(storeId), count, lastAt, this.end)
  }

  async retire(): Promise<void> {
    this.retired = true
    if (this.readers === 0) await this.#dispose()
  }

  async doneReading(): Promise<void> {
    this.readers -= 1
    if (this.retired && this.readers === 0) await this.#dispose()
  }

  async #dispose(): Promise<void> {
    this.dataKey.fill(0)
    await this.handle.close().catch(() => {})
  }
}

export interface OpenJournalOptions {
  /** Called with every record's plaintext, in order, while the file is replayed. */
  onRecord: (seq: number, plaintext: Buffer) => void
  /** Things worth a log line that are not failures. */
  report?: Report
  /** Verify only: no truncation of a torn tail, no clean-up, no writes. */
  readOnly?: boolean
  maxRecordsPerKey?: number
  /**
   * Runs once every record has authenticated, before a torn tail is cut or anything else on disk
   * changes: a throw leaves the file as it was (the state file's rollback check).
   */
  check?: (file: FileBytes) => Promise<void>
}

/**
 * Called around the rename of a compaction's or rekey's new file over the store, inside the
 * append queue: `before` with the file as it is and the one about to replace it (a throw abandons
 * the new file), `after` once it has.
 */
export interface SwitchHooks {
  before(current: FileIdentity, next: FileIdentity): Promise<void>
  after(current: FileIdentity): Promise<void>
}

export class Journal {
  readonly path: string
  readonly storeId: Buffer
  readonly maxRecordsPerKey: number
  #kdf: KdfParams
  #kek: Buffer
  #salt: Buffer
  #file: FileState
  #queue: Promise<unknown> = Promise.resolve()
  #failed: SecureLoginError | undefined
  #closed = false
  readonly #readOnly: boolean
  switchHooks: SwitchHooks | undefined

  private constructor(
    path: string,
    header: { storeId: Buffer; kdf: KdfParams; salt: Buffer },
    kek: Buffer,
    file: FileState,
    opts: { readOnly: boolean; maxRecordsPerKey: number },
  ) {
    this.path = path
    this.storeId = header.storeId
    this.#kdf = header.kdf
    this.#salt = header.salt
    this.#kek = kek
    this.#file = file
    this.#readOnly = opts.readOnly
    this.maxRecordsPerKey = opts.maxRecordsPerKey
  }

  /** Writes header and first records to a new file beside `path`, fsyncs it, renames it into place. */
  static async create(
    path: string,
    passphrase: string,
    kdf: KdfParams,
    firstRecords: Buffer[],
    opts: { maxRecordsPerKey?: number } = {},
  ): Promise<Journal> {
    checkKdfParams(kdf)
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const salt = randomBytes(SALT_BYTES)
    const storeId = randomBytes(STORE_ID_BYTES)
    const kek = await deriveKek(passphrase, salt, kdf)
    const writer = await FileWriter.create(path, kek, { kdf, salt, storeId })
    let file: FileState
    try {
      for (const plaintext of firstRecords) writer.addRecord(plaintext)
      file = await writer.finish()
      // never replace a store that appeared meanwhile
      if (await pathExists(path)) throw ioError(`${path} already exists`)
      await writer.commit()
    } catch (error) {
      await writer.abort()
      throw error
    }
    return new Journal(path, { storeId, kdf, salt }, kek, file, {
      readOnly: false,
      maxRecordsPerKey: opts.maxRecordsPerKey ?? MAX_RECORDS_PER_KEY,
    })
  }

  /**
   * Opens and authenticates every record, in order. Nothing on disk changes when this fails. A
   * torn last record (a crash mid-append) is reported and, unless read-only, cut off.
   */
  static async open(
    path: string,
    passphrase: string,
    opts: OpenJournalOptions,
  ): Promise<{ journal: Journal; tornTail: TornTail | undefined }> {
    const readOnly = opts.readOnly ?? false
    const handle = await openFile(path, readOnly ? 'r' : 'r+').catch((error) => {
      throw storeReadError(path, error)
    })
    try {
      const size = await sizeOfStoreFile(handle, path)
      const head = Buffer.alloc(Math.min(size, HEADER_BYTES))
      await handle.read(head, 0, head.length, 0)
      const header = decodeHeader(head, path)
      checkKdfParams(header.kdf)
      const kek = await deriveKek(passphrase, header.salt, header.kdf)
      const dataKey = unwrapDataKey(kek, header)
      if (!dataKey) {
        kek.fill(0)
        throw new SecureLoginError('ERR_STORE_BAD_PASSPHRASE', 'wrong passphrase or damaged store', {
          hint: 'the store is unchanged; type the passphrase again',
        })
      }
      const index = new RecordIndex()
      let end: number
      try {
        end = await readRecords(handle, HEADER_BYTES, size, path, (offset, box) => {
          const seq = index.count
          const plaintext = open(dataKey, box, recordAad(header.storeId, seq))
          if (!plaintext) throw corrupt(`record ${seq} at offset ${offset} of ${path} fails to authenticate`)
          index.push(offset, box.length)
          opts.onRecord(seq, plaintext)
        })
      } catch (error) {
        dataKey.fill(0)
        kek.fill(0)
        throw error
      }
      const file = new FileState(handle, dataKey, index, end, header.checksum)
      if (opts.check) {
        try {
          await opts.check(file.bytes(header.storeId))
        } catch (error) {
          dataKey.fill(0)
          kek.fill(0)
          throw error
        }
      }
      const tornTail = end < size ? { offset: end, length: size - end } : undefined
      if (tornTail) {
        opts.report?.('store_torn_tail', { path, offset: tornTail.offset, length: tornTail.length, cut: !readOnly })
        if (!readOnly) {
          await handle.truncate(end)
          await handle.sync()
        }
      }
      if (!readOnly) await removeLeftovers(path, opts.report)
      const journal = new Journal(path, header, kek, file, {
        readOnly,
        maxRecordsPerKey: opts.maxRecordsPerKey ?? MAX_RECORDS_PER_KEY,
      })
      return { journal, tornTail }
    } catch (error) {
      await handle.close().catch(() => {})
      throw error
    }
  }

  get recordCount(): number {
    return this.#file.index.count
  }

  get fileSize(): number {
    return this.#file.end
  }

  get kdf(): KdfParams {
    return this.#kdf
  }

  /** The current file's generation and last whole record; call inside `exclusive`. */
  identity(): Promise<FileIdentity> {
    return this.#file.identity(this.storeId)
  }

  /** Seals and appends one record, fsync'd before the promise resolves; resolves to its sequence number. */
  async append(plaintext: Buffer): Promise<number> {
    return (await this.appendMany([plaintext]))[0]!
  }

  /**
   * Seals each plaintext as its own record and appends them with one write and one fsync (a
   * group commit). `written` runs inside the queue, before any later compaction can swap files,
   * so that what the caller records about these sequence numbers refers to this file. `before`
   * runs in the queue just before the write.
   */
  appendMany(
    plaintexts: Buffer[],
    written: (seqs: number[]) => void = () => {},
    before?: () => void,
  ): Promise<number[]> {
    return this.exclusive(async () => {
      // Inside the queue, after every earlier append is written and applied: a throw here refuses
      // this append alone (a compare-and-set that lost).
      before?.()
      const seqs = await this.#append(plaintexts)
      written(seqs)
      return seqs
    })
  }

  /** Runs `work` in the append queue: no append starts or ends while it runs. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work)
    this.#queue = next.catch(() => {})
    return next
  }

  /**
   * The plaintext of record `seq` of the current file. Call it in the same tick as the lookup
   * that produced `seq`, so that a compaction finishing meanwhile cannot swap the file between.
   */
  read(seq: number): Buffer {
    const file = this.#file
    if (seq >= file.index.count) throw new SecureLoginError('ERR_INTERNAL', `no record ${seq} in ${this.path}`)
    const offset = file.index.offsets[seq]!
    const box = Buffer.alloc(file.index.lengths[seq]!)
    // A synchronous pread: a record is a few hundred bytes, almost always in the page cache, and
    // read so costs 6 to 7 us of CPU where a read through the thread pool (fs/promises) costs
    // about 40, several times a login (docs/architecture.md, "Records are read synchronously").
    // Being synchronous, the read cannot meet a compaction's swap of the file.
    let got: number
    try {
      got = readSync(file.handle.fd, box, 0, box.length, offset + LENGTH_PREFIX_BYTES)
    } catch (error) {
      throw ioError(`cannot read ${this.path}`, error)
    }
    const plaintext = got === box.length ? open(file.dataKey, box, recordAad(this.storeId, seq)) : undefined
    if (!plaintext)
      throw corrupt(
        `record ${seq} at offset ${offset} of ${this.path} fails to authenticate (changed under the running server?)`,
      )
    return plaintext
  }

  /** Reads records [from, to) of the current file in order; `afterChunk` runs between reads. */
  async scan(
    from: number,
    to: number,
    each: (seq: number, plaintext: Buffer) => void,
    afterChunk: () => Promise<void> = async () => {},
  ): Promise<void> {
    if (from >= to) return
    const file = this.#file
    file.readers += 1
    try {
      let seq = from
      const start = file.index.offsets[from]!
      const stop = to < file.index.count ? file.index.offsets[to]! : file.end
      await readRecords(
        file.handle,
        start,
        stop,
        this.path,
        (offset, box) => {
          const plaintext = open(file.dataKey, box, recordAad(this.storeId, seq))
          if (!plaintext) throw corrupt(`record ${seq} at offset ${offset} of ${this.path} fails to authenticate`)
          each(seq, plaintext)
          seq += 1
        },
        afterChunk,
      )
    } finally {
      await file.doneReading()
    }
  }

  /** A new file beside this one, under a fresh data key, for compaction to fill and commit. */
  async rewrite(): Promise<Rewrite> {
    this.#writable()
    const writer = await FileWriter.create(
      this.path,
      this.#kek,
      { kdf: this.#kdf, salt: this.#salt, storeId: this.storeId },
      'compact',
    )
    return {
      add: (entry) => writer.addEntry(entry),
      pump: () => writer.pump(),
      // Called inside exclusive(): seal the last page, make it durable, rename it over, switch to it.
      commit: async (swap) => {
        const file = await writer.finish()
        await this.switchHooks?.before(await this.identity(), await file.identity(this.storeId))
        try {
          await writer.commit()
        } catch (error) {
          this.#failed = ioError(`compaction of ${this.path} failed while renaming`, error)
          throw this.#failed
        }
        const old = this.#file
        this.#file = file
        swap()
        await old.retire()
        await this.switchHooks?.after(await this.identity())
      },
      abort: () => writer.abort(),
    }
  }

  /**
   * Wraps the same data key under a key from `passphrase` and a new salt, in a copy of the file
   * that is fsync'd and renamed over the old one: a crash leaves the old or the new, whole.
   */
  async rekey(passphrase: string, kdf: KdfParams): Promise<void> {
    this.#writable()
    checkKdfParams(kdf)
    const salt = randomBytes(SALT_BYTES)
    const kek = await deriveKek(passphrase, salt, kdf)
    await this.exclusive(async () => {
      const old = this.#file
      const writer = await FileWriter.create(this.path, kek, { kdf, salt, storeId: this.storeId }, 'rekey', old.dataKey)
      try {
        await writer.copyRecords(old.handle, HEADER_BYTES, old.end)
        const file = await writer.finish(old.index)
        await this.switchHooks?.before(await this.identity(), await file.identity(this.storeId))
        await writer.commit()
        this.#file = file
        await old.retire()
      } catch (error) {
        await writer.abort()
        kek.fill(0)
        throw error
      }
      this.#kek.fill(0)
      this.#kek = kek
      this.#kdf = kdf
      this.#salt = salt
      await this.switchHooks?.after(await this.identity())
    })
  }

  /** A write failed: every later one is refused (the file stays as it was before it). */
  get writeFailed(): boolean {
    return this.#failed !== undefined
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#queue
    this.#kek.fill(0)
    await this.#file.retire()
  }

  #writable(): void {
    if (this.#closed) throw new SecureLoginError('ERR_STORE_IO', `${this.path} is closed`)
    if (this.#readOnly) throw new SecureLoginError('ERR_INTERNAL', `${this.path} was opened read-only`)
    if (this.#failed) throw this.#failed
  }

  async #append(plaintexts: Buffer[]): Promise<number[]> {
    this.#writable()
    const file = this.#file
    const first = file.index.count
    if (first + plaintexts.length > this.maxRecordsPerKey) {
      throw new SecureLoginError(
        'ERR_STORE_IO',
        `${this.path} holds ${this.maxRecordsPerKey} records under one data key, the most random nonces allow`,
        {
          hint: 'compact the store to rotate its data key',
        },
      )
    }
    const records = plaintexts.map((plaintext, i) =>
      frameRecord(seal(file.dataKey, plaintext, recordAad(this.storeId, first + i))),
    )
    const bytes = records.length === 1 ? records[0]! : Buffer.concat(records)
    try {
      await file.handle.write(bytes, 0, bytes.length, file.end)
      await file.handle.sync()
    } catch (error) {
      // Leave no half record behind to corrupt the next append; refuse writes from now on.
      this.#failed = ioError(`cannot write to ${this.path}`, error)
      await file.handle.truncate(file.end).catch(() => {})
      throw this.#failed
    }
    return records.map((record) => {
      file.index.push(file.end, record.length - LENGTH_PREFIX_BYTES)
      file.end += record.length
      return file.index.count - 1
    })
  }
}

export interface Rewrite {
  /** Queues one encoded entry; returns the sequence number of the record it lands in and its offset there. */
  add(entry: Buffer): { seq: number; at: number }
  /** Writes out what is buffered when there is enough of it. */
  pump(): Promise<void>
  /** Inside `exclusive`: finish, rename over, then `swap` (synchronously) to the new file. */
  commit(swap: () => void): Promise<void>
  abort(): Promise<void>
}

/** Writes a whole store file to a temporary name beside the target, then renames it into place. */
class FileWriter {
  readonly #path: string
  readonly #tmp: string
  readonly #handle: FileHandle
  readonly #dataKey: Buffer
  readonly #storeId: Buffer
  #headerChecksum: Buffer = Buffer.alloc(0)
  readonly #index = new RecordIndex()
  #end = 0
  #buffered: Buffer[] = []
  #bufferedBytes = 0
  #page: Buffer[] = []
  #pageBytes = 0

  private constructor(path: string, tmp: string, handle: FileHandle, dataKey: Buffer, storeId: Buffer) {
    this.#path = path
    this.#tmp = tmp
    this.#handle = handle
    this.#dataKey = dataKey
    this.#storeId = storeId
  }

  /** A fresh data key unless one is given (rekey keeps it), wrapped under `kek`. */
  static async create(
    path: string,
    kek: Buffer,
    header: { kdf: KdfParams; salt: Buffer; storeId: Buffer },
    purpose = 'new',
    dataKey?: Buffer,
  ): Promise<FileWriter> {
    const tmp = join(
      dirname(path),
      `.${basename(path)}.${purpose}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
    )
    const handle = await openFile(tmp, 'wx+', 0o600).catch((error) => {
      throw ioError(`cannot create ${tmp}`, error)
    })
    const key = dataKey ? Buffer.from(dataKey) : randomBytes(DATA_KEY_BYTES)
    const aad = encodeWrapAad(header.kdf, header.salt, header.storeId)
    const writer = new FileWriter(path, tmp, handle, key, header.storeId)
    const headerBytes = encodeHeader(aad, seal(kek, key, aad))
    writer.#headerChecksum = headerChecksum(headerBytes)
    writer.#push(headerBytes)
    return writer
  }

  addRecord(plaintext: Buffer): number {
    const seq = this.#index.count
    const record = frameRecord(seal(this.#dataKey, plaintext, recordAad(this.#storeId, seq)))
    this.#index.push(this.#end, record.length - LENGTH_PREFIX_BYTES)
    this.#push(record)
    return seq
  }

  addEntry(entry: Buffer): { seq: number; at: number } {
    if (this.#pageBytes > 0 && this.#pageBytes + entry.length > PAGE_BYTES) this.#sealPage()
    const at = this.#pageBytes
    this.#page.push(entry)
    this.#pageBytes += entry.length
    return { seq: this.#index.count, at }
  }

  async pump(): Promise<void> {
    if (this.#bufferedBytes >= WRITE_BUFFER_BYTES) await this.#flush()
  }

  /** Copies sealed records verbatim (rekey: same data key, same sequence numbers). */
  async copyRecords(from: FileHandle, start: number, stop: number): Promise<void> {
    await this.#flush()
    const chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, Math.max(stop - start, 1)))
    for (let at = start; at < stop;) {
      const { bytesRead } = await from.read(chunk, 0, Math.min(chunk.length, stop - at), at)
      if (bytesRead === 0) throw ioError(`${this.#path} ended early`)
      await this.#handle.write(chunk, 0, bytesRead, this.#end + (at - start))
      at += bytesRead
    }
    this.#end += stop - start
  }

  /** Seals the last page, writes everything and fsyncs the file (not yet renamed). */
  async finish(index?: RecordIndex): Promise<FileState> {
    if (this.#pageBytes > 0) this.#sealPage()
    await this.#flush()
    await this.#handle.sync()
    return new FileState(this.#handle, this.#dataKey, index ?? this.#index, this.#end, this.#headerChecksum)
  }

  async commit(): Promise<void> {
    await rename(this.#tmp, this.#path)
    await syncDirectory(dirname(this.#path))
  }

  async abort(): Promise<void> {
    this.#dataKey.fill(0)
    await this.#handle.close().catch(() => {})
    await rm(this.#tmp, { force: true })
  }

  #sealPage(): void {
    this.addRecord(Buffer.concat(this.#page, this.#pageBytes))
    this.#page = []
    this.#pageBytes = 0
  }

  #push(bytes: Buffer): void {
    this.#buffered.push(bytes)
    this.#bufferedBytes += bytes.length
    this.#end += bytes.length
  }

  async #flush(): Promise<void> {
    if (this.#bufferedBytes === 0) return
    const bytes = Buffer.concat(this.#buffered, this.#bufferedBytes)
    const position = this.#end - this.#bufferedBytes
    this.#buffered = []
    this.#bufferedBytes = 0
    await this.#handle.write(bytes, 0, bytes.length, position)
  }
}

/** Reads the header only: no passphrase needed. */
export async function readHeader(path: string): Promise<{ header: Header; fileSize: number }> {
  const handle = await openFile(path, 'r').catch((error) => {
    throw storeReadError(path, error)
  })
  try {
    const size = await sizeOfStoreFile(handle, path)
    const head = Buffer.alloc(Math.min(size, HEADER_BYTES))
    await handle.read(head, 0, head.length, 0)
    return { header: decodeHeader(head, path), fileSize: size }
  } finally {
    await handle.close()
  }
}

async function sizeOfStoreFile(handle: FileHandle, path: string): Promise<number> {
  const stat = await handle.stat()
  if (stat.isDirectory()) throw ioError(`${path} is a directory, not a store file`)
  if (!stat.isFile()) throw ioError(`${path} is not a regular file`)
  return stat.size
}

function unwrapDataKey(kek: Buffer, header: Header): Buffer | undefined {
  return open(kek, header.wrappedKey, header.aad)
}

/**
 * Calls `each` with every whole record from `start` to `stop`, reading big chunks. Returns the
 * end of the last whole record: short of `stop` when the file ends inside a record (a torn tail).
 */
async function readRecords(
  handle: FileHandle,
  start: number,
  stop: number,
  path: string,
  each: (offset: number, box: Buffer) => void,
  afterChunk: () => Promise<void> = async () => {},
): Promise<number> {
  let chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, Math.max(stop - start, 0)))
  let chunkStart = start
  let chunkLength = 0
  let offset = start
  let index = 0
  const ensure = async (from: number, length: number): Promise<boolean> => {
    if (from + length > stop) return false
    if (from >= chunkStart && from + length <= chunkStart + chunkLength) return true
    await afterChunk()
    const want = Math.min(Math.max(length, READ_CHUNK_BYTES), stop - from)
    if (chunk.length < want) chunk = Buffer.alloc(want)
    const { bytesRead } = await handle.read(chunk, 0, want, from)
    chunkStart = from
    chunkLength = bytesRead
    return bytesRead >= length
  }
  while (offset < stop) {
    if (!(await ensure(offset, LENGTH_PREFIX_BYTES))) break
    const length = chunk.readUInt32BE(offset - chunkStart)
    if (length < MIN_RECORD_BYTES || length > MAX_RECORD_BYTES) {
      if (await zerosToEnd(handle, offset, stop)) break // space allocated by a crash, never written
      throw corrupt(`record ${index} at offset ${offset} of ${path} has an impossible length (${length} bytes)`)
    }
    if (!(await ensure(offset, LENGTH_PREFIX_BYTES + length))) break
    const at = offset - chunkStart + LENGTH_PREFIX_BYTES
    each(offset, chunk.subarray(at, at + length))
    offset += LENGTH_PREFIX_BYTES + length
    index += 1
  }
  return offset
}

async function zerosToEnd(handle: FileHandle, from: number, stop: number): Promise<boolean> {
  if (stop - from > MAX_RECORD_BYTES) return false
  const rest = Buffer.alloc(stop - from)
  await handle.read(rest, 0, rest.length, from)
  return rest.every((byte) => byte === 0)
}

/** A crash during compaction or rekey leaves its temporary file; the complete store is the other one. */
async function removeLeftovers(path: string, report: Report | undefined): Promise<void> {
  const prefix = `.${basename(path)}.`
  for (const name of await readdir(dirname(path))) {
    if ((name.startsWith(prefix) && name.endsWith('.tmp')) || name.startsWith(stateTempPrefix(path))) {
      await rm(join(dirname(path), name), { force: true })
      report?.('store_leftover_removed', { path: join(dirname(path), name) })
    }
  }
}

function frameRecord(box: Buffer): Buffer {
  const record = Buffer.alloc(LENGTH_PREFIX_BYTES + box.length)
  record.writeUInt32BE(box.length, 0)
  box.copy(record, LENGTH_PREFIX_BYTES)
  return record
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await (await openFile(path, 'r')).close()
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    return true
  }
}

export function storeReadError(path: string, error: unknown): SecureLoginError {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EISDIR') return ioError(`${path} is a directory, not a store file`, error)
  if (code === 'ENOENT')
    return new SecureLoginError('ERR_STORE_IO', `no store at ${path}`, {
      cause: error,
      hint: 'check --store, or make one with securelogin store init',
    })
  if (code === 'EACCES' || code === 'EPERM') return ioError(`no permission to read ${path}`, error)
  return ioError(`cannot read ${path}`, error)
}

export function ioError(message: string, cause?: unknown): SecureLoginError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return new SecureLoginError(
    'ERR_STORE_IO',
    code ? `${message} (${code})` : message,
    cause === undefined ? {} : { cause },
  )
}
