import { z } from 'zod'
import { StoreConflict, type Store, type StoreChange } from '../store/index.js'
import { readStoredVersioned } from './stored.js'

// A registration waiting for its enrolment code holds its name with a short-lived store record,
// `registering/NAME`, so that a second person registering that name on any server process that
// shares the store is told "taken" at register_start, before they scan a QR code, as on one
// process. The record is taken with a compare-and-set (absent, or expired), so of two
// register_starts at the same moment one holds the name. It ends with the registration: deleted
// in the account's own commit, or when the connection closes; one left by a process that died
// expires after `ttlMs` (the longest a connection may wait for an enrolment code). What decides
// that a name registers once is still the account's own commit, which expects `user/NAME` absent.

const PendingRecord = z.object({ id: z.string(), until: z.number() })
const pendingKey = (username: string) => `registering/${username}`

/** What a register_start holds until its registration ends: the name, and which hold is this one. */
export interface NameHold {
  username: string
  id: string
}

export class PendingNames {
  readonly #store: Store
  readonly #now: () => number
  readonly #randomBytes: (size: number) => Buffer
  readonly #ttlMs: number
  /** Releases under way, by name: a hold of that name in this process waits for them. */
  readonly #releasing = new Map<string, Promise<void>>()

  constructor(store: Store, now: () => number, randomBytes: (size: number) => Buffer, ttlMs: number) {
    this.#store = store
    this.#now = now
    this.#randomBytes = randomBytes
    this.#ttlMs = ttlMs
  }

  /** Holds the name for a registration; undefined when another registration holds it now. */
  async hold(username: string): Promise<NameHold | undefined> {
    // A connection that just closed frees its name before this one may see it (in this process).
    await this.#releasing.get(username)
    const held = await this.#read(username)
    if (held && held.value.until > this.#now()) return undefined
    const hold = { username, id: this.#randomBytes(16).toString('hex') }
    try {
      await this.#store.commit([
        {
          key: pendingKey(username),
          value: { id: hold.id, until: this.#now() + this.#ttlMs },
          expect: held?.version ?? null,
        },
      ])
    } catch (error) {
      if (error instanceof StoreConflict) return undefined // another register_start took it first
      throw error
    }
    return hold
  }

  /** The change that ends this hold, for the account's commit (none when the hold has been taken over). */
  async releaseChanges(hold: NameHold): Promise<StoreChange[]> {
    const held = await this.#read(hold.username)
    return held?.value.id === hold.id ? [{ key: pendingKey(hold.username), delete: true, expect: held.version }] : []
  }

  /** Ends the hold (a registration that will not finish); nothing when it is no longer this one. */
  release(hold: NameHold): Promise<void> {
    const release = (async () => {
      const changes = await this.releaseChanges(hold)
      try {
        await this.#store.commit(changes)
      } catch (error) {
        if (!(error instanceof StoreConflict)) throw error
      }
    })()
    const settled = release
      .catch(() => {})
      .finally(() => {
        if (this.#releasing.get(hold.username) === settled) this.#releasing.delete(hold.username)
      })
    this.#releasing.set(hold.username, settled)
    return release
  }

  #read(username: string) {
    return readStoredVersioned(this.#store, pendingKey(username), PendingRecord, 'pending registration')
  }
}
