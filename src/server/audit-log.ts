import { createHash } from 'node:crypto'
import { AuditEntry as AuditEntrySchema, AuditHead as AuditHeadSchema } from '../protocol/calls.js'
import type { AuditEntry, AuditHead } from '../protocol/calls.js'
import { SecureLoginError } from '../base/errors.js'
import { readStored } from './stored.js'
import {
  StoreConflict,
  verifyStore,
  type Store,
  type StoreChange,
  type StoreStats,
  type Version,
} from '../store/index.js'
import type { StoreLock, TornTail } from '../store/index.js'

// The audit log: entries in the store, hash-chained, so that an insider who holds the
// passphrase and edits, removes, reorders or cuts off entries is caught by `verify`
// (docs/store-format.md, "Audit log").

export interface AuditEvent {
  actor: string | null
  action: string
  target: string | null
  address: string | null
  outcome: 'ok' | 'failed' | 'refused'
  details?: Record<string, string | number | boolean | null>
}

export interface AuditVerification {
  ok: boolean
  /** Entry keys found in the store. */
  entries: number
  /** The head as stored (the empty head when missing or malformed: a problem says which). */
  head: AuditHead
  problems: Array<{ n: number; problem: string }>
}

const ENTRY_PREFIX = 'audit/'
const HEAD_KEY = 'audit-head'
const ZERO_HASH = '0'.repeat(64)
const EMPTY_HEAD: AuditHead = { n: 0, hash: ZERO_HASH }
const entryKey = (n: number) => `${ENTRY_PREFIX}${String(n).padStart(12, '0')}`
const ENTRY_KEY = /^audit\/(\d{12})$/

/** The stored head and its version, checked: appending onto a head we cannot read would fork or hide the chain. */
async function readHead(store: Store): Promise<{ head: AuditHead; version: Version | null }> {
  const stored = await store.getVersioned<unknown>(HEAD_KEY)
  if (stored === undefined) return { head: { ...EMPTY_HEAD }, version: null }
  const head = AuditHeadSchema.safeParse(stored.value)
  if (!head.success) {
    throw new SecureLoginError('ERR_STORE_CORRUPT', `${store.path}: the audit log head is malformed`, {
      hint: "run `securelogin store verify` to see the audit log's problems",
    })
  }
  return { head: head.data, version: stored.version }
}

/** A stored head's n, or undefined when it is absent (0) or malformed (verify reports it). */
function headN(value: unknown): number | undefined {
  if (value === undefined) return 0
  const head = AuditHeadSchema.safeParse(value)
  return head.success ? head.data.n : undefined
}

/**
 * The one canonical form, for append and verify alike: fixed key order, `details` sorted, no
 * `hash`. Built field by field, so whatever else a stored object holds never enters the hash.
 */
function canonicalJson(entry: Omit<AuditEntry, 'hash'>): string {
  const details =
    entry.details === undefined
      ? undefined
      : Object.fromEntries(
          Object.keys(entry.details)
            .sort()
            .map((key) => [key, entry.details![key]]),
        )
  return JSON.stringify({
    n: entry.n,
    at: entry.at,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    address: entry.address,
    outcome: entry.outcome,
    ...(details === undefined ? {} : { details }),
    prev: entry.prev,
  })
}

const hashEntry = (entry: Omit<AuditEntry, 'hash'>) =>
  createHash('sha256').update(canonicalJson(entry), 'utf8').digest('hex')

const CLOCK_SLACK_MS = 5 * 60_000

/** Work that must run between two batches of this process (verify's snapshot). */
interface Barrier {
  run: () => Promise<void>
}

interface PendingAppend {
  event: AuditEvent
  changes: StoreChange[]
  resolve: (entry: AuditEntry) => void
  reject: (error: unknown) => void
}

/**
 * Times one batch is chained and committed before it gives up: each try either meets a head
 * another process moved (then the batch is chained again on the new head), or drops the one
 * append whose own `expect` failed.
 */
const BATCH_ATTEMPTS = 64
/** Appends in one commit at most: a record of the journal holds at most 1 MiB. */
const BATCH_MAX = 256
/** While this process has followers, how often it looks for entries other processes appended. */
const FOLLOW_POLL_MS = 500

