import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../protocol/errors.js'
import type { Role } from '../protocol/messages.js'
import { DEFAULT_KDF, type KdfParams } from './kdf.js'
import type { PasswordKdf } from '../auth/password-stretch.js'
import type { RecoveryHashes } from '../auth/recovery-codes.js'
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
import { verifyAuditChain, type AuditVerification } from './audit.js'
import type { AuditHead } from '../protocol/calls.js'

export interface UserRecord {
  username: string
  /** SRP salt, hex. */
  salt: string
  /** SRP verifier, hex. */
  verifier: string
  /** How the client stretched the password before deriving x; sent back in every challenge. */
  kdf: PasswordKdf
  /** TOTP secret, base32. */
  totpSecret: string
  role: Role
  createdAt: string
  /** The TOTP time step of the code that confirmed enrolment: no login may reuse it. */
  enrolledStep?: number
  /** Set by `admin reset-2fa`: the next login enrols a new authenticator before it ends. */
  totpReset?: boolean
}

/** The last successful login of a user: when, and which TOTP time step its code was for. */
export interface LoginRecord {
  at: string
  totpStep: number
}

/** Consecutive failed logins of a user and, once locked, until when (ms since the epoch). */
export interface GuardRecord {
  failures: number
  lockedUntil: number | null
}

/** One change of a `commit`: a put, or a delete. */
export type StoreChange = { key: string; value: unknown } | { key: string; delete: true }

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
  users: number
}

export interface OpenOptions {
  /** Only when creating. */
  kdf?: KdfParams
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
}

export interface CompactResult {
  recordsBefore: number
  recordsAfter: number
  bytesBefore: number
  bytesAfter: number
  ms: number
}

export interface Store {
  readonly path: string
  getUser(username: string): Promise<UserRecord | undefined>
  hasUser(username: string): boolean
  userCount(): number
  /**
   * Appends the account as one sealed record, fsync'd before this resolves; its recovery-code
   * hashes, if given, go in the record before it, in the same write, so a crash can leave at
   * most hashes without an account (replaced at the name's next registration), never the reverse.
   */
  addUser(user: UserRecord, recovery?: RecoveryHashes): Promise<void>
  /** Many accounts, one record each, with one fsync for all (bulk import, and filling benchmark stores). */
  addUsers(users: UserRecord[]): Promise<void>
  /** Records a successful login (fsync'd before this resolves). */
  recordLogin(username: string, login: LoginRecord): Promise<void>
  /** The same record as a change, to commit with others (the login's session and audit entry). */
  loginChange(username: string, login: LoginRecord): StoreChange
  getLogin(username: string): Promise<LoginRecord | undefined>
  /** A user's recovery-code hashes (a used code's hash is null). */
  getRecovery(username: string): Promise<RecoveryHashes | undefined>
  setRecovery(username: string, recovery: RecoveryHashes): Promise<void>
  /** Failed-login state of a user, kept across restarts (issue 5); undefined clears it. */
  getGuard(username: string): Promise<GuardRecord | undefined>
  setGuard(username: string, guard: GuardRecord | undefined): Promise<void>
  /**
   * Generic records, for the server's own repositories (sessions, invites, the audit log). Keys
   * are `kind/name`; values are JSON. docs/store-format.md lists every kind.
   */
  get<T>(key: string): Promise<T | undefined>
  has(key: string): boolean
  /** Live keys that start with `prefix`, in no particular order. */
  keys(prefix: string): string[]
  /** Puts and deletes as one sealed record, all or nothing, fsync'd before this resolves. */
  commit(changes: StoreChange[]): Promise<void>
  /** 32 random bytes made with the store, for decoy SRP credentials. */
  serverSecret(): Buffer
  stats(): StoreStats
  /** Rewrites the live state under a fresh data key into a new file and renames it over. */
  compact(): Promise<CompactResult>
  /** Wraps the data key under a new passphrase; the old one stops working. */
  rekey(passphrase: string, kdf?: KdfParams): Promise<void>
  close(): Promise<void>
}

const PACK_AFTER = 16_384
const SECRET_KEY = 'server/secret'
const userKey = (username: string) => `user/${username}`
const loginKey = (username: string) => `login/${username}`
const guardKey = (username: string) => `guard/${username}`
const recoveryKey = (username: string) => `recovery/${username}`

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
    const secret = entry(OP_PUT, SECRET_KEY, { secret: randomBytes(32).toString('hex') })
    const journal = await Journal.create(path, passphrase, opts.kdf ?? DEFAULT_KDF, [secret], journalOptions(opts))
    const state = new State()
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
    const state = new State()
    const { journal } = await Journal.open(path, passphrase, {
      onRecord: (seq, plaintext) => state.replay(seq, plaintext, path),
      ...(opts.onReport ? { report: opts.onReport } : {}),
      ...journalOptions(opts),
    })
    return await JournalStore.start(journal, state, lock, opts)
  } catch (error) {
    await lock.release()
    throw error
  }
}

