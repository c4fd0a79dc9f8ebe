import { z } from 'zod'
import type { Store, StoreChange } from '../store/index.js'
import type { Logger } from './logger.js'
import { readStored } from './stored.js'

// Online guessing (issue 5; NIST SP 800-63B 5.2.2, OWASP ASVS V2.2): failed logins are counted
// per user name and per source address. From the `delayAfter`-th consecutive failure on, the
// failure answer waits, doubling up to `maxDelayMs`; at `lockAfter` failures the name is locked
// for `lockMs`, during which every login of it fails with the same generic answer. A name with
// an account keeps its count in the store, so a restart does not reset it; names without an
// account and addresses are counted in memory (an attacker must not be able to fill the store).
//
// A known name's count is read from the store once, then kept in memory and updated there
// synchronously, so parallel failures cannot lose counts; the store write follows in order per
// name without holding up the answer. Waiting for its fsync would make a real name's failure
// answer slower than an unknown name's (bench/enumeration.mjs measured 5 ms), which would tell
// a guesser that the name exists. A crash inside that write loses at most the last count.

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

interface Count {
  failures: number
  lockedUntil: number | null
}

/** The stored count of a name with an account: the guard owns the `guard/` keys. */
const GuardRecord = z.object({ failures: z.number(), lockedUntil: z.number().nullable() })
const guardKey = (username: string) => `guard/${username}`

/** Remembered per address and per unknown name, for at most this many entries (oldest dropped). */
const MEMORY_ENTRIES = 100_000

export class Guard {
  readonly #store: Store
  readonly #limits: GuardLimits
  readonly #now: () => number
  readonly #logger: Logger
  readonly #addresses = new Map<string, Count>()
  readonly #unknownNames = new Map<string, Count>()
  /** Counts of failures that came with a valid device key, by name and device id. */
  readonly #devices = new Map<string, Count>()
  /** Known names' counts as stored (or about to be), most recently used last. */
  readonly #knownNames = new Map<string, Count>()
  /** The last store write queued per known name. */
  readonly #writes = new Map<string, Promise<void>>()
  /** The count a queued write that has not begun will store, per known name. */
  readonly #waiting = new Map<string, { count: Count | undefined }>()

  /** Called when a name becomes locked (the server audits it). */
  onLocked: (username: string, address: string, failures: number, lockedUntil: number) => void = () => {}

  constructor(store: Store, limits: GuardLimits, now: () => number, logger: Logger) {
    this.#store = store
    this.#limits = limits
    this.#now = now
    this.#logger = logger
  }

  /**
   * Whether the name is locked now (an expired lock counts as unlocked). With `device` (the id
   * of a device key issued to this name, src/server/devices.ts), whether that device is locked:
   * the name's own lock is for every other client.
   */
  async isLocked(username: string, known: boolean, device?: string): Promise<boolean> {
    const count =
      device !== undefined
        ? this.#devices.get(deviceKey(username, device))
        : known
          ? await this.#loadKnown(username)
          : this.#unknownNames.get(username)
    return count?.lockedUntil != null && count.lockedUntil > this.#now()
  }