export class AuditLog {
  readonly #store: Store
  readonly #now: () => number
  /**
   * The head as this process last read or wrote it, and the version it was at: the next batch
   * chains onto it and expects it. Another process moving the head makes that commit fail on
   * it; the head is then read again and the batch chained again.
   */
  #head: AuditHead
  #headVersion: Version | null
  /**
   * Appends not yet written, in arrival order. One writer at a time takes those that arrived
   * while the previous batch was being written and commits them together, as one record with one
   * fsync: under load, logins do not queue one fsync each.
   */
  #waiting: Array<PendingAppend | Barrier> = []
  #writing: Promise<void> | undefined
  readonly #listeners = new Set<(entry: AuditEntry) => void>()
  /** The last entry handed to the followers: entries are handed over in chain order. */
  #delivered = 0
  /** Entries this process wrote that wait for earlier ones (another process's) to be handed over first. */
  readonly #written = new Map<number, AuditEntry>()
  #delivering: Promise<void> = Promise.resolve()
  #catchingUp = 0
  #poll: NodeJS.Timeout | undefined

  private constructor(store: Store, now: () => number, head: AuditHead, version: Version | null) {
    this.#store = store
    this.#now = now
    this.#head = head
    this.#headVersion = version
  }

  static async open(store: Store, now: () => number): Promise<AuditLog> {
    const { head, version } = await readHead(store)
    return new AuditLog(store, now, head, version)
  }

  /**
   * Writes the entry, the new head and `changes` in one record (with the other appends of its
   * batch): the action and its record land together or not at all. The commit expects the head
   * it chains onto, so processes sharing the store extend one chain in one order.
   */
  append(event: AuditEvent, changes: StoreChange[] = []): Promise<AuditEntry> {
    return new Promise<AuditEntry>((resolve, reject) => {
      this.#waiting.push({ event, changes, resolve, reject })
      this.#writing ??= this.#drain()
    })
  }

  /** The head's entry number as this process last saw it (a metric read at scrape time). */
  get headN(): number {
    return this.#head.n
  }

