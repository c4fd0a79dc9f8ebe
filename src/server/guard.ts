import { z } from 'zod'
import { StoreConflict, type Store, type StoreChange } from '../store/index.js'
import type { Logger } from './logger.js'
import { readStored, readStoredVersioned } from './stored.js'
import { hasUser } from './accounts.js'
import type { ServerMetrics } from './metrics.js'

// Online guessing (issue 5; NIST SP 800-63B 5.2.2, OWASP ASVS V2.2): failed logins are counted
// per user name and per source address. From the `delayAfter`-th consecutive failure on, the
// failure answer waits, doubling up to `maxDelayMs`; at `lockAfter` failures the name is locked
// for `lockMs`, during which every login of it fails with the same generic answer.
//
// A name with an account keeps its count, its lock and its devices' counts in the store
// (`guard/NAME`), and the stored record is the authority for every server process that shares
// the store: one writer per name commits the failures queued in this process as a
// read-modify-write that expects the version it read, and on a conflict (another process counted
// meanwhile) reads again and applies them again. No count is lost, and the commit that crosses
// the limit is the one that locks, once, whichever process made it. The waits are counted in each
// process's memory, per name and per address, for every name alike (see `failed`); names without
// an account are counted there only (an attacker must not be able to fill the store).
//
// A count's write follows the answer when the answer does not wait: waiting for its fsync would
// make a real name's failure slower than an unknown name's (bench/enumeration.mjs measured 5 ms),
// which would tell a guesser that the name exists. An answer that waits anyway (from the
// `delayAfter`-th failure) waits for its count to be stored too, so the guesser's next try, on
// any process, meets it.

export interface GuardLimits {
  delayAfter: number
  /** At most 100, as NIST SP 800-63B allows. */
  lockAfter: number
  lockMs: number
  baseDelayMs: number
  maxDelayMs: number
}

export const DEFAULT_GUARD: GuardLimits = {
  delayAfter: 3,
  lockAfter: 10,
  lockMs: 15 * 60_000,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
}
export const MAX_LOCK_AFTER = 100

const Count = z.object({ failures: z.number(), lockedUntil: z.number().nullable() })
type Count = z.infer<typeof Count>

/** The stored count of a name with an account: the guard owns the `guard/` keys. */
const GuardRecord = z.object({
  failures: z.number(),
  lockedUntil: z.number().nullable(),
  /** Failures that came with a valid device key (src/server/devices.ts), by device id, oldest first. */
  devices: z.record(z.string(), Count).optional(),
})
type GuardRecord = z.infer<typeof GuardRecord>
const guardKey = (username: string) => `guard/${username}`
const NONE: GuardRecord = { failures: 0, lockedUntil: null }

/** Remembered per address and per unknown name, for at most this many entries (oldest dropped). */
const MEMORY_ENTRIES = 100_000
/**
 * Devices counted per name at most (the oldest dropped). Only a key issued at a full login can
 * add one, so a guesser cannot push out the count of a stolen key without the password and a code.
 */
const MAX_DEVICES = 32
/** Conflicts one write of a name's count meets before it gives up (and logs guard_write_failed). */
const WRITE_ATTEMPTS = 16

type ChangeKind =
  | { kind: 'failed'; device: string | undefined; at: number; address: string }
  | { kind: 'succeeded'; device: string | undefined }
  | { kind: 'unlock' }
/** A change to a name's count, queued in this process until its write. */
type Change = ChangeKind & { written: Deferred }

/** A lock one change made: logged, and (a name's) audited, once its write is stored. */
interface Locked {
  device: string | undefined
  address: string
  failures: number
  lockedUntil: number
}

