import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { setImmediate } from 'node:timers/promises'
import { dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../base/errors.js'
import { DEFAULT_KDF, type KdfParams } from './kdf.js'
import { Journal, readHeader, MAX_RECORDS_PER_KEY, type Report, type TornTail } from './journal.js'
import { acquireLock, type StoreLock } from './lock.js'
import {
  OP_DELETE,
  OP_EVENT,
  OP_PUT,
  ENTRY_KEY_START,
  encodeEntry,
  entryAt,
  forEachEntry,
  FORMAT_VERSION,
  type Op,
} from './format.js'
import { KeyDirectory } from './keydir.js'
import {
  STATE_MARKER_KEY,
  findRollback,
  missingProblem,
  readState,
  refuseOrphanState,
  rollbackError,
  statePathOf,
  writeState,
  type FileBytes,
  type FileIdentity,
} from './state.js'

/**
 * Which write of a key a reader saw: opaque, and valid while this store is open. A compaction
 * renumbers, so a version read before one no longer matches (the commit fails as a conflict and
 * the caller reads again): a false conflict is possible, a false match is not.
 */
export type Version = string

/**
 * One change of a `commit`: a put, or a delete. With `expect`, the commit goes ahead only if the
 * key is still at that version (null: still absent); otherwise nothing of it is written and it
 * fails with ERR_STORE_CONFLICT (StoreConflict).
 */
export type StoreChange = ({ key: string; value: unknown } | { key: string; delete: true }) & {
  expect?: Version | null
}

/** A commit's `expect` did not hold: another commit changed the key first. */
export class StoreConflict extends SecureLoginError {
  readonly key: string
  constructor(key: string) {
    super('ERR_STORE_CONFLICT', `${key} was changed by another commit`, { hint: 'read it again and retry' })
    this.key = key
  }
}

export interface StoreHeaderInfo {
  formatVersion: number
  kdf: KdfParams
  storeId: string
  fileSize: number
}

export interface StoreStats extends StoreHeaderInfo {
  /** Sealed records in the file. */
  records: number
  /** Entries in those records; live ones are the current state, dead ones are superseded. */
  entries: number
  live: number
  dead: number
  /** Live keys under each prefix the store was opened to count (`countedPrefixes`). */
  counted: Record<string, number>
}

export interface OpenOptions {
  /** Only when creating. */
  kdf?: KdfParams
  /** Key prefixes whose live keys are counted as the journal replays: `count()` is then O(1). */
  countedPrefixes?: readonly string[]
  /** Things worth a log line that are not failures (a torn tail cut off, a compaction). */
  onReport?: Report
  /** A lock already taken (the server takes it before asking for the passphrase); the store releases it at close. */
  lock?: StoreLock
  /** Compact by itself when dead entries outnumber live ones or too many records are unpacked (default true). */
  autoCompact?: boolean
  /** Records one data key may seal before a compaction rotates it (tests lower it). */
  maxRecordsPerKey?: number
  /** Single-entry records after which a compaction packs them (open time stays low at a million users). */
  packAfter?: number
  /**
   * Keep the state file beside the store (src/store/state.ts) and compare the store with it at
   * open: 'refuse' a store older than it names (ERR_STORE_ROLLBACK), or 'accept' one (a backup
   * restored on purpose; reported as `store_rollback_accepted`). Unset: no state file is read or
   * written (tests of the layers below, and copies of a store opened to look inside).
   */
  rollback?: RollbackMode
  /** While commits arrive, the state file is rewritten at most this often (default 10 s). */
  stateEveryMs?: number
}

export type RollbackMode = 'refuse' | 'accept'

export interface CompactResult {
  recordsBefore: number
  recordsAfter: number
  bytesBefore: number
  bytesAfter: number
  ms: number
}

/**
 * A generic encrypted key-value store. Keys are `kind/name`, values JSON; the module that owns a
 * kind parses its values (docs/store-format.md lists every kind). This is the whole interface a
 * physical layer offers the server: the journal file (this file) is one, PostgreSQL the next.
 */
export interface Store {
  readonly path: string
  get<T>(key: string): Promise<T | undefined>
  /** The value and the version to name in a later commit's `expect`. */
  getVersioned<T>(key: string): Promise<{ value: T; version: Version } | undefined>
  /** The version of a key, or null when it is absent. */
  version(key: string): Promise<Version | null>
  has(key: string): Promise<boolean>
  /** Live keys that start with `prefix`, in no particular order. */
  keys(prefix: string): Promise<string[]>
  /** Live keys under `prefix`: O(1) for a counted prefix, a scan otherwise. */
  count(prefix: string): Promise<number>
  /** Puts and deletes as one sealed record, all or nothing, fsync'd before this resolves. */
  commit(changes: StoreChange[]): Promise<void>
  /**
   * Each change its own record, with one write and one fsync for all: for bulk loads, where one
   * record could not hold them all. Not atomic as a whole; `expect` is not allowed.
   */
  commitEach(changes: StoreChange[]): Promise<void>
  /** 32 random bytes made with the store, for decoy SRP credentials. */
  serverSecret(): Buffer
  stats(): Promise<StoreStats>
  /** Reads and authenticates every record again (what `store verify` checks at open). */
  verify(): Promise<StoreStats>
  /** Rewrites the live state under a fresh data key into a new file and renames it over. */
  compact(): Promise<CompactResult>
  /** Wraps the data key under a new passphrase; the old one stops working. */
  rekey(passphrase: string, kdf?: KdfParams): Promise<void>
  /**
   * Whether the store can serve now (the operator listener's /readyz): undefined when it can,
   * else a short reason for a person ("store closed", "store write failed", "database
   * unreachable"). Cheap enough to ask on every request: what costs a round trip is cached.
   */
  health(): Promise<string | undefined>
  close(): Promise<void>
}

const PACK_AFTER = 16_384
/** Synchronous reads between two turns of the event loop: about 1.5 ms of them (see #breathe). */
const READS_PER_TURN = 64
const SECRET_KEY = 'server/secret'
/**
 * A crash (not a clean stop) leaves the state file at most this far behind the store: the window
 * in which a rollback goes unnoticed. Each write costs two fsyncs, so not one per commit.
 */
const STATE_EVERY_MS = 10_000

/** An entry's place: record seq * 2^20 + its offset in the record's plaintext (records are at most 1 MiB). */
const SEQ_FACTOR = 2 ** 20
const place = (seq: number, at: number) => seq * SEQ_FACTOR + at

export function storeExists(path: string): boolean {
  return existsSync(path)
}

/** Makes a new store (refusing to replace one), with a fresh server secret as its first record. */
export async function createStore(path: string, passphrase: string, opts: OpenOptions = {}): Promise<Store> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const lock = opts.lock ?? (await acquireLock(path, opts.onReport))
  try {
    if (storeExists(path))
      throw new SecureLoginError('ERR_STORE_IO', `${path} already exists`, {
        hint: 'open it instead, or choose another --store',
      })
    if (opts.rollback) await refuseOrphanState(path, opts.rollback, opts.onReport)
    const secret = entry(OP_PUT, SECRET_KEY, { secret: randomBytes(32).toString('hex') })
    // The marker goes in the first record: a store that keeps a state file says so from the start.
    const first = opts.rollback ? Buffer.concat([secret, stateMarker()]) : secret
    const journal = await Journal.create(path, passphrase, opts.kdf ?? DEFAULT_KDF, [first], journalOptions(opts))
    const state = new State(opts.countedPrefixes)
    await journal.scan(0, journal.recordCount, (seq, plaintext) => state.replay(seq, plaintext, path))
    return await JournalStore.start(journal, state, lock, opts)
  } catch (error) {
    await lock.release()
    throw error
  }
}