/**
 * Opens read-only and authenticates every record, then checks the audit log's hash chain (against
 * `auditAnchor`, an earlier head, when given); changes nothing on disk.
 */
export async function verifyStore(
  path: string,
  passphrase: string,
  opts: { onReport?: Report; lock?: StoreLock; auditAnchor?: AuditHead } = {},
): Promise<{ stats: StoreStats; tornTail: TornTail | undefined; audit: AuditVerification }> {
  const lock = opts.lock ?? (await acquireLock(path, opts.onReport))
  try {
    const state = new State()
    const { journal, tornTail } = await Journal.open(path, passphrase, {
      onRecord: (seq, plaintext) => state.replay(seq, plaintext, path),
      readOnly: true,
      ...(opts.onReport ? { report: opts.onReport } : {}),
    })
    try {
      if (!state.keydir.has(keyBytes(SECRET_KEY)))
        throw new SecureLoginError('ERR_STORE_CORRUPT', `${path} has no server secret`)
      const read = async (key: string): Promise<unknown> => {
        const where = state.keydir.get(keyBytes(key))
        return where === undefined ? undefined : JSON.parse((await readValue(journal, where)).toString('utf8'))
      }
      const audit = await verifyAuditChain(
        read,
        (prefix) => state.keydir.keysWithPrefix(keyBytes(prefix)),
        opts.auditAnchor,
      )
      return { stats: statsOf(journal, state), tornTail, audit }
    } finally {
      await journal.close()
    }
  } finally {
    await lock.release()
  }
}

export async function readStoreHeader(path: string): Promise<StoreHeaderInfo> {
  const { header, fileSize } = await readHeader(path)
  return { formatVersion: header.formatVersion, kdf: header.kdf, storeId: header.storeId.toString('hex'), fileSize }
}

const USER_PREFIX = Buffer.from('user/')
/** Called for every entry at open: a byte loop, not Buffer.compare (whose argument checks cost 0.4 s at 1M). */
function isUserKey(bytes: Buffer, start: number, end: number): boolean {
  if (end - start <= USER_PREFIX.length) return false
  for (let i = 0; i < USER_PREFIX.length; i++) if (bytes[start + i] !== USER_PREFIX[i]) return false
  return true
}
const keyBytes = (key: string) => Buffer.from(key, 'utf8')

/** The current state: where each key's latest entry is, and the counts compaction needs. */
class State {
  keydir = new KeyDirectory()
  entries = 0
  events = 0
  users = 0
  /** Records holding a single entry (appends, not compaction's pages). */
  unpacked = 0

  get live(): number {
    return this.keydir.size + this.events
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
    if (isUserKey(bytes, keyStart, keyEnd)) this.users += (op === OP_PUT ? 1 : 0) - (had ? 1 : 0)
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
  #compacting: Promise<CompactResult> | undefined
  #closing = false
  /** Appends queued but not yet written. */
  #pending = 0

  private constructor(journal: Journal, state: State, lock: StoreLock, secret: Buffer, opts: OpenOptions) {
    this.#journal = journal
    this.#state = state
    this.#lock = lock
    this.#secret = secret
    this.#report = opts.onReport ?? (() => {})
    this.#autoCompact = opts.autoCompact ?? true
    this.#packAfter = opts.packAfter ?? PACK_AFTER
  }

  static async start(journal: Journal, state: State, lock: StoreLock, opts: OpenOptions): Promise<JournalStore> {
    try {
      const where = state.keydir.get(keyBytes(SECRET_KEY))
      if (where === undefined) throw new SecureLoginError('ERR_STORE_CORRUPT', `${journal.path} has no server secret`)
      const { secret } = JSON.parse((await readValue(journal, where)).toString('utf8')) as { secret: string }
      const store = new JournalStore(journal, state, lock, Buffer.from(secret, 'hex'), opts)
      store.#maybeCompact()
      return store
    } catch (error) {
      await journal.close()
      throw error
    }
  }

  get path(): string {
    return this.#journal.path
  }

  async getUser(username: string): Promise<UserRecord | undefined> {
    return this.#get<UserRecord>(userKey(username))
  }

  hasUser(username: string): boolean {
    return this.#state.keydir.has(keyBytes(userKey(username)))
  }

  userCount(): number {
    return this.#state.users
  }

  async addUser(user: UserRecord, recovery?: RecoveryHashes): Promise<void> {
    if (this.hasUser(user.username)) {
      throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${user.username} is taken`, {
        hint: 'choose another user name',
      })
    }
    await this.#putMany([
      ...(recovery ? [[recoveryKey(user.username), recovery] as [string, unknown]] : []),
      [userKey(user.username), { ...user }],
    ])
  }

  async addUsers(users: UserRecord[]): Promise<void> {
    const names = new Set(users.map((user) => user.username))
    const taken = users.find((user) => this.hasUser(user.username))
    if (taken || names.size !== users.length) {
      throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${taken?.username ?? 'given twice'} is taken`, {
        hint: 'choose another user name',
      })
    }
    await this.#putMany(users.map((user) => [userKey(user.username), { ...user }]))
  }

