import { createHash } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Store } from '../../src/store/index.js'
import { AuditLog, verifyStoreAndAudit as verifyStore, type AuditEvent } from '../../src/server/audit-log.js'
import type { AuditEntry, AuditHead } from '../../src/protocol/calls.js'
import { runCliToEnd } from '../helpers/cli.js'
import { writePassphraseFile } from '../helpers/server-process.js'
import { PASSPHRASE, storeFixture, type StoreFixture } from './fixtures.js'

// The audit log's hash chain (docs/store-format.md, "Audit log"). Tampering is done the way an
// insider with the passphrase and a modified tool would: through `store.commit`, so every
// record still authenticates and only the chain can tell.

let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(() => f.cleanup())

const START = Date.parse('2026-11-25T10:00:00.000Z')
const ZERO = '0'.repeat(64)
const key = (n: number) => `audit/${String(n).padStart(12, '0')}`

/** A clock that moves one minute per reading, so every entry has its own time. */
function clock(): () => number {
  let t = START - 60_000
  return () => (t += 60_000)
}

/** The documented hash, written out here rather than borrowed from src/store/audit.ts. */
function hashOf(entry: Omit<AuditEntry, 'hash'>): string {
  const details =
    entry.details && Object.fromEntries(Object.entries(entry.details).sort(([a], [b]) => (a < b ? -1 : 1)))
  const { n, at, actor, action, target, address, outcome, prev } = entry
  const canonical = JSON.stringify(
    details
      ? { n, at, actor, action, target, address, outcome, details, prev }
      : { n, at, actor, action, target, address, outcome, prev },
  )
  return createHash('sha256').update(canonical).digest('hex')
}

const EVENTS: AuditEvent[] = [
  {
    actor: null,
    action: 'user.register',
    target: 'alice',
    address: '127.0.0.1',
    outcome: 'ok',
    details: { role: 'regular_user', invited: false },
  },
  {
    actor: 'alice',
    action: 'login.ok',
    target: null,
    address: '127.0.0.1',
    outcome: 'ok',
    details: { second: 'totp' },
  },
  {
    actor: null,
    action: 'login.failed',
    target: 'bob',
    address: '10.0.0.2',
    outcome: 'failed',
    details: { failures: 3, locked: null },
  },
  { actor: 'root', action: 'user.remove', target: 'bob', address: '127.0.0.1', outcome: 'ok' },
  { actor: 'alice', action: 'session.revoke', target: null, address: null, outcome: 'refused' },
  {
    actor: 'root',
    action: 'user.set_role',
    target: 'alice',
    address: '127.0.0.1',
    outcome: 'ok',
    details: { role: 'admin' },
  },
]

async function logWith(store: Store, count: number): Promise<{ log: AuditLog; entries: AuditEntry[] }> {
  const log = await AuditLog.open(store, clock())
  const entries: AuditEntry[] = []
  for (const event of EVENTS.slice(0, count)) entries.push(await log.append(event))
  return { log, entries }
}