export async function openStore(path: string, passphrase: string, opts: OpenOptions = {}): Promise<Store> {
  const lock = opts.lock ?? (await acquireLock(path, opts.onReport))
  try {
    const state = new State(opts.countedPrefixes)
    const mode = opts.rollback
    const { journal } = await Journal.open(path, passphrase, {
      onRecord: (seq, plaintext) => state.replay(seq, plaintext, path),
      ...(opts.onReport ? { report: opts.onReport } : {}),
      ...journalOptions(opts),
      ...(mode
        ? {
            check: (file: FileBytes) =>
              checkRollback(path, file, state.keydir.has(keyBytes(STATE_MARKER_KEY)), mode, opts.onReport),
          }
        : {}),
    })
    return await JournalStore.start(journal, state, lock, opts)
  } catch (error) {
    await lock.release()
    throw error
  }
}

/** A read-only view of a store's state, for what a verification checks beyond the records. */
export interface StoreView {
  get(key: string): Promise<unknown>
  keys(prefix: string): Promise<string[]>
}

/**
 * Opens read-only and authenticates every record, then runs `inspect` on the state (the audit
 * log's chain check); changes nothing on disk.
 */
export async function verifyStore<T = undefined>(
  path: string,
  passphrase: string,
  opts: {
    onReport?: Report
    lock?: StoreLock
    countedPrefixes?: readonly string[]
    inspect?: (view: StoreView) => Promise<T>
  } = {},
): Promise<{ stats: StoreStats; tornTail: TornTail | undefined; inspected: T | undefined }> {
  const lock = opts.lock ?? (await acquireLock(path, opts.onReport))
  try {
    const state = new State(opts.countedPrefixes)
    const { journal, tornTail } = await Journal.open(path, passphrase, {
      onRecord: (seq, plaintext) => state.replay(seq, plaintext, path),
      readOnly: true,
      ...(opts.onReport ? { report: opts.onReport } : {}),
    })
    try {
      if (!state.keydir.has(keyBytes(SECRET_KEY)))
        throw new SecureLoginError('ERR_STORE_CORRUPT', `${path} has no server secret`)
      const view: StoreView = {
        async get(key) {
          const where = state.keydir.get(keyBytes(key))
          return where === undefined ? undefined : JSON.parse(readValue(journal, where).toString('utf8'))
        },
        keys: async (prefix) => state.keydir.keysWithPrefix(keyBytes(prefix)),
      }
      const inspected = opts.inspect ? await opts.inspect(view) : undefined
      return { stats: statsOf(journal, state), tornTail, inspected }
    } finally {
      await journal.close()
    }
  } finally {
    await lock.release()
  }
}