export class Guard {
  readonly #store: Store
  readonly #limits: GuardLimits
  readonly #now: () => number
  readonly #logger: Logger
  readonly #metrics: ServerMetrics | undefined
  readonly #addresses = new Map<string, Count>()
  /**
   * Every name's failures in this process, for the wait (and the lock of a name with no
   * account); a real name's lock is the stored count's.
   */
  readonly #nameWaits = new Map<string, Count>()
  /** The same per name and device key. */
  readonly #deviceWaits = new Map<string, Count>()
  /** Known names' changes not yet stored, in order (the one being written first). */
  readonly #queued = new Map<string, Change[]>()
  /** The writer of each name that has queued changes. */
  readonly #writers = new Map<string, Promise<void>>()
  /** What this process last stored per name, and how many times: a read that a write overtook uses it. */
  readonly #stored = new Map<string, { n: number; record: GuardRecord }>()

  /** Called when a name becomes locked (the server audits it): once per lock, by the process whose write locked it. */
  onLocked: (username: string, address: string, failures: number, lockedUntil: number) => void = () => {}

  constructor(store: Store, limits: GuardLimits, now: () => number, logger: Logger, metrics?: ServerMetrics) {
    this.#store = store
    this.#limits = limits
    this.#now = now
    this.#logger = logger
    this.#metrics = metrics
  }