  /** The head as this process last saw it (other processes may have moved it since: storedHead). */
  head(): AuditHead {
    return { ...this.#head }
  }

  /** The head as stored now. */
  async storedHead(): Promise<AuditHead> {
    const { head, version } = await readHead(this.#store)
    if (head.n >= this.#head.n) [this.#head, this.#headVersion] = [head, version]
    return { ...head }
  }

  /** Resolves when every append made so far is written or has failed (before the store closes). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing
    await this.#delivering
  }

  /**
   * One page, oldest first: the newest entries with n in (after, before) that match (`user` is
   * actor or target), at most `limit` of them and at most `maxBytes` of their JSON. Walks back
   * from the stored head and stops there, or at entries written well before `since` (entries are
   * in time order; five minutes of slack covers a clock stepped back), so the latest page of a
   * long log costs its own size, not the log's. `next` is the `before` of the next older page,
   * when the walk stopped for the limit or the size with older entries left.
   */
  async query(
    opts: { user?: string; since?: string; limit?: number; before?: number; after?: number; maxBytes?: number } = {},
  ): Promise<{ entries: AuditEntry[]; next?: number }> {
    const head = await this.storedHead()
    const since = opts.since === undefined ? undefined : Date.parse(opts.since)
    const floor = opts.after ?? 0
    const matches: AuditEntry[] = []
    let bytes = 0
    let n = Math.min(head.n, (opts.before ?? Infinity) - 1)
    for (; n > floor; n--) {
      if (opts.limit !== undefined && matches.length >= opts.limit) break
      const entry = await readStored(this.#store, entryKey(n), AuditEntrySchema, 'audit entry')
      if (entry === undefined) continue
      const at = Date.parse(entry.at)
      if (since !== undefined && at < since - CLOCK_SLACK_MS) {
        n = floor
        break
      }
      if (opts.user !== undefined && entry.actor !== opts.user && entry.target !== opts.user) continue
      if (since !== undefined && at < since) continue
      const size = JSON.stringify(entry).length + 1
      if (opts.maxBytes !== undefined && matches.length > 0 && bytes + size > opts.maxBytes) break
      bytes += size
      matches.push(entry)
    }
    const entries = matches.reverse()
    return n > floor && entries.length > 0 ? { entries, next: entries[0]!.n } : { entries }
  }

  /**
   * Every entry after entry `after` (by default the head this process last saw), appended by
   * this process or another on the same store, in chain order: this process's as they are
   * written, the others' within FOLLOW_POLL_MS.
   */
  subscribe(listener: (entry: AuditEntry) => void, after = this.#head.n): () => void {
    if (this.#listeners.size === 0) this.#startFollowing(after)
    const filtered = (entry: AuditEntry) => {
      if (entry.n > after) listener(entry)
    }
    this.#listeners.add(filtered)
    return () => {
      this.#listeners.delete(filtered)
      if (this.#listeners.size === 0) this.#stopFollowing()
    }
  }

  /**
   * Takes the head and the entry keys between two batches of this process's appends (so it sees
   * every append made before it was called), then reads entries while appends go on. Appends by
   * any process only add keys above the head, and an entry and its head are one commit; so
   * entries that appear between the two reads of the head below are another process's appends
   * made meanwhile and are left out, and any key above the second head was there before it: a
   * problem to report.
   */
  async verify(anchor?: AuditHead): Promise<AuditVerification> {
    const snapshot = new Promise<{ before: unknown; keys: string[]; after: unknown }>((resolve, reject) => {
      const run = async () => {
        try {
          const before = await this.#store.get<unknown>(HEAD_KEY)
          const keys = await this.#store.keys(ENTRY_PREFIX)
          resolve({ before, keys, after: await this.#store.get<unknown>(HEAD_KEY) })
        } catch (error) {
          reject(error)
        }
      }
      this.#waiting.push({ run })
      this.#writing ??= this.#drain()
    })
    const { before, keys, after } = await snapshot
    const [from, to] = [headN(before), headN(after)]
    const meanwhile = (key: string) => {
      const n = Number(ENTRY_KEY.exec(key)?.[1] ?? 0)
      return from !== undefined && to !== undefined && n > from && n <= to
    }
    return verifyAuditChain(
      (key) => (key === HEAD_KEY ? Promise.resolve(before) : this.#store.get<unknown>(key)),
      async () => keys.filter((key) => !meanwhile(key)),
      anchor,
    )
  }

  /** Writes batches until nothing waits; one writer at a time in this process. */
  async #drain(): Promise<void> {
    // Appends made in the same tick as the first join its batch.
    await Promise.resolve()
    try {
      while (this.#waiting.length > 0) {
        const first = this.#waiting[0]!
        if ('run' in first) {
          this.#waiting.shift()
          await first.run()
        } else await this.#write(this.#takeBatch())
      }
    } finally {
      this.#writing = undefined
    }
  }

  /**
   * The waiting appends, in order, that can share one commit: one whose changes touch a key an
   * earlier one in the batch touches waits for the next batch, since a commit checks every
   * `expect` against the state before it, and the second of two changes made from one view would
   * otherwise overwrite the first unchecked.
   */
  #takeBatch(): PendingAppend[] {
    const batch: PendingAppend[] = []
    const later: Array<PendingAppend | Barrier> = []
    const keys = new Set<string>()
    for (const pending of this.#waiting) {
      // Nothing after a barrier is written before it has run.
      if ('run' in pending || later.some((p) => 'run' in p)) {
        later.push(pending)
        continue
      }
      const own = pending.changes.map((change) => change.key)
      if (batch.length >= BATCH_MAX || own.some((key) => keys.has(key))) later.push(pending)
      else {
        batch.push(pending)
        for (const key of own) keys.add(key)
      }
    }
    this.#waiting = later
    return batch
  }

  /**
   * One batch: each append's entry chained to the one before, all in one commit that expects
   * the head unchanged. When another process moved the head meanwhile, the head is read again
   * and the batch chained again on it; when an append's own `expect` failed, that append alone
   * is refused and the rest go on. An append that cannot be written is refused alone.
   */
  async #write(batch: PendingAppend[]): Promise<void> {
    let live = batch
    for (let attempt = 1; live.length > 0; attempt++) {
      let head = this.#head
      const written: Array<[PendingAppend, AuditEntry]> = []
      const changes: StoreChange[] = []
      for (const pending of live) {
        try {
          const entry = this.#entry(pending, head)
          changes.push({ key: entryKey(entry.n), value: entry }, ...pending.changes)
          written.push([pending, entry])
          head = { n: entry.n, hash: entry.hash }
        } catch (error) {
          pending.reject(error)
        }
      }
      live = written.map(([pending]) => pending)
      if (live.length === 0) return
      try {
        await this.#store.commit([...changes, { key: HEAD_KEY, value: head, expect: this.#headVersion }])
      } catch (error) {
        if (error instanceof StoreConflict && attempt < BATCH_ATTEMPTS) {
          try {
            if (error.key === HEAD_KEY) {
              ;({ head: this.#head, version: this.#headVersion } = await readHead(this.#store))
              continue
            }
          } catch (readError) {
            for (const pending of live) pending.reject(readError)
            return
          }
          // Not the head: an append's own compare-and-set lost. It alone fails, as if it were alone.
          const own = live.find((pending) => pending.changes.some((change) => change.key === error.key))
          if (own) {
            own.reject(error)
            live = live.filter((pending) => pending !== own)
            continue
          }
        }
        for (const pending of live) pending.reject(error)
        return
      }
      // A commit does not say the version it wrote: read the head and its version together (this
      // commit's, or a later one's, onto which the next batch then chains). Unread, the next
      // batch expects none and so re-reads on its conflict.
      try {
        ;({ head: this.#head, version: this.#headVersion } = await readHead(this.#store))
      } catch {
        ;[this.#head, this.#headVersion] = [head, null]
      }
      if (this.#listeners.size > 0) this.#deliver(written.map(([, entry]) => entry))
      for (const [pending, entry] of written) pending.resolve(entry)
      return
    }
  }

  #startFollowing(after: number): void {
    this.#delivered = after
    this.#poll = setInterval(() => {
      this.#catchUp(async () => (await this.storedHead()).n)
    }, FOLLOW_POLL_MS)
    this.#poll.unref()
  }

  #stopFollowing(): void {
    clearInterval(this.#poll)
    this.#poll = undefined
    this.#written.clear()
  }

  /**
   * Hands the followers entries this process wrote: at once when they come next in the chain,
   * else after the entries before them (another process's, read from the store).
   */
  #deliver(entries: AuditEntry[]): void {
    if (this.#catchingUp === 0 && entries[0]!.n === this.#delivered + 1) {
      for (const entry of entries) this.#hand(entry)
      return
    }
    for (const entry of entries) this.#written.set(entry.n, entry)
    const last = entries.at(-1)!.n
    this.#catchUp(async () => last)
  }

  /** Hands over every entry up to the n that `upTo` gives, in order, after those already handed over. */
  #catchUp(upTo: () => Promise<number>): void {
    this.#catchingUp += 1
    this.#delivering = this.#delivering
      .then(async () => {
        const last = await upTo()
        for (let n = this.#delivered + 1; n <= last && this.#listeners.size > 0; n++) {
          const entry =
            this.#written.get(n) ?? (await readStored(this.#store, entryKey(n), AuditEntrySchema, 'audit entry'))
          if (entry) this.#hand(entry)
          else this.#delivered = n
        }
      })
      .catch(() => {}) // the next poll tries again
      .finally(() => {
        this.#catchingUp -= 1
      })
  }

  #hand(entry: AuditEntry): void {
    this.#written.delete(entry.n)
    this.#delivered = entry.n
    for (const listener of [...this.#listeners]) {
      try {
        listener(entry)
      } catch {
        // The entry is written; one failing subscriber must not turn that into an error for anyone.
      }
    }
  }

  #entry({ event, changes }: PendingAppend, after: AuditHead): AuditEntry {
    if (changes.some((change) => change.key === HEAD_KEY || change.key.startsWith(ENTRY_PREFIX))) {
      throw new SecureLoginError('ERR_INTERNAL', 'an audited change may not write the audit log itself')
    }
    const body: Omit<AuditEntry, 'hash'> = {
      n: after.n + 1,
      at: new Date(this.#now()).toISOString(),
      actor: event.actor,
      action: event.action,
      target: event.target,
      address: event.address,
      outcome: event.outcome,
      ...(event.details === undefined ? {} : { details: event.details }),
      prev: after.hash,
    }
    const entry: AuditEntry = { ...body, hash: hashEntry(body) }
    // An entry that verify would call malformed must never be written: that is our bug, not tampering.
    const checked = AuditEntrySchema.safeParse(entry)
    if (!checked.success) {
      throw new SecureLoginError(
        'ERR_INTERNAL',
        `audit entry ${event.action.slice(0, 64)} fails its schema at ${fieldsOf(checked.error)}`,
      )
    }
    return entry
  }
}

/**
 * Checks the chain in a store's state: every entry's hash against its content, every `prev`
 * against the entry before, every key against its entry's n, no gaps, the head against the
 * last entry, and an anchor (an earlier head written down elsewhere) against the entry it
 * names. Reports bad data as problems; never throws on it.
 */
export async function verifyAuditChain(
  read: (key: string) => Promise<unknown | undefined>,
  keys: (prefix: string) => Promise<string[]>,
  anchor?: AuditHead,
): Promise<AuditVerification> {
  const problems: Array<{ n: number; problem: string }> = []
  const report = (n: number, problem: string) => problems.push({ n, problem: problem.slice(0, 256) })

  const storedHead = await readSafely(read, HEAD_KEY)
  const parsedHead =
    storedHead.value === undefined && storedHead.ok ? undefined : AuditHeadSchema.safeParse(storedHead.value)
  // A missing head is the empty log's; a malformed one is reported once, and nothing is compared with it.
  const headKnown = parsedHead === undefined || parsedHead.success
  if (!headKnown)
    report(0, storedHead.ok ? 'the head (audit-head) is malformed' : 'the head (audit-head) cannot be read')
  const head = parsedHead?.success ? parsedHead.data : EMPTY_HEAD

  const numbers: number[] = []
  for (const key of await keys(ENTRY_PREFIX)) {
    const n = Number(ENTRY_KEY.exec(key)?.[1] ?? 0)
    if (n >= 1) numbers.push(n)
    else report(0, `unexpected key ${JSON.stringify(key.slice(0, 64))} among the audit entries`)
  }
  numbers.sort((a, b) => a - b)
  const last = numbers.at(-1) ?? 0

  /** Stored hashes of the entries that pass the schema, by key number. */
  const hashes = new Map<number, string>([[0, ZERO_HASH]])
  let expected = 1
  for (const n of numbers) {
    if (n > expected) report(expected, `${span(expected, n - 1)} missing (removed)`)
    expected = n + 1
    const stored = await readSafely(read, entryKey(n))
    const parsed = AuditEntrySchema.safeParse(stored.value)
    if (!parsed.success) {
      report(n, stored.ok ? `entry ${n} is malformed (${fieldsOf(parsed.error)})` : `entry ${n} cannot be read`)
      continue
    }
    const entry = parsed.data
    hashes.set(n, entry.hash)
    if (entry.n !== n) report(n, `entry ${n}'s key holds entry ${entry.n} (moved or reordered)`)
    if (hashEntry(entry) !== entry.hash) report(n, `entry ${n}'s hash does not match its content (edited)`)
    // Unknown when the entry before is missing or malformed: that is reported already.
    const before = hashes.get(n - 1)
    if (before !== undefined && entry.prev !== before)
      report(
        n,
        `entry ${n}'s prev is not entry ${n - 1}'s hash (entry ${n - 1} edited, or entries removed or reordered)`,
      )
  }

  if (headKnown) {
    if (head.n > last) report(last + 1, `the head says ${head.n} entries but the last is entry ${last} (truncated)`)
    if (head.n < last) report(head.n + 1, `${span(head.n + 1, last)} beyond the head (n ${head.n})`)
    const headEntry = hashes.get(head.n)
    if (head.n <= last && headEntry !== undefined && headEntry !== head.hash)
      report(head.n, `the head's hash is not entry ${head.n}'s hash`)
  }

  if (anchor !== undefined) {
    const anchored = hashes.get(anchor.n)
    if (anchor.n > last)
      report(anchor.n, `the anchor names entry ${anchor.n} but the log ends at entry ${last} (truncated)`)
    else if (anchored === undefined) report(anchor.n, `the anchor's entry ${anchor.n} is missing or malformed`)
    else if (anchored !== anchor.hash)
      report(anchor.n, `entry ${anchor.n}'s hash differs from the anchor's (rewritten)`)
  }

  return { ok: problems.length === 0, entries: numbers.length, head, problems }
}

const span = (first: number, last: number) => (first === last ? `entry ${first} is` : `entries ${first} to ${last} are`)

async function readSafely(
  read: (key: string) => Promise<unknown | undefined>,
  key: string,
): Promise<{ ok: boolean; value: unknown }> {
  try {
    return { ok: true, value: await read(key) }
  } catch {
    // A value that is not JSON, say; its text stays out of the message.
    return { ok: false, value: undefined }
  }
}

/** Which fields failed, never their values. */
function fieldsOf(error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey> }> }): string {
  return [...new Set(error.issues.map((issue) => issue.path.map(String).join('.') || '(entry)'))].slice(0, 8).join(', ')
}

/**
 * `store verify`: every record authenticated, then the audit log's chain checked (against
 * `auditAnchor`, an earlier head, when given); changes nothing on disk.
 */
export async function verifyStoreAndAudit(
  path: string,
  passphrase: string,
  opts: {
    onReport?: (event: string, fields: Record<string, unknown>) => void
    lock?: StoreLock
    countedPrefixes?: readonly string[]
    auditAnchor?: AuditHead
  } = {},
): Promise<{ stats: StoreStats; tornTail: TornTail | undefined; audit: AuditVerification }> {
  const { auditAnchor, ...rest } = opts
  const { stats, tornTail, inspected } = await verifyStore(path, passphrase, {
    ...rest,
    inspect: (view) => verifyAuditChain(view.get, view.keys, auditAnchor),
  })
  return { stats, tornTail, audit: inspected as AuditVerification }
}