/**
 * At open, once every record has authenticated and before anything changes on disk: is the store
 * at least as far as its state file says? `marked`: the store says it keeps a state file.
 */
async function checkRollback(
  path: string,
  file: FileBytes,
  marked: boolean,
  mode: RollbackMode,
  report: Report | undefined,
): Promise<void> {
  const read = await readState(path)
  let problem: string | undefined
  if (read.kind === 'absent') {
    if (!marked) {
      // A store from before state files, or opened with them for the first time: from now on.
      report?.('store_state_started', { path: statePathOf(path) })
      return
    }
    problem = missingProblem(path)
  } else if (read.kind === 'unreadable') problem = read.problem
  else problem = await findRollback(path, read.state, file)
  if (problem === undefined) return
  if (mode === 'refuse') throw rollbackError(problem)
  report?.('store_rollback_accepted', { path, problem })
}

/** `{"since"}`: when the store began to keep a state file. */
const stateMarkerValue = () => ({ since: new Date().toISOString() })
const stateMarker = () => entry(OP_PUT, STATE_MARKER_KEY, stateMarkerValue())

export async function readStoreHeader(path: string): Promise<StoreHeaderInfo> {
  const { header, fileSize } = await readHeader(path)
  return { formatVersion: header.formatVersion, kdf: header.kdf, storeId: header.storeId.toString('hex'), fileSize }
}

/** A prefix whose live keys are counted as entries are applied. */
class Counter {
  readonly prefix: Buffer
  n = 0
  constructor(prefix: string) {
    this.prefix = Buffer.from(prefix, 'utf8')
  }
  /** Called for every entry at open: a byte loop, not Buffer.compare (whose argument checks cost 0.4 s at 1M). */
  matches(bytes: Buffer, start: number, end: number): boolean {
    const prefix = this.prefix
    if (end - start <= prefix.length) return false
    for (let i = 0; i < prefix.length; i++) if (bytes[start + i] !== prefix[i]) return false
    return true
  }
}
const keyBytes = (key: string) => Buffer.from(key, 'utf8')