describe('audit log', () => {
  it('chains five entries that survive a reopen, and answers queries by user, time and limit', async () => {
    const store = await f.create()
    const seen: number[] = []
    const log = await AuditLog.open(store, clock())
    expect(log.head()).toEqual({ n: 0, hash: ZERO })
    const unsubscribe = log.subscribe((entry) => seen.push(entry.n))
    const entries: AuditEntry[] = []
    for (const event of EVENTS.slice(0, 5)) {
      entries.push(await log.append(event))
      if (entries.length === 4) unsubscribe()
    }
    expect(seen).toEqual([1, 2, 3, 4])

    // Entry 1 in full, as docs/store-format.md spells the canonical form: details' keys sorted.
    const first = `{"n":1,"at":"2026-11-25T10:00:00.000Z","actor":null,"action":"user.register","target":"alice","address":"127.0.0.1","outcome":"ok","details":{"invited":false,"role":"regular_user"},"prev":"${ZERO}"}`
    expect(entries[0]!.hash).toBe(createHash('sha256').update(first).digest('hex'))
    entries.forEach((entry, i) => {
      expect(entry.n).toBe(i + 1)
      expect(entry.prev).toBe(i === 0 ? ZERO : entries[i - 1]!.hash)
      expect(entry.hash).toBe(hashOf(entry))
    })
    await store.close()

    const again = await f.open()
    const reopened = await AuditLog.open(again, clock())
    expect(reopened.head()).toEqual({ n: 5, hash: entries[4]!.hash })
    expect(await again.get(key(5))).toEqual(entries[4])
    const ns = async (opts: Parameters<AuditLog['query']>[0]) =>
      (await reopened.query(opts)).entries.map((entry) => entry.n)
    expect(await reopened.query({})).toEqual({ entries })
    expect(await ns({ user: 'bob' })).toEqual([3, 4])
    expect(await ns({ user: 'alice' })).toEqual([1, 2, 5])
    expect(await ns({ since: entries[2]!.at })).toEqual([3, 4, 5])
    expect(await ns({ since: '2026-11-25T10:02:30.000Z' })).toEqual([4, 5])
    expect(await ns({ limit: 2 })).toEqual([4, 5])
    expect(await ns({ user: 'alice', limit: 2 })).toEqual([2, 5])
    expect(await ns({ user: 'alice', since: entries[1]!.at, limit: 10 })).toEqual([2, 5])
    // Pages: the newest matches in (after, before); `next` asks for the older page, absent at the start.
    expect(await reopened.query({ limit: 2 })).toMatchObject({ next: 4 })
    expect(await ns({ limit: 2, before: 4 })).toEqual([2, 3])
    expect(await reopened.query({ limit: 2, before: 2 })).toEqual({ entries: [entries[0]] })
    expect(await ns({ after: 3 })).toEqual([4, 5])
    expect(await ns({ after: 1, before: 5 })).toEqual([2, 3, 4])
    expect(await reopened.query({ user: 'alice', limit: 2 })).toMatchObject({ next: 2 })
    expect(await reopened.query({ user: 'alice', before: 2 })).toEqual({ entries: [entries[0]] })
    // A size cap: as many whole entries as fit, at least one, then `next`.
    const one = JSON.stringify(entries[4]).length + 1
    expect(await reopened.query({ maxBytes: one })).toEqual({ entries: [entries[4]], next: 5 })
    expect(await reopened.query({ maxBytes: 1 })).toEqual({ entries: [entries[4]], next: 5 })

    const sixth = await reopened.append(EVENTS[5]!)
    expect(sixth).toMatchObject({ n: 6, prev: entries[4]!.hash, at: '2026-11-25T10:00:00.000Z' })
    expect(await reopened.verify()).toEqual({ ok: true, entries: 6, head: { n: 6, hash: sixth.hash }, problems: [] })
  })

  it("writes the caller's changes in the same record as the entry; a failed commit moves nothing", async () => {
    const store = await f.create()
    await store.commit([{ key: 'session/old', value: { user: 'bob' } }])
    const log = await AuditLog.open(store, clock())
    const records = (await store.stats()).records
    await log.append(EVENTS[3]!, [
      { key: 'invite/abc', value: { role: 'admin' } },
      { key: 'session/old', delete: true },
    ])
    expect((await store.stats()).records).toBe(records + 1)

    // A value JSON cannot hold makes the commit throw before anything is written.
    const head = log.head()
    await expect(log.append(EVENTS[4]!, [{ key: 'invite/bad', value: 10n }])).rejects.toThrow()
    expect(log.head()).toEqual(head)
    expect(await store.has(key(2))).toBe(false)
    // The queue goes on after a failure: the next entry is number 2, chained to entry 1.
    const next = await log.append(EVENTS[5]!)
    expect(next).toMatchObject({ n: 2, prev: head.hash })
    // Neither an entry that would fail the schema nor a change to the log itself is written.
    await expect(log.append({ ...EVENTS[0]!, action: 'Login OK' })).rejects.toMatchObject({ code: 'ERR_INTERNAL' })
    await expect(log.append(EVENTS[0]!, [{ key: 'audit-head', value: { n: 0, hash: ZERO } }])).rejects.toMatchObject({
      code: 'ERR_INTERNAL',
    })
    expect(log.head()).toEqual({ n: 2, hash: next.hash })
    await store.close()
    await expect(log.append(EVENTS[0]!)).rejects.toMatchObject({ code: 'ERR_SHUTTING_DOWN' })
    expect(log.head()).toEqual({ n: 2, hash: next.hash })

    const again = await f.open()
    expect(await again.get('invite/abc')).toEqual({ role: 'admin' })
    expect(await again.has('session/old')).toBe(false)
    expect(await again.has('invite/bad')).toBe(false)
    expect((await AuditLog.open(again, clock())).head()).toEqual({ n: 2, hash: next.hash })
  })

  it('writes the appends that arrive while one is being written together: one record, one fsync', async () => {
    const store = await f.create()
    const log = await AuditLog.open(store, clock())
    const records = (await store.stats()).records
    // All twenty arrive before the first batch starts (it starts on the next turn of the queue).
    const entries = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        log.append({ ...EVENTS[i % EVENTS.length]!, details: { i } }, [{ key: `session/s${i}`, value: { i } }]),
      ),
    )
    expect((await store.stats()).records - records).toBe(1)
    expect(entries.map((entry) => entry.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    entries.slice(1).forEach((entry, i) => expect(entry.prev).toBe(entries[i]!.hash))
    expect(await store.get('session/s19')).toEqual({ i: 19 })
    // One append the batch cannot write is refused alone; the others of its batch are written.
    const mixed = await Promise.allSettled([
      log.append(EVENTS[0]!),
      log.append({ ...EVENTS[1]!, action: 'Not An Action' }),
      log.append(EVENTS[2]!),
    ])
    expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(log.head().n).toBe(22)
    expect(await log.verify()).toMatchObject({ ok: true, entries: 22 })
  })

  it('gives twenty concurrent appends n = 1..20 in arrival order, with a verify between them', async () => {
    const store = await f.create()
    const log = await AuditLog.open(store, clock())
    const appends = Array.from({ length: 20 }, (_, i) => log.append({ ...EVENTS[i % EVENTS.length]!, details: { i } }))
    const midway = log.verify()
    const more = Array.from({ length: 5 }, (_, i) => log.append({ ...EVENTS[0]!, details: { i: 20 + i } }))
    const entries = await Promise.all([...appends, ...more])
    expect(entries.map((entry) => entry.n)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
    expect(entries.map((entry) => entry.details!['i'])).toEqual(Array.from({ length: 25 }, (_, i) => i))
    // The verify saw the first twenty and no half-written state.
    expect(await midway).toEqual({ ok: true, entries: 20, head: { n: 20, hash: entries[19]!.hash }, problems: [] })
    expect(await log.verify()).toMatchObject({ ok: true, entries: 25 })
    await store.close()
    expect((await verifyStore(f.path, PASSPHRASE)).audit).toMatchObject({
      ok: true,
      entries: 25,
      head: { n: 25, hash: entries[24]!.hash },
    })
  })
})

type Tamper = (store: Store, entries: AuditEntry[]) => Promise<void>
const edit = (entry: AuditEntry, change: Partial<AuditEntry>, rehash: boolean): AuditEntry => {
  const edited = { ...entry, ...change }
  return rehash ? { ...edited, hash: hashOf(edited) } : edited
}
/** Entries 5 and 6 replaced by forgeries that chain correctly, and the head moved to them. */
const forgeTail: Tamper = async (store, entries) => {
  const five = edit(entries[4]!, { outcome: 'ok' }, true)
  const six = edit(entries[5]!, { prev: five.hash, target: 'mallory' }, true)
  await store.commit([
    { key: key(5), value: five },
    { key: key(6), value: six },
    { key: 'audit-head', value: { n: 6, hash: six.hash } },
  ])
}

// Each row: how the store is damaged, an anchor if any, and the problems expected (entry n, text).
const TAMPERS: Array<[string, Tamper, ((entries: AuditEntry[]) => AuditHead) | undefined, Array<[number, RegExp]>]> = [
  [
    'an edited entry, its old hash kept',
    (store, e) => store.commit([{ key: key(3), value: edit(e[2]!, { outcome: 'ok' }, false) }]),
    undefined,
    [[3, /entry 3's hash does not match its content \(edited\)/]],
  ],
  [
    'an edited entry with its own hash recomputed',
    (store, e) => store.commit([{ key: key(3), value: edit(e[2]!, { outcome: 'ok' }, true) }]),
    undefined,
    [[4, /entry 4's prev is not entry 3's hash/]],
  ],
  [
    'a removed middle entry',
    (store) => store.commit([{ key: key(3), delete: true }]),
    undefined,
    [[3, /entry 3 is missing \(removed\)/]],
  ],
  [
    'two entries swapped',
    (store, e) =>
      store.commit([
        { key: key(3), value: e[3] },
        { key: key(4), value: e[2] },
      ]),
    undefined,
    [
      [3, /key holds entry 4 \(moved or reordered\)/],
      [3, /entry 3's prev is not entry 2's hash/],
      [4, /key holds entry 3 \(moved or reordered\)/],
      [4, /entry 4's prev is not entry 3's hash/],
      [5, /entry 5's prev is not entry 4's hash/],
    ],
  ],
  [
    'the last two entries deleted, the head left',
    (store) =>
      store.commit([
        { key: key(5), delete: true },
        { key: key(6), delete: true },
      ]),
    undefined,
    [[5, /the head says 6 entries but the last is entry 4 \(truncated\)/]],
  ],
  [
    'the last two deleted and the head rewritten, no anchor',
    (store, e) =>
      store.commit([
        { key: key(5), delete: true },
        { key: key(6), delete: true },
        { key: 'audit-head', value: { n: 4, hash: e[3]!.hash } },
      ]),
    undefined,
    [],
  ],
  [
    'the last two deleted and the head rewritten, with the old head as anchor',
    (store, e) =>
      store.commit([
        { key: key(5), delete: true },
        { key: key(6), delete: true },
        { key: 'audit-head', value: { n: 4, hash: e[3]!.hash } },
      ]),
    (e) => ({ n: 6, hash: e[5]!.hash }),
    [[6, /the anchor names entry 6 but the log ends at entry 4 \(truncated\)/]],
  ],
  [
    'a forged tail that chains, with the old head as anchor',
    forgeTail,
    (e) => ({ n: 6, hash: e[5]!.hash }),
    [[6, /entry 6's hash differs from the anchor's \(rewritten\)/]],
  ],
  [
    'an entry added past the head',
    (store, e) => store.commit([{ key: key(7), value: edit(e[5]!, { n: 7, prev: e[5]!.hash }, true) }]),
    undefined,
    [[7, /entry 7 is beyond the head \(n 6\)/]],
  ],
  [
    'the head rolled back one entry',
    (store, e) => store.commit([{ key: 'audit-head', value: { n: 5, hash: e[4]!.hash } }]),
    undefined,
    [[6, /entry 6 is beyond the head \(n 5\)/]],
  ],
  [
    'the head pointing at a wrong hash',
    (store) => store.commit([{ key: 'audit-head', value: { n: 6, hash: 'ab'.repeat(32) } }]),
    undefined,
    [[6, /the head's hash is not entry 6's hash/]],
  ],
  [
    'an entry that fails the schema',
    (store, e) => store.commit([{ key: key(2), value: { ...e[1]!, outcome: 'maybe', extra: 1 } }]),
    undefined,
    [[2, /entry 2 is malformed \(outcome, \(entry\)\)/]],
  ],
  [
    'a foreign key among the entries',
    (store) => store.commit([{ key: 'audit/x', value: {} }]),
    undefined,
    [[0, /unexpected key "audit\/x"/]],
  ],
]

describe('audit log tampering is found by AuditLog.verify and by verifyStore', () => {
  it.each(TAMPERS)('%s', async (_name, tamper, anchorOf, expected) => {
    const store = await f.create()
    const { log, entries } = await logWith(store, 6)
    expect(await log.verify()).toMatchObject({ ok: true, entries: 6 })
    await tamper(store, entries)
    const anchor = anchorOf?.(entries)

    const viaLog = await (await AuditLog.open(store, clock())).verify(anchor)
    expect(viaLog.problems.map(({ n }) => n)).toEqual(expected.map(([n]) => n))
    viaLog.problems.forEach(({ problem }, i) => expect(problem).toMatch(expected[i]![1]))
    expect(viaLog.ok).toBe(expected.length === 0)
    await store.close()

    const viaStore = await verifyStore(f.path, PASSPHRASE, anchor ? { auditAnchor: anchor } : {})
    expect(viaStore.audit).toEqual(viaLog)
  })

  it('is what `securelogin store verify` reports, and exits 1 on a broken chain (real CLI)', async () => {
    const store = await f.create()
    const { entries } = await logWith(store, 6)
    await store.commit([
      { key: key(5), delete: true },
      { key: key(6), delete: true },
    ])
    await store.close()
    const passphraseFile = await writePassphraseFile(f.dir, PASSPHRASE)
    const verify = (...extra: string[]) =>
      runCliToEnd(['store', 'verify', '--store', f.path, '--passphrase-file', passphraseFile, ...extra], '')

    const truncated = await verify('--json')
    expect(truncated.code).toBe(1)
    expect(JSON.parse(truncated.stdout)).toMatchObject({
      event: 'store_verified',
      ok: false,
      audit: {
        ok: false,
        entries: 4,
        head: { n: 6, hash: entries[5]!.hash },
        problems: [{ n: 5, problem: expect.stringMatching(/truncated/) }],
      },
    })
    expect(JSON.parse(truncated.stderr.trim().split('\n').at(-1)!)).toMatchObject({
      event: 'error',
      code: 'ERR_STORE_CORRUPT',
    })

    // The tamperer also rewrites the head: only the anchor still catches it.
    const again = await f.open()
    await again.commit([{ key: 'audit-head', value: { n: 4, hash: entries[3]!.hash } }])
    await again.close()
    const plain = await verify()
    expect(plain.code).toBe(0)
    expect(plain.stdout).toContain(`audit log: 4 entries, head ${entries[3]!.hash.slice(0, 16)}…, ok`)
    const anchored = await verify('--json', '--audit-anchor', `6:${entries[5]!.hash}`)
    expect(anchored.code).toBe(1)
    expect(JSON.parse(anchored.stdout).audit.problems).toEqual([
      { n: 6, problem: expect.stringMatching(/anchor names entry 6/) },
    ])
    expect((await verify('--audit-anchor', '6:nothex')).code).toBe(2)
  })
})
