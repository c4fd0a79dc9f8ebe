import { z } from 'zod'
import type { Store, StoreChange } from '../store/index.js'
import { Notice, type SessionInfo } from '../protocol/calls.js'
import { hashToken, issueToken, sameHash } from './opaque-tokens.js'
import { readStored } from './stored.js'

// Durable sessions (docs/protocol.md, "Sessions"). A login ends with a fresh token; the store
// keeps only its hash, under `session/ID`. A session ends at the first of: its absolute expiry
// (12 h after the login), 30 min without use, a logout, a revoke. Every session is also kept in
// memory, so checking one costs no disk read; a use is written back at most once a minute, so
// a crash forgets at most a minute of idleness (the session then ends that much sooner). An
// ended session is deleted when it is next presented, at start-up, or by the server's sweep.

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

export const sessionKey = (id: string) => `session/${id}`

export class Sessions {
  readonly #store: Store
  readonly #times: SessionTimes
  readonly #byId = new Map<string, SessionRecord>()
  /** When each session's lastSeenAt was last written. */
  readonly #written = new Map<string, number>()

  private constructor(store: Store, times: SessionTimes) {
    this.#store = store
    this.#times = times
  }

  /** Loads every session; ended ones are deleted. */
  static async load(store: Store, times: SessionTimes, nowMs: number): Promise<Sessions> {
    const sessions = new Sessions(store, times)
    const ended: StoreChange[] = []
    for (const key of await store.keys('session/')) {
      const record = await readStored(store, key, SessionRecord, 'session')
      if (!record) continue
      if (sessions.#alive(record, nowMs)) {
        sessions.#byId.set(record.id, record)
        sessions.#written.set(record.id, record.lastSeenAt)
      } else ended.push({ key, delete: true })
    }
    await store.commit(ended)
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
    return { token, record, change: { key: sessionKey(id), value: record } }
  }

  /** Call once the create's change is committed. */
  added(record: SessionRecord): void {
    this.#byId.set(record.id, record)
    this.#written.set(record.id, record.lastSeenAt)
  }

  /** The live session a token names, marked as used now; undefined when unknown, ended or revoked. */
  async resume(token: string, nowMs: number): Promise<SessionRecord | undefined> {
    const { hash, id } = hashToken(token)
    const record = this.#byId.get(id)
    if (!record || !sameHash(record.hash, hash)) return undefined
    if (!this.#alive(record, nowMs)) {
      await this.#forget([record.id])
      return undefined
    }
    await this.touch(record.id, nowMs)
    return record
  }

  /** The live session, or undefined (ended ones are deleted on the way). */
  async check(id: string, nowMs: number): Promise<SessionRecord | undefined> {
    const record = this.#byId.get(id)
    if (!record) return undefined
    if (this.#alive(record, nowMs)) return record
    await this.#forget([id])
    return undefined
  }

  /** Marks a use: in memory now, in the store when the last write is over a minute old. */
  async touch(id: string, nowMs: number): Promise<void> {
    const record = this.#byId.get(id)
    if (!record) return
    record.lastSeenAt = Math.max(record.lastSeenAt, nowMs)
    if (nowMs - (this.#written.get(id) ?? 0) < TOUCH_WRITE_MS) return
    this.#written.set(id, nowMs)
    await this.#store.commit([{ key: sessionKey(id), value: record }])
  }

  /** Live sessions, of one user or of all. */
  list(nowMs: number, user?: string): SessionRecord[] {
    return [...this.#byId.values()].filter(
      (record) => (user === undefined || record.user === user) && this.#alive(record, nowMs),
    )
  }

  get(id: string): SessionRecord | undefined {
    return this.#byId.get(id)
  }

  /** Store changes that delete these sessions; call `removed` once they are committed. */
  revokeChanges(ids: string[]): StoreChange[] {
    return ids.filter((id) => this.#byId.has(id)).map((id) => ({ key: sessionKey(id), delete: true }))
  }

  removed(ids: string[]): void {
    for (const id of ids) {
      this.#byId.delete(id)
      this.#written.delete(id)
    }
  }

  /** Store changes that leave `notice` on these sessions; call `noticed` once they are committed. */
  noticeChanges(ids: string[], notice: Notice): StoreChange[] {
    return ids.flatMap((id) => {
      const record = this.#byId.get(id)
      return record ? [{ key: sessionKey(id), value: { ...record, notice } }] : []
    })
  }

  noticed(ids: string[], notice: Notice): void {
    for (const id of ids) {
      const record = this.#byId.get(id)
      if (record) record.notice = notice
    }
  }

  /** The session's notice has been given: it is deleted (nothing, if the session has ended meanwhile). */
  async noticeGiven(id: string): Promise<void> {
    const record = this.#byId.get(id)
    if (!record?.notice) return
    delete record.notice
    await this.#store.commit([{ key: sessionKey(id), value: record }])
  }

  /** Ids of a user's live sessions, but `except` (ended ones are the sweep's: they are not counted as revoked). */
  idsOf(user: string, nowMs: number, except?: string): string[] {
    return this.list(nowMs, user)
      .filter((record) => record.id !== except)
      .map((record) => record.id)
  }

  /** Deletes every ended session that nobody has presented since it ended; returns how many. */
  async sweep(nowMs: number): Promise<number> {
    const ended = [...this.#byId.values()].filter((record) => !this.#alive(record, nowMs)).map((record) => record.id)
    if (ended.length > 0) await this.#forget(ended)
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

  async #forget(ids: string[]): Promise<void> {
    const changes = this.revokeChanges(ids)
    this.removed(ids)
    await this.#store.commit(changes)
  }
}
