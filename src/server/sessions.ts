import { z } from 'zod'
import { StoreConflict, type Store, type StoreChange } from '../store/index.js'
import { Notice, type SessionInfo } from '../protocol/calls.js'
import { hashToken, issueToken, sameHash } from './opaque-tokens.js'
import { readStoredVersioned, type Versioned } from './stored.js'
import { retryOnConflict } from './retry.js'

// Durable sessions (docs/protocol.md, "Sessions"). A login ends with a fresh token; the store
// keeps only its hash, under `session/ID`. A session ends at the first of: its absolute expiry
// (12 h after the login), 30 min without use, a logout, a revoke. The store is the authority:
// every request reads its session's record, so a session revoked, ended or deleted by any
// process sharing the store is refused by every other at its next request. A use is written back
// at most once a minute per process (the throttle is the only thing kept in memory), so the
// stored last use may lag by up to a minute: a process that did not see the latest use may end
// the session up to a minute sooner, as a crash would. An ended session is deleted when it is
// next presented, at start-up, or by the server's sweep.

export const SessionRecord = z.object({
  id: z.string(),
  hash: z.string(),
  user: z.string(),
  createdAt: z.number(),
  lastSeenAt: z.number(),
  absoluteExpiresAt: z.number(),
  address: z.string(),
  /** How the login proved the second factor. */
  factor: z.enum(['totp', 'recovery_code']),
  /** Waits for this session's next call, whose result carries it once (src/server/calls.ts). */
  notice: Notice.optional(),
})
export type SessionRecord = z.infer<typeof SessionRecord>

export interface SessionTimes {
  idleMs: number
  absoluteMs: number
}

export const DEFAULT_SESSION_TIMES: SessionTimes = { idleMs: 30 * 60_000, absoluteMs: 12 * 60 * 60_000 }
const TOUCH_WRITE_MS = 60_000

const SESSION_PREFIX = 'session/'
export const sessionKey = (id: string) => `${SESSION_PREFIX}${id}`
/** Conflicts the sweep meets (sessions used meanwhile, each then kept) before it stops for now. */
const SWEEP_ATTEMPTS = 16

export class Sessions {
  readonly #store: Store
  readonly #times: SessionTimes
  /**
   * Sessions used on this process: when their last use was last written to the store, and the
   * latest use seen here (newer than the stored one while the write waits its minute).
   */
  readonly #uses = new Map<string, { written: number; seen: number }>()

  private constructor(store: Store, times: SessionTimes) {
    this.#store = store
    this.#times = times
  }

  /** Deletes the ended sessions in the store, then serves from it. */
  static async load(store: Store, times: SessionTimes, nowMs: number): Promise<Sessions> {
    const sessions = new Sessions(store, times)
    await sessions.sweep(nowMs)
    return sessions
  }

  get times(): SessionTimes {
    return this.#times
  }

  /** A new session for a login: the token goes to the client once; the store gets the change to commit. */
  create(
    user: string,
    factor: SessionRecord['factor'],
    address: string,
    nowMs: number,
    randomBytes: (size: number) => Buffer,
  ): { token: string; record: SessionRecord; change: StoreChange } {
    const { token, hash, id } = issueToken('session', randomBytes)
    const record: SessionRecord = {
      id,
      hash,
      user,
      createdAt: nowMs,
      lastSeenAt: nowMs,
      absoluteExpiresAt: nowMs + this.#times.absoluteMs,
      address,
      factor,
    }
    return { token, record, change: { key: sessionKey(id), value: record, expect: null } }
  }

  /** The live session a token names, marked as used now; undefined when unknown, ended or revoked. */
  async resume(token: string, nowMs: number): Promise<SessionRecord | undefined> {
    const { hash, id } = hashToken(token)
    const read = await this.#read(id)
    if (!read || !sameHash(read.value.hash, hash)) return undefined
    return this.#live(read, nowMs, true)
  }

  /**
   * The live session, as stored now; undefined when it is gone or has ended (an ended one is
   * deleted on the way). With `touch`, marked as used now.
   */
  async check(id: string, nowMs: number, opts: { touch?: boolean } = {}): Promise<SessionRecord | undefined> {
    const read = await this.#read(id)
    return read && this.#live(read, nowMs, opts.touch ?? false)
  }