  /** Counts a failure; returns how long the failure answer must wait. */
  async failed(username: string, address: string, known: boolean, device?: string): Promise<number> {
    if (device !== undefined) return this.#failedOnDevice(username, address, device)
    const read = known ? await this.#loadKnown(username) : undefined
    // From here to the return nothing awaits: the count is read and written in one step. The
    // count is the one in memory now, not the object the await gave: parallel failures of one
    // name all wait on the same load, and each must count on top of the others.
    const loaded = known ? (this.#knownNames.get(username) ?? read) : this.#unknownNames.get(username)
    const now = this.#now()
    const previous = loaded ?? { failures: 0, lockedUntil: null }
    const expired = previous.lockedUntil !== null && previous.lockedUntil <= now
    const failures = (expired ? 0 : previous.failures) + 1
    const lockedUntil =
      !expired && previous.lockedUntil !== null
        ? previous.lockedUntil
        : failures >= this.#limits.lockAfter
          ? now + this.#limits.lockMs
          : null
    const next = { failures, lockedUntil }
    if (known) this.#saveKnown(username, next)
    else remember(this.#unknownNames, username, next)
    if (lockedUntil !== null && previous.lockedUntil !== lockedUntil) {
      this.#logger.log('warn', 'user_locked', {
        user: username,
        address,
        failures,
        until: new Date(lockedUntil).toISOString(),
      })
      this.onLocked(username, address, failures, lockedUntil)
    }
    const byAddress = { failures: (this.#addresses.get(address)?.failures ?? 0) + 1, lockedUntil: null }
    remember(this.#addresses, address, byAddress)
    return Math.max(this.#delay(failures), this.#delay(byAddress.failures))
  }

  /**
   * A failure that came with a valid device key: counted on that device alone, in memory (a
   * restart forgets it, as it forgets addresses), and on the address as always.
   */
  #failedOnDevice(username: string, address: string, device: string): number {
    const key = deviceKey(username, device)
    const now = this.#now()
    const previous = this.#devices.get(key)
    const expired = previous?.lockedUntil != null && previous.lockedUntil <= now
    const failures = (previous && !expired ? previous.failures : 0) + 1
    const locked = previous && !expired && previous.lockedUntil !== null
    const lockedUntil = locked
      ? previous.lockedUntil
      : failures >= this.#limits.lockAfter
        ? now + this.#limits.lockMs
        : null
    remember(this.#devices, key, { failures, lockedUntil })
    if (lockedUntil !== null && !locked)
      this.#logger.log('warn', 'device_locked', { user: username, address, failures, device })
    const byAddress = { failures: (this.#addresses.get(address)?.failures ?? 0) + 1, lockedUntil: null }
    remember(this.#addresses, address, byAddress)
    return Math.max(this.#delay(failures), this.#delay(byAddress.failures))
  }

  /**
   * A full login (password and code) clears the address's count, and the name's, or with
   * `device` that device's only: a login from a person's own device must not lift the lock a
   * guesser elsewhere earned.
   */
  async succeeded(username: string, address: string, device?: string): Promise<void> {
    this.#addresses.delete(address)
    if (device !== undefined) {
      this.#devices.delete(deviceKey(username, device))
      return
    }
    const count = this.#knownNames.get(username)
    if (count && count.failures === 0 && count.lockedUntil === null) return
    this.#saveKnown(username, undefined)
    await this.#writes.get(username)
  }

  /** Until when a known name is locked (ms since the epoch), or null. */
  async lockedUntil(username: string): Promise<number | null> {
    const { lockedUntil } = await this.#loadKnown(username)
    return lockedUntil !== null && lockedUntil > this.#now() ? lockedUntil : null
  }

  /** An admin's unlock: the name's count and lock are cleared, durably. */
  async unlock(username: string): Promise<void> {
    this.#saveKnown(username, undefined)
    await this.#writes.get(username)
  }

  /** A removed account: its count goes (the store's record is deleted with the account). */
  forget(username: string): void {
    this.#knownNames.delete(username)
  }

  /** Deletes the name's stored count, to commit with the account's removal. */
  async forgetChanges(username: string): Promise<StoreChange[]> {
    return (await this.#store.has(guardKey(username))) ? [{ key: guardKey(username), delete: true }] : []
  }

  /** Resolves when every queued count is in the store (before the store is closed). */
  async flush(): Promise<void> {
    await Promise.all(this.#writes.values())
  }

  async #loadKnown(username: string): Promise<Count> {
    const cached = this.#knownNames.get(username)
    if (cached) return cached
    await this.#writes.get(username) // an entry dropped from memory may still be on its way to the store
    const stored = (await this.#read(username)) ?? { failures: 0, lockedUntil: null }
    // Another failure of the same name may have loaded (and counted) while this one read.
    const current = this.#knownNames.get(username)
    if (current) return current
    remember(this.#knownNames, username, stored)
    return stored
  }

  /**
   * Updates memory now and queues the store write behind the name's earlier ones. A write still
   * waiting its turn takes the newest count instead: under a flood of guesses only the last
   * count matters, and one fsync per guess held every other write of the store behind them.
   */
  #saveKnown(username: string, count: Count | undefined): void {
    remember(this.#knownNames, username, count ?? { failures: 0, lockedUntil: null })
    const waiting = this.#waiting.get(username)
    if (waiting) {
      waiting.count = count
      return
    }
    const next = { count }
    this.#waiting.set(username, next)
    const write = (this.#writes.get(username) ?? Promise.resolve())
      .then(() => {
        this.#waiting.delete(username)
        return this.#write(username, next.count)
      })
      .catch((error: unknown) =>
        this.#logger.log('error', 'guard_write_failed', { user: username, error: String(error) }),
      )
    this.#writes.set(username, write)
    void write.then(() => {
      if (this.#writes.get(username) === write) this.#writes.delete(username)
    })
  }

  #read(username: string): Promise<Count | undefined> {
    return readStored(this.#store, guardKey(username), GuardRecord, 'failed-login')
  }

  /** A count of zero is no record at all. */
  async #write(username: string, count: Count | undefined): Promise<void> {
    if (count) return this.#store.commit([{ key: guardKey(username), value: count }])
    if (await this.#store.has(guardKey(username))) await this.#store.commit([{ key: guardKey(username), delete: true }])
  }

  #delay(failures: number): number {
    if (failures < this.#limits.delayAfter) return 0
    return Math.min(this.#limits.baseDelayMs * 2 ** (failures - this.#limits.delayAfter), this.#limits.maxDelayMs)
  }
}

const deviceKey = (username: string, device: string) => `${username}\0${device}`

function remember(map: Map<string, Count>, key: string, count: Count): void {
  map.delete(key)
  map.set(key, count)
  if (map.size > MEMORY_ENTRIES) map.delete(map.keys().next().value!)
}