/** The current state: where each key's latest entry is, and the counts compaction needs. */
class State {
  keydir = new KeyDirectory()
  entries = 0
  events = 0
  readonly counters: Counter[]
  /** Records holding a single entry (appends, not compaction's pages). */
  unpacked = 0

  constructor(countedPrefixes: readonly string[] = []) {
    this.counters = countedPrefixes.map((prefix) => new Counter(prefix))
  }

  get live(): number {
    return this.keydir.size + this.events
  }

  counted(): Record<string, number> {
    return Object.fromEntries(this.counters.map((counter) => [counter.prefix.toString('utf8'), counter.n]))
  }

  replay(seq: number, plaintext: Buffer, path: string): void {
    let count = 0
    const whole = forEachEntry(plaintext, (op, keyStart, keyEnd, _end, at) => {
      this.apply(op, plaintext, keyStart, keyEnd, place(seq, at))
      count += 1
    })
    if (!whole || count === 0) {
      // Authentic but unreadable: written by a newer version, never by an attacker without the key.
      throw new SecureLoginError(
        'ERR_STORE_CORRUPT',
        `record ${seq} of ${path} holds entries this securelogin cannot read`,
        {
          hint: 'was this store written by a newer securelogin?',
        },
      )
    }
    if (count === 1) this.unpacked += 1
  }

  apply(op: Op, bytes: Buffer, keyStart: number, keyEnd: number, where: number): void {
    this.entries += 1
    if (op === OP_EVENT) {
      this.events += 1
      return
    }
    const had =
      op === OP_PUT ? this.keydir.set(bytes, keyStart, keyEnd, where) : this.keydir.delete(bytes, keyStart, keyEnd)
    for (const counter of this.counters) {
      if (counter.matches(bytes, keyStart, keyEnd)) counter.n += (op === OP_PUT ? 1 : 0) - (had ? 1 : 0)
    }
  }
}

class JournalStore implements Store {
  readonly #journal: Journal
  #state: State
  readonly #lock: StoreLock
  readonly #report: Report
  readonly #autoCompact: boolean
  readonly #packAfter: number
  #secret: Buffer
  readonly #countedPrefixes: readonly string[]
  /** Bumped when a compaction swaps files: part of every version, so old places never match new ones. */
  #generation = 0
  #compacting: Promise<CompactResult> | undefined
  #closing = false
  /** Appends queued but not yet written. */
  #pending = 0
  /** Reads since the event loop last turned for one (see #breathe). */
  #readsThisTurn = 0
  /** Whether the state file is kept (OpenOptions.rollback), and when it is next rewritten. */
  readonly #keepsState: boolean
  readonly #stateEveryMs: number
  #stateTimer: NodeJS.Timeout | undefined

  private constructor(journal: Journal, state: State, lock: StoreLock, secret: Buffer, opts: OpenOptions) {
    this.#journal = journal
    this.#state = state
    this.#lock = lock
    this.#secret = secret
    this.#report = opts.onReport ?? (() => {})
    this.#autoCompact = opts.autoCompact ?? true
    this.#packAfter = opts.packAfter ?? PACK_AFTER
    this.#countedPrefixes = opts.countedPrefixes ?? []
    this.#keepsState = opts.rollback !== undefined
    this.#stateEveryMs = opts.stateEveryMs ?? STATE_EVERY_MS
  }