  /** Live sessions, of one user or of all: a scan of every stored session (no index by user yet). */
  async list(nowMs: number, user?: string): Promise<SessionRecord[]> {
    const live: SessionRecord[] = []
    for (const key of await this.#store.keys(SESSION_PREFIX)) {
      const read = await this.#read(key.slice(SESSION_PREFIX.length))
      if (read && (user === undefined || read.value.user === user) && this.#alive(read.value, nowMs))
        live.push(read.value)
    }
    return live
  }

  /** The stored session, live or ended, or undefined. */
  async get(id: string): Promise<SessionRecord | undefined> {
    return (await this.#read(id))?.value
  }

  /** Store changes that delete these sessions; call `removed` once they are committed. */
  revokeChanges(ids: string[]): StoreChange[] {
    return ids.map((id) => ({ key: sessionKey(id), delete: true }))
  }

  removed(ids: string[]): void {
    for (const id of ids) this.#uses.delete(id)
  }

  /**
   * Store changes that leave `notice` on these sessions, each on the record as read now: a
   * session revoked or changed meanwhile fails the commit (ERR_STORE_CONFLICT) rather than come
   * back to life.
   */
  async noticeChanges(ids: string[], notice: Notice): Promise<StoreChange[]> {
    const changes: StoreChange[] = []
    for (const id of ids) {
      const read = await this.#read(id)
      if (read) changes.push({ key: sessionKey(id), value: { ...read.value, notice }, expect: read.version })
    }
    return changes
  }

  /** The session's notice has been given: it is deleted (nothing, if the session has ended meanwhile). */
  async noticeGiven(id: string): Promise<void> {
    await retryOnConflict(async () => {
      const read = await this.#read(id)
      if (!read?.value.notice) return
      const { notice: _, ...rest } = read.value
      await this.#store.commit([{ key: sessionKey(id), value: rest, expect: read.version }])
    })
  }

  /** Ids of a user's live sessions, but `except` (ended ones are the sweep's: they are not counted as revoked). */
  async idsOf(user: string, nowMs: number, except?: string): Promise<string[]> {
    return (await this.list(nowMs, user)).filter((record) => record.id !== except).map((record) => record.id)
  }

  /**
   * Deletes every ended session that nobody has presented since it ended; returns how many. A
   * session that another process used meanwhile (its record changed since it was read) is kept.
   */
  async sweep(nowMs: number): Promise<number> {
    let ended: StoreChange[] = []
    for (const key of await this.#store.keys(SESSION_PREFIX)) {
      const read = await this.#read(key.slice(SESSION_PREFIX.length))
      if (read && !this.#alive(read.value, nowMs)) ended.push({ key, delete: true, expect: read.version })
    }
    for (let attempt = 1; ended.length > 0; attempt++) {
      try {
        await this.#store.commit(ended)
        break
      } catch (error) {
        if (!(error instanceof StoreConflict) || attempt >= SWEEP_ATTEMPTS) throw error
        ended = ended.filter((change) => change.key !== error.key)
      }
    }
    for (const change of ended) this.#uses.delete(change.key.slice(SESSION_PREFIX.length))
    // What this process remembers of sessions that are gone (ended or deleted elsewhere).
    for (const id of [...this.#uses.keys()]) if (!(await this.#store.has(sessionKey(id)))) this.#uses.delete(id)
    return ended.length
  }

  info(record: SessionRecord, currentId: string | undefined): SessionInfo {
    const iso = (ms: number) => new Date(ms).toISOString()
    return {
      id: record.id,
      user: record.user,
      createdAt: iso(record.createdAt),
      lastSeenAt: iso(record.lastSeenAt),
      expiresAt: iso(this.endsAt(record)),
      absoluteExpiresAt: iso(record.absoluteExpiresAt),
      address: record.address.slice(0, 64),
      current: record.id === currentId,
    }
  }

  endsAt(record: SessionRecord): number {
    return Math.min(record.absoluteExpiresAt, record.lastSeenAt + this.#times.idleMs)
  }

  #alive(record: SessionRecord, nowMs: number): boolean {
    return nowMs < this.endsAt(record)
  }

  /** The stored record, with the latest use this process has seen of it. */
  async #read(id: string): Promise<Versioned<SessionRecord> | undefined> {
    const read = await readStoredVersioned(this.#store, sessionKey(id), SessionRecord, 'session')
    if (!read) {
      this.#uses.delete(id)
      return undefined
    }
    const seen = this.#uses.get(id)?.seen ?? 0
    if (seen > read.value.lastSeenAt) read.value.lastSeenAt = seen
    return read
  }

  /**
   * The record if the session is live (used now, with `touch`); an ended one is deleted, unless
   * another process changed it meanwhile (then it is read and judged again).
   */
  async #live(read: Versioned<SessionRecord>, nowMs: number, touch: boolean): Promise<SessionRecord | undefined> {
    const { id } = read.value
    if (!this.#alive(read.value, nowMs)) {
      try {
        await this.#store.commit([{ key: sessionKey(id), delete: true, expect: read.version }])
        this.#uses.delete(id)
        return undefined
      } catch (error) {
        if (!(error instanceof StoreConflict)) throw error
        const again = await this.#read(id)
        return again && this.#alive(again.value, nowMs) ? this.#live(again, nowMs, touch) : undefined
      }
    }
    if (touch) await this.#touch(read, nowMs)
    return read.value
  }

  /**
   * Marks a use: noted here now, written when this process last wrote it over a minute ago. The
   * write expects the version read, so it never brings back a session revoked meanwhile.
   */
  async #touch({ value: record, version }: Versioned<SessionRecord>, nowMs: number): Promise<void> {
    const use = this.#uses.get(record.id)
    // Not used on this process before: its last write is the stored last use.
    const written = use?.written ?? record.lastSeenAt
    record.lastSeenAt = Math.max(record.lastSeenAt, nowMs)
    if (nowMs - written < TOUCH_WRITE_MS) {
      this.#uses.set(record.id, { written, seen: record.lastSeenAt })
      return
    }
    this.#uses.set(record.id, { written: nowMs, seen: record.lastSeenAt })
    try {
      await this.#store.commit([{ key: sessionKey(record.id), value: record, expect: version }])
    } catch (error) {
      // Revoked, or used and written by another process, meanwhile: the next request reads which.
      if (!(error instanceof StoreConflict)) throw error
    }
  }
}