  /**
   * Whether the name is locked now (an expired lock counts as unlocked). With `device` (the id
   * of a device key issued to this name, src/server/devices.ts), whether that device is locked:
   * the name's own lock is for every other client.
   */
  async isLocked(username: string, known: boolean, device?: string): Promise<boolean> {
    const count = known
      ? countOf(await this.#view(username), device)
      : device !== undefined
        ? this.#deviceWaits.get(deviceKey(username, device))
        : this.#nameWaits.get(username)
    return count?.lockedUntil != null && count.lockedUntil > this.#now()
  }

  /**
   * Counts a failure; returns how long the failure answer must wait, and when the count is
   * stored (never rejects: a failed write is logged).
   */
  failed(
    username: string,
    address: string,
    known: boolean,
    device?: string,
  ): { delayMs: number; written: Promise<void> } {
    const now = this.#now()
    // The wait is counted in this process's memory, for every name alike: a wait that grew with
    // the stored count of a real name, and with one process's count of a name with no account,
    // would tell a guesser who reaches several processes which names exist. What stops guessing
    // is the lock, and a real name's lock is counted in the store, across every process.
    const memory = device !== undefined ? this.#deviceWaits : this.#nameWaits
    const key = device !== undefined ? deviceKey(username, device) : username
    const { next, locked } = countFailure(memory.get(key), now, this.#limits)
    remember(memory, key, next)
    let written: Promise<void> = Promise.resolve()
    if (known) {
      const change: Change = { kind: 'failed', device, at: now, address, written: deferred() }
      this.#enqueue(username, change)
      written = change.written.promise.catch(() => {})
    } else if (locked)
      this.#logLock(username, { device, address, failures: next.failures, lockedUntil: next.lockedUntil! })
    const byAddress = { failures: (this.#addresses.get(address)?.failures ?? 0) + 1, lockedUntil: null }
    remember(this.#addresses, address, byAddress)
    return { delayMs: Math.max(this.#delay(next.failures), this.#delay(byAddress.failures)), written }
  }

  /**
   * A full login (password and code) clears the address's count, and the name's, or with
   * `device` that device's only: a login from a person's own device must not lift the lock a
   * guesser elsewhere earned. Stored before it resolves.
   */
  async succeeded(username: string, address: string, device?: string): Promise<void> {
    this.#addresses.delete(address)
    if (device !== undefined) this.#deviceWaits.delete(deviceKey(username, device))
    else this.#nameWaits.delete(username)
    const view = await this.#view(username)
    const count = countOf(view, device)
    if (!count || (count.failures === 0 && count.lockedUntil === null)) return
    await this.#change(username, { kind: 'succeeded', device })
  }

  /** Until when a known name is locked (ms since the epoch), or null. */
  async lockedUntil(username: string): Promise<number | null> {
    const { lockedUntil } = await this.#view(username)
    return lockedUntil !== null && lockedUntil > this.#now() ? lockedUntil : null
  }

  /** An admin's unlock: the name's count and lock are cleared, durably. */
  async unlock(username: string): Promise<void> {
    this.#nameWaits.delete(username)
    await this.#change(username, { kind: 'unlock' })
  }

  /** A removed account: what this process remembers of its count goes (the store's goes with the account). */
  forget(username: string): void {
    this.#stored.delete(username)
    this.#nameWaits.delete(username)
  }

  /** Deletes the name's stored count, to commit with the account's removal. */
  async forgetChanges(username: string): Promise<StoreChange[]> {
    return (await this.#store.has(guardKey(username))) ? [{ key: guardKey(username), delete: true }] : []
  }

  /** Resolves when every queued count is in the store (before the store is closed). */
  async flush(): Promise<void> {
    while (this.#writers.size > 0) await Promise.all(this.#writers.values())
  }

  /** The stored record, or what this process stored since the read began (a read it overtook). */
  async #base(username: string): Promise<GuardRecord> {
    const before = this.#stored.get(username)?.n
    const read = await this.#read(username)
    const stored = this.#stored.get(username)
    return stored && stored.n !== before ? stored.record : (read ?? NONE)
  }

  /** The stored record with this process's queued changes on top. */
  async #view(username: string): Promise<GuardRecord> {
    const base = await this.#base(username)
    return (this.#queued.get(username) ?? []).reduce((record, change) => this.#apply(record, change).record, base)
  }

  /** Queues a change and waits until it is stored. */
  async #change(username: string, change: ChangeKind): Promise<void> {
    const queued: Change = { ...change, written: deferred() }
    this.#enqueue(username, queued)
    await queued.written.promise
  }

  #enqueue(username: string, change: Change): void {
    const queued = this.#queued.get(username)
    if (queued) queued.push(change)
    else this.#queued.set(username, [change])
    if (!this.#writers.has(username)) {
      const writer = this.#drain(username).finally(() => this.#writers.delete(username))
      this.#writers.set(username, writer)
    }
  }

  /**
   * Writes the name's queued changes until none is left: each round takes all that are queued,
   * so under a flood of guesses one commit carries many. Never rejects.
   */
  async #drain(username: string): Promise<void> {
    // Changes queued in the same tick join the first round.
    await Promise.resolve()
    for (let queued = this.#queued.get(username); queued && queued.length > 0;) {
      const round = queued.slice()
      try {
        const { record, locks } = await this.#write(username, round)
        const previous = this.#stored.get(username)
        this.#stored.delete(username)
        this.#stored.set(username, { n: (previous?.n ?? 0) + 1, record })
        if (this.#stored.size > MEMORY_ENTRIES) this.#stored.delete(this.#stored.keys().next().value!)
        queued.splice(0, round.length)
        for (const lock of locks) this.#logLock(username, lock)
        for (const change of round) change.written.resolve()
      } catch (error) {
        queued.splice(0, round.length)
        this.#logger.log('error', 'guard_write_failed', { user: username, error: String(error) })
        for (const change of round) change.written.reject(error)
      }
    }
    this.#queued.delete(username)
  }

  /** One read-modify-write of a name's record that expects the version it read; again on a conflict. */
  async #write(username: string, changes: Change[]): Promise<{ record: GuardRecord; locks: Locked[] }> {
    for (let attempt = 1; ; attempt++) {
      const read = await readStoredVersioned(this.#store, guardKey(username), GuardRecord, 'failed-login')
      // A count for an account removed meanwhile (its record went with it) is not kept.
      if (!read && !(await hasUser(this.#store, username))) return { record: NONE, locks: [] }
      let record = read?.value ?? NONE
      const locks: Locked[] = []
      for (const change of changes) {
        const applied = this.#apply(record, change)
        record = applied.record
        if (applied.locked) locks.push(applied.locked)
      }
      const empty = record.failures === 0 && record.lockedUntil === null && !record.devices
      const write: StoreChange | undefined = empty
        ? read && { key: guardKey(username), delete: true, expect: read.version }
        : { key: guardKey(username), value: record, expect: read?.version ?? null }
      try {
        if (write) await this.#store.commit([write])
        return { record, locks }
      } catch (error) {
        if (!(error instanceof StoreConflict) || attempt >= WRITE_ATTEMPTS) throw error
      }
    }
  }

  /** The record after one change, and the lock it made, if any. */
  #apply(record: GuardRecord, change: Change): { record: GuardRecord; locked?: Locked } {
    if (change.kind === 'unlock') return { record: withDevices({ failures: 0, lockedUntil: null }, record.devices) }
    if (change.kind === 'succeeded') {
      if (change.device === undefined)
        return { record: withDevices({ failures: 0, lockedUntil: null }, record.devices) }
      const { [change.device]: _, ...devices } = record.devices ?? {}
      return { record: withDevices({ failures: record.failures, lockedUntil: record.lockedUntil }, devices) }
    }
    const { device, at, address } = change
    const { next, locked } = countFailure(countOf(record, device), at, this.#limits)
    const lock = locked ? { device, address, failures: next.failures, lockedUntil: next.lockedUntil! } : undefined
    if (device === undefined) {
      const updated = withDevices(next, record.devices)
      return lock ? { record: updated, locked: lock } : { record: updated }
    }
    const { [device]: _, ...others } = record.devices ?? {}
    const devices = Object.entries({ ...others, [device]: next }).slice(-MAX_DEVICES)
    const updated = withDevices(
      { failures: record.failures, lockedUntil: record.lockedUntil },
      Object.fromEntries(devices),
    )
    return lock ? { record: updated, locked: lock } : { record: updated }
  }

  #logLock(username: string, lock: Locked): void {
    const { device, address, failures, lockedUntil } = lock
    this.#metrics?.locked(device === undefined ? 'name' : 'device')
    if (device !== undefined) {
      this.#logger.log('warn', 'device_locked', { user: username, address, failures, device })
      return
    }
    this.#logger.log('warn', 'user_locked', {
      user: username,
      address,
      failures,
      until: new Date(lockedUntil).toISOString(),
    })
    this.onLocked(username, address, failures, lockedUntil)
  }

  #read(username: string): Promise<GuardRecord | undefined> {
    return readStored(this.#store, guardKey(username), GuardRecord, 'failed-login')
  }

  #delay(failures: number): number {
    if (failures < this.#limits.delayAfter) return 0
    return Math.min(this.#limits.baseDelayMs * 2 ** (failures - this.#limits.delayAfter), this.#limits.maxDelayMs)
  }
}

/** One more failure on a count (an expired lock starts it again), and whether it locked. */
function countFailure(previous: Count | undefined, now: number, limits: GuardLimits): { next: Count; locked: boolean } {
  const prior = previous ?? { failures: 0, lockedUntil: null }
  const expired = prior.lockedUntil !== null && prior.lockedUntil <= now
  const failures = (expired ? 0 : prior.failures) + 1
  const lockedUntil =
    !expired && prior.lockedUntil !== null
      ? prior.lockedUntil
      : failures >= limits.lockAfter
        ? now + limits.lockMs
        : null
  return { next: { failures, lockedUntil }, locked: lockedUntil !== null && prior.lockedUntil !== lockedUntil }
}

/** The name's own count, or with `device` that device's (undefined when it has none). */
function countOf(record: GuardRecord, device: string | undefined): Count | undefined {
  if (device === undefined) return { failures: record.failures, lockedUntil: record.lockedUntil }
  return record.devices?.[device]
}

function withDevices(count: Count, devices: Record<string, Count> | undefined): GuardRecord {
  return devices && Object.keys(devices).length > 0 ? { ...count, devices } : count
}

const deviceKey = (username: string, device: string) => `${username}\0${device}`

function remember(map: Map<string, Count>, key: string, count: Count): void {
  map.delete(key)
  map.set(key, count)
  if (map.size > MEMORY_ENTRIES) map.delete(map.keys().next().value!)
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (error: unknown) => void
}

function deferred(): Deferred {
  let resolve!: () => void
  let reject!: (error: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  // A failure's count is awaited only sometimes; its rejection is logged by the writer.
  promise.catch(() => {})
  return { promise, resolve, reject }
}