  static async start(journal: Journal, state: State, lock: StoreLock, opts: OpenOptions): Promise<JournalStore> {
    let store: JournalStore | undefined
    try {
      const where = state.keydir.get(keyBytes(SECRET_KEY))
      if (where === undefined) throw new SecureLoginError('ERR_STORE_CORRUPT', `${journal.path} has no server secret`)
      const { secret } = JSON.parse(readValue(journal, where).toString('utf8')) as { secret: string }
      store = new JournalStore(journal, state, lock, Buffer.from(secret, 'hex'), opts)
      if (store.#keepsState) await store.#startState()
      store.#maybeCompact()
      return store
    } catch (error) {
      if (store) {
        store.#closing = true
        clearTimeout(store.#stateTimer)
      }
      await journal.close()
      throw error
    }
  }

  get path(): string {
    return this.#journal.path
  }

  get<T>(key: string): Promise<T | undefined> {
    return this.#get<T>(key)
  }

  async getVersioned<T>(key: string): Promise<{ value: T; version: Version } | undefined> {
    await this.#breathe()
    const where = this.#state.keydir.get(keyBytes(key))
    if (where === undefined) return undefined
    // The version of the very entry read: taken in the same tick as the lookup.
    const version = this.#versionAt(where)
    return { value: JSON.parse(readValue(this.#journal, where).toString('utf8')) as T, version }
  }

  async version(key: string): Promise<Version | null> {
    return this.#currentVersion(key)
  }

  async has(key: string): Promise<boolean> {
    return this.#state.keydir.has(keyBytes(key))
  }

  async keys(prefix: string): Promise<string[]> {
    return this.#state.keydir.keysWithPrefix(keyBytes(prefix))
  }

  async count(prefix: string): Promise<number> {
    const counter = this.#state.counters.find((c) => c.prefix.toString('utf8') === prefix)
    return counter ? counter.n : this.#state.keydir.keysWithPrefix(keyBytes(prefix)).length
  }

  async commit(changes: StoreChange[]): Promise<void> {
    if (changes.length === 0) return
    await this.#write(changes, true)
  }

  async commitEach(changes: StoreChange[]): Promise<void> {
    if (changes.some((change) => change.expect !== undefined)) {
      throw new SecureLoginError('ERR_INTERNAL', 'commitEach cannot compare-and-set: use commit')
    }
    if (changes.length === 0) return
    await this.#write(changes, false)
  }

  async verify(): Promise<StoreStats> {
    // Scanning decrypts every record under the data key: one that fails to authenticate throws.
    await this.#journal.exclusive(() => this.#journal.scan(0, this.#journal.recordCount, () => {}))
    return this.stats()
  }

  serverSecret(): Buffer {
    return Buffer.from(this.#secret)
  }

  async stats(): Promise<StoreStats> {
    return statsOf(this.#journal, this.#state)
  }

  compact(): Promise<CompactResult> {
    this.#compacting ??= this.#compact().finally(() => {
      this.#compacting = undefined
    })
    return this.#compacting
  }

  async rekey(passphrase: string, kdf: KdfParams = DEFAULT_KDF): Promise<void> {
    await this.#compacting?.catch(() => {})
    await this.#journal.rekey(passphrase, kdf)
    this.#report('store_rekeyed', { path: this.path })
  }

  async health(): Promise<string | undefined> {
    if (this.#closing) return 'store closed'
    // A write that failed (a full disk, an I/O error) stops every later one: see Journal#append.
    if (this.#journal.writeFailed) return 'store write failed'
    return undefined
  }

  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    await this.#compacting?.catch(() => {})
    if (this.#keepsState) {
      clearTimeout(this.#stateTimer)
      // A clean stop leaves the state file exactly where the store is: no window at all.
      await this.#saveState()
    }
    this.#secret.fill(0)
    await this.#journal.close()
    await this.#lock.release()
  }

  /**
   * From now on the state file follows the store: written now (and the marker committed, for a
   * store that did not keep one yet), around every compaction and rekey, at most every
   * `stateEveryMs` while commits arrive, and at close. A first write that fails stops the open.
   */
  async #startState(): Promise<void> {
    const write = (current: FileIdentity, next?: FileIdentity) =>
      writeState(this.path, this.#journal.storeId, current, next)
    this.#journal.switchHooks = {
      before: (current, next) => write(current, next),
      // The new file is in place; a state that still names both old and new is right meanwhile.
      after: (current) => write(current).catch((error: SecureLoginError) => this.#stateFailed(error)),
    }
    if (!(await this.has(STATE_MARKER_KEY))) await this.commit([{ key: STATE_MARKER_KEY, value: stateMarkerValue() }])
    await this.#journal.exclusive(async () => write(await this.#journal.identity()))
  }

  #stateChanged(): void {
    if (!this.#keepsState || this.#stateTimer || this.#closing) return
    this.#stateTimer = setTimeout(() => {
      this.#stateTimer = undefined
      void this.#saveState()
    }, this.#stateEveryMs)
    this.#stateTimer.unref()
  }

  /** Inside the append queue, so the identity written is of the file as it is, not mid-switch. */
  async #saveState(): Promise<void> {
    await this.#journal
      .exclusive(async () => writeState(this.path, this.#journal.storeId, await this.#journal.identity()))
      .catch((error: SecureLoginError) => this.#stateFailed(error))
  }

  #stateFailed(error: SecureLoginError): void {
    this.#report('store_state_write_failed', {
      path: statePathOf(this.path),
      code: error.code ?? 'ERR_STORE_IO',
      message: error.message,
    })
  }

  async #get<T>(key: string): Promise<T | undefined> {
    await this.#breathe()
    const where = this.#state.keydir.get(keyBytes(key))
    if (where === undefined) return undefined
    return JSON.parse(readValue(this.#journal, where).toString('utf8')) as T
  }

  /**
   * Reads are synchronous (Journal.read), so a loop over many records (every session of a
   * user, the audit chain) would hold the event loop for all of them: every READS_PER_TURN reads,
   * a read first lets the loop turn. Before the lookup, never between it and the read.
   */
  async #breathe(): Promise<void> {
    if (++this.#readsThisTurn < READS_PER_TURN) return
    this.#readsThisTurn = 0
    await setImmediate()
  }

  #versionAt(where: number): Version {
    return `${this.#generation}.${where}`
  }

  #currentVersion(key: string): Version | null {
    const where = this.#state.keydir.get(keyBytes(key))
    return where === undefined ? null : this.#versionAt(where)
  }

  /** Runs in the append queue, after every earlier commit has been applied: the compare of compare-and-set. */
  #checkExpectations(changes: StoreChange[]): void {
    for (const change of changes) {
      if (change.expect !== undefined && this.#currentVersion(change.key) !== change.expect) {
        throw new StoreConflict(change.key)
      }
    }
  }

  /** Each change its own record (one fsync for all), or with `packed` all in one record: all or nothing. */
  async #write(changes: StoreChange[], packed: boolean): Promise<void> {
    if (this.#closing) throw new SecureLoginError('ERR_SHUTTING_DOWN', 'the store is closing')
    const ops: Op[] = changes.map((change) => ('delete' in change ? OP_DELETE : OP_PUT))
    const entries = changes.map((change, i) =>
      'delete' in change
        ? encodeEntry({ op: OP_DELETE, key: change.key, value: Buffer.alloc(0) })
        : entry(ops[i]!, change.key, change.value),
    )
    const records = packed ? [Buffer.concat(entries)] : entries
    // Never let one data key seal more records than random nonces allow: rotate it first.
    while (this.#journal.recordCount + this.#pending + records.length > this.#journal.maxRecordsPerKey) {
      const { recordsAfter } = await this.compact()
      if (recordsAfter + this.#pending + records.length > this.#journal.maxRecordsPerKey) {
        throw new SecureLoginError(
          'ERR_STORE_IO',
          `${this.path}: the live state alone needs ${recordsAfter} records, the most one data key may seal`,
        )
      }
    }
    this.#pending += records.length
    try {
      const check = changes.some((change) => change.expect !== undefined)
      await this.#journal.appendMany(
        records,
        (seqs) => {
          let at = 0
          entries.forEach((bytes, i) => {
            const [seq, offset] = packed ? [seqs[0]!, at] : [seqs[i]!, 0]
            const record = records[packed ? 0 : i]!
            this.#state.apply(
              ops[i]!,
              record,
              offset + ENTRY_KEY_START,
              offset + bytes.readUInt16BE(1) + ENTRY_KEY_START,
              place(seq, offset),
            )
            at += bytes.length
          })
          this.#state.unpacked += records.length === 1 && entries.length > 1 ? 0 : records.length
        },
        check ? () => this.#checkExpectations(changes) : undefined,
      )
    } finally {
      this.#pending -= records.length
    }
    this.#stateChanged()
    this.#maybeCompact()
  }

  #maybeCompact(): void {
    if (!this.#autoCompact || this.#compacting || this.#closing) return
    const state = this.#state
    const dead = state.entries - state.live
    const reason =
      dead > state.live
        ? 'dead entries outnumber live ones'
        : state.unpacked > this.#packAfter
          ? 'many unpacked records'
          : this.#journal.recordCount >= this.#journal.maxRecordsPerKey * 0.75
            ? 'data key nearing its record limit'
            : undefined
    if (!reason) return
    this.compact().then(
      (result) => this.#report('store_compacted', { path: this.path, reason, ...result }),
      (error: SecureLoginError) => {
        if (!this.#closing)
          this.#report('store_compaction_failed', {
            path: this.path,
            code: error.code ?? 'ERR_STORE_IO',
            message: error.message,
          })
      },
    )
  }

