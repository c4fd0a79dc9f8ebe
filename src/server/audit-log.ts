import { createHash } from 'node:crypto'
import { AuditEntry as AuditEntrySchema, AuditHead as AuditHeadSchema } from '../protocol/calls.js'
import type { AuditEntry, AuditHead } from '../protocol/calls.js'
import { SecureLoginError } from '../base/errors.js'
import { readStored } from './stored.js'
import { verifyStore, type Store, type StoreChange, type StoreStats } from '../store/index.js'
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

interface PendingAppend {
  event: AuditEvent
  changes: StoreChange[]
  resolve: (entry: AuditEntry) => void
  reject: (error: unknown) => void
}

export class AuditLog {
  readonly #store: Store
  readonly #now: () => number
  #head: AuditHead
  /**
   * Appends run one batch after another in arrival order, so two never take the same n. The
   * appends that arrive while a batch is being written wait in the open batch, and are written
   * together next, as one record with one fsync: under load, logins do not queue one fsync each.
   */
  #queue: Promise<unknown> = Promise.resolve()
  #open: PendingAppend[] | undefined
  readonly #listeners = new Set<(entry: AuditEntry) => void>()

  private constructor(store: Store, now: () => number, head: AuditHead) {
    this.#store = store
    this.#now = now
    this.#head = head
  }

  static async open(store: Store, now: () => number): Promise<AuditLog> {
    const stored = await store.get<unknown>(HEAD_KEY)
    if (stored === undefined) return new AuditLog(store, now, { ...EMPTY_HEAD })
    const head = AuditHeadSchema.safeParse(stored)
    // Appending onto a head we cannot read would fork or hide the chain: refuse to start.
    if (!head.success) {
      throw new SecureLoginError('ERR_STORE_CORRUPT', `${store.path}: the audit log head is malformed`, {
        hint: "run `securelogin store verify` to see the audit log's problems",
      })
    }
    return new AuditLog(store, now, head.data)
  }

  /**
   * Writes the entry, the new head and `changes` in one record (with the other appends of its
   * batch): the action and its record land together or not at all.
   */
  append(event: AuditEvent, changes: StoreChange[] = []): Promise<AuditEntry> {
    return new Promise<AuditEntry>((resolve, reject) => {
      let batch = this.#open
      if (batch === undefined) {
        const opened: PendingAppend[] = []
        batch = this.#open = opened
        const run = this.#queue.then(() => {
          if (this.#open === opened) this.#open = undefined
          return this.#write(opened)
        })
        this.#queue = run.catch(() => {})
      }
      batch.push({ event, changes, resolve, reject })
    })
  }

  head(): AuditHead {
    return { ...this.#head }
  }

  /** Resolves when every append made so far is written or has failed (before the store closes). */
  async flush(): Promise<void> {
    await this.#queue
  }

  /**
   * One page, oldest first: the newest entries with n in (after, before) that match (`user` is
   * actor or target), at most `limit` of them and at most `maxBytes` of their JSON. Walks back
   * from the head and stops there, or at entries written well before `since` (entries are in
   * time order; five minutes of slack covers a clock stepped back), so the latest page of a long
   * log costs its own size, not the log's. `next` is the `before` of the next older page, when
   * the walk stopped for the limit or the size with older entries left.
   */
  async query(
    opts: { user?: string; since?: string; limit?: number; before?: number; after?: number; maxBytes?: number } = {},
  ): Promise<{ entries: AuditEntry[]; next?: number }> {
    const since = opts.since === undefined ? undefined : Date.parse(opts.since)
    const floor = opts.after ?? 0
    const matches: AuditEntry[] = []
    let bytes = 0
    let n = Math.min(this.#head.n, (opts.before ?? Infinity) - 1)
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

  subscribe(listener: (entry: AuditEntry) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async verify(anchor?: AuditHead): Promise<AuditVerification> {
    // Take the head and the keys between two appends, then read entries while appends go on:
    // an append only adds keys above that head, so the view stays consistent without holding
    // logins up for the whole walk.
    // Appends that arrive after this call go into a batch behind the snapshot.
    this.#open = undefined
    const snapshot = this.#queue.then(async () => ({
      head: await this.#store.get<unknown>(HEAD_KEY),
      keys: await this.#store.keys(ENTRY_PREFIX),
    }))
    this.#queue = snapshot.catch(() => {})
    const { head, keys } = await snapshot
    return verifyAuditChain(
      (key) => (key === HEAD_KEY ? Promise.resolve(head) : this.#store.get<unknown>(key)),
      async () => keys,
      anchor,
    )
  }

  /**
   * One batch: each append's entry chained to the one before, all in one commit; an append that
   * cannot be written is refused alone.
   */
  async #write(batch: PendingAppend[]): Promise<void> {
    let head = this.#head
    const written: Array<[PendingAppend, AuditEntry]> = []
    const changes: StoreChange[] = []
    for (const pending of batch) {
      try {
        const entry = this.#entry(pending, head)
        changes.push({ key: entryKey(entry.n), value: entry }, ...pending.changes)
        written.push([pending, entry])
        head = { n: entry.n, hash: entry.hash }
      } catch (error) {
        pending.reject(error)
      }
    }
    if (written.length === 0) return
    try {
      await this.#store.commit([...changes, { key: HEAD_KEY, value: head }])
    } catch (error) {
      for (const [pending] of written) pending.reject(error)
      return
    }
    this.#head = head
    for (const [pending, entry] of written) {
      for (const listener of [...this.#listeners]) {
        try {
          listener(entry)
        } catch {
          // The entry is written; one failing subscriber must not turn that into an error for the caller.
        }
      }
      pending.resolve(entry)
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