  async recordLogin(username: string, login: LoginRecord): Promise<void> {
    await this.#put(loginKey(username), login)
  }

  loginChange(username: string, login: LoginRecord): StoreChange {
    return { key: loginKey(username), value: login }
  }

  async getLogin(username: string): Promise<LoginRecord | undefined> {
    return this.#get<LoginRecord>(loginKey(username))
  }

  async getRecovery(username: string): Promise<RecoveryHashes | undefined> {
    return this.#get<RecoveryHashes>(recoveryKey(username))
  }

  async setRecovery(username: string, recovery: RecoveryHashes): Promise<void> {
    await this.#put(recoveryKey(username), recovery)
  }

  async getGuard(username: string): Promise<GuardRecord | undefined> {
    return this.#get<GuardRecord>(guardKey(username))
  }

  async setGuard(username: string, guard: GuardRecord | undefined): Promise<void> {
    if (guard) return this.#put(guardKey(username), guard)
    if (this.#state.keydir.has(keyBytes(guardKey(username))))
      await this.#write([[OP_DELETE, guardKey(username), undefined]])
  }

  get<T>(key: string): Promise<T | undefined> {
    return this.#get<T>(key)
  }

  has(key: string): boolean {
    return this.#state.keydir.has(keyBytes(key))
  }

  keys(prefix: string): string[] {
    return this.#state.keydir.keysWithPrefix(keyBytes(prefix))
  }

  async commit(changes: StoreChange[]): Promise<void> {
    if (changes.length === 0) return
    await this.#write(
      changes.map((change) =>
        'delete' in change ? [OP_DELETE, change.key, undefined] : [OP_PUT, change.key, change.value],
      ),
      true,
    )
  }

  serverSecret(): Buffer {
    return Buffer.from(this.#secret)
  }

  stats(): StoreStats {
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

  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    await this.#compacting?.catch(() => {})
    this.#secret.fill(0)
    await this.#journal.close()
    await this.#lock.release()
  }

  async #get<T>(key: string): Promise<T | undefined> {
    const where = this.#state.keydir.get(keyBytes(key))
    if (where === undefined) return undefined
    return JSON.parse((await readValue(this.#journal, where)).toString('utf8')) as T
  }

  async #put(key: string, value: unknown): Promise<void> {
    await this.#write([[OP_PUT, key, value]])
  }

  async #putMany(pairs: Array<[string, unknown]>): Promise<void> {
    await this.#write(pairs.map(([key, value]) => [OP_PUT, key, value]))
  }

  /** Each change its own record (one fsync for all), or with `packed` all in one record: all or nothing. */
  async #write(changes: Array<[Op, string, unknown]>, packed = false): Promise<void> {
    if (this.#closing) throw new SecureLoginError('ERR_SHUTTING_DOWN', 'the store is closing')
    const entries = changes.map(([op, key, value]) =>
      op === OP_DELETE ? encodeEntry({ op, key, value: Buffer.alloc(0) }) : entry(op, key, value),
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
      await this.#journal.appendMany(records, (seqs) => {
        let at = 0
        entries.forEach((bytes, i) => {
          const [seq, offset] = packed ? [seqs[0]!, at] : [seqs[i]!, 0]
          const record = records[packed ? 0 : i]!
          this.#state.apply(
            changes[i]![0],
            record,
            offset + ENTRY_KEY_START,
            offset + bytes.readUInt16BE(1) + ENTRY_KEY_START,
            place(seq, offset),
          )
          at += bytes.length
        })
        this.#state.unpacked += records.length === 1 && entries.length > 1 ? 0 : records.length
      })
    } finally {
      this.#pending -= records.length
    }
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
    const next = new State()
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

async function readValue(journal: Journal, where: number): Promise<Buffer> {
  const seq = Math.floor(where / SEQ_FACTOR)
  return entryAt(await journal.read(seq), where - seq * SEQ_FACTOR).value
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
    users: state.users,
  }
}

function journalOptions(opts: OpenOptions): { maxRecordsPerKey: number } {
  return { maxRecordsPerKey: opts.maxRecordsPerKey ?? MAX_RECORDS_PER_KEY }
}