  /**
   * Two phases. Outside the append queue, copy the entries that are live now from the records
   * that exist now; appends go on meanwhile. Then, inside the queue, copy every entry appended
   * since, in order, and switch files: the new file's replay gives exactly the current state.
   */
  async #compact(): Promise<CompactResult> {
    const started = performance.now()
    const recordsBefore = this.#journal.recordCount
    const bytesBefore = this.#journal.fileSize
    const rewrite = await this.#journal.rewrite()
    const next = new State(this.#countedPrefixes)
    const bail = async () => {
      if (this.#closing) throw new SecureLoginError('ERR_SHUTTING_DOWN', 'the store is closing; compaction abandoned')
      await rewrite.pump()
    }
    const copy = (op: Op, plaintext: Buffer, keyStart: number, keyEnd: number, at: number, end: number) => {
      const { seq, at: newAt } = rewrite.add(plaintext.subarray(at, end))
      next.apply(op, plaintext, keyStart, keyEnd, place(seq, newAt))
    }
    try {
      const upTo = recordsBefore
      await this.#journal.scan(
        0,
        upTo,
        (seq, plaintext) => {
          forEachEntry(plaintext, (op, keyStart, keyEnd, end, at) => {
            if (
              op === OP_EVENT ||
              (op === OP_PUT && this.#state.keydir.get(plaintext, keyStart, keyEnd) === place(seq, at))
            )
              copy(op, plaintext, keyStart, keyEnd, at, end)
          })
        },
        bail,
      )
      return await this.#journal.exclusive(async () => {
        await this.#journal.scan(
          upTo,
          this.#journal.recordCount,
          (_seq, plaintext) => {
            forEachEntry(plaintext, (op, keyStart, keyEnd, end, at) => {
              // A delete matters only if the new file holds a put it must undo.
              if (op !== OP_DELETE || next.keydir.has(plaintext, keyStart, keyEnd))
                copy(op, plaintext, keyStart, keyEnd, at, end)
            })
          },
          bail,
        )
        await rewrite.commit(() => {
          next.unpacked = 0
          this.#state = next
          this.#generation += 1
        })
        return {
          recordsBefore,
          recordsAfter: this.#journal.recordCount,
          bytesBefore,
          bytesAfter: this.#journal.fileSize,
          ms: Math.round(performance.now() - started),
        }
      })
    } catch (error) {
      await rewrite.abort()
      throw error
    }
  }
}

function readValue(journal: Journal, where: number): Buffer {
  const seq = Math.floor(where / SEQ_FACTOR)
  return entryAt(journal.read(seq), where - seq * SEQ_FACTOR).value
}

function entry(op: Op, key: string, value: unknown): Buffer {
  return encodeEntry({ op, key, value: Buffer.from(JSON.stringify(value), 'utf8') })
}

function statsOf(journal: Journal, state: State): StoreStats {
  return {
    formatVersion: FORMAT_VERSION,
    kdf: journal.kdf,
    storeId: journal.storeId.toString('hex'),
    fileSize: journal.fileSize,
    records: journal.recordCount,
    entries: state.entries,
    live: state.live,
    dead: state.entries - state.live,
    counted: state.counted(),
  }
}

function journalOptions(opts: OpenOptions): { maxRecordsPerKey: number } {
  return { maxRecordsPerKey: opts.maxRecordsPerKey ?? MAX_RECORDS_PER_KEY }
}
