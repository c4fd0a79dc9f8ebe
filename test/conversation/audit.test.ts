import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEntry } from '../../src/protocol/calls.js'
import type { Store } from '../../src/store/index.js'
import { Bench, MINUTE, type LoggedIn, type Peer, type User } from '../helpers/conversation.js'
import { noteOutput } from '../helpers/secrets.js'

// The audit log through the server's conversations (issue 6, "Audit log"): the entries each
// action writes, reading them with user, since and limit, following them (and the follow ending
// when the session ends or the role is lost), and `audit_verify` finding a removed, edited,
// reordered or truncated entry in the store after a restart. How the chain is built and every
// way of breaking it, case by case: test/store/audit.test.ts. The CLI's options, its output and
// `store verify` on a server's store: test/e2e/audit.test.ts.

let bench: Bench
let root: User
let sam: User
let rootLogin: LoggedIn
let samLogout: string

beforeAll(async () => {
  bench = await Bench.start({ registration: 'open' })
  root = await bench.registerBootstrap('root')
  // A minute between actions, so that `since` has something to tell apart.
  bench.clock.advance(MINUTE)
  sam = await bench.register('sam')
  bench.clock.advance(MINUTE)
  rootLogin = await bench.login(root)
  bench.clock.advance(MINUTE)
  const samLogin = await bench.login(sam)
  samLogout = samLogin.welcome.sessionId
  bench.clock.advance(MINUTE)
  await samLogin.peer.call('logout', {})
})

afterAll(async () => {
  // The suite-wide check then finds any secret an entry holds.
  if (bench) noteOutput('audit log', 'log', JSON.stringify(await all((await bench.login(root)).peer)))
  await bench?.stop()
})

/** The whole log, as root reads it; refusals and failures written behind their answers included. */
async function all(peer: Peer = rootLogin.peer): Promise<AuditEntry[]> {
  return (await peer.call('audit', {})).entries
}

describe('reading the log', () => {
  it('oldest first, numbered 1.., each chained to the one before, with time, actor, target, address and outcome', async () => {
    const entries = await all()
    expect(entries.map((e) => e.n)).toEqual(entries.map((_, i) => i + 1))
    expect(entries[0]!.prev).toBe('0'.repeat(64))
    entries.slice(1).forEach((entry, i) => expect(entry.prev).toBe(entries[i]!.hash))
    expect(entries.map((e) => [e.action, e.actor, e.target, e.outcome, e.details])).toEqual([
      ['user.register', null, 'root', 'ok', { role: 'system_admin', via: 'bootstrap' }],
      ['user.register', null, 'sam', 'ok', { role: 'regular_user', via: 'open' }],
      ['login.ok', 'root', 'root', 'ok', { factor: 'totp', session: rootLogin.welcome.sessionId }],
      ['login.ok', 'sam', 'sam', 'ok', { factor: 'totp', session: samLogout }],
      ['session.logout', 'sam', samLogout, 'ok', { count: 1, reason: 'logout' }],
    ])
    for (const entry of entries)
      expect(entry).toMatchObject({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        address: '127.0.0.1',
      })
    // The time is the server's clock's.
    expect(Date.parse(entries.at(-1)!.at)).toBeLessThanOrEqual(bench.clock.ms)
    expect(Date.parse(entries[1]!.at) - Date.parse(entries[0]!.at)).toBeGreaterThanOrEqual(MINUTE)
  })

  it('user NAME, since TIME and limit N narrow it down', async () => {
    const entries = await all()
    const { peer } = rootLogin
    const query = async (args: { user?: string; since?: string; limit?: number }) =>
      (await peer.call('audit', args)).entries.map((e) => e.n)
    expect(await query({ user: 'sam' })).toEqual(
      entries.filter((e) => e.actor === 'sam' || e.target === 'sam').map((e) => e.n),
    )
    const middle = entries[Math.floor(entries.length / 2)]!
    expect(await query({ since: middle.at })).toEqual(entries.filter((e) => e.at >= middle.at).map((e) => e.n))
    expect(await query({ since: middle.at })).toContain(middle.n)
    expect(await query({ limit: 2 })).toEqual(entries.slice(-2).map((e) => e.n))
    expect(await query({ user: 'root', limit: 1 })).toEqual([entries.filter((e) => e.actor === 'root').at(-1)!.n])
    // The head comes with every answer.
    expect((await peer.call('audit', { limit: 1 })).head).toEqual({ n: entries.at(-1)!.n, hash: entries.at(-1)!.hash })
    // A time that is not one is the client's mistake, and the schema's.
    expect(await (await bench.login(root)).peer.callRefusal('audit', { since: 'yesterday' })).toMatchObject({
      code: 'ERR_PROTOCOL',
    })
  })

  it('a failed login, a refused registration and an invite are written too, with nobody logged in for the first two', async () => {
    const before = (await all()).length
    await expect(bench.prove({ name: 'nobody', password: 'not a password of anyone' })).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
    })
    await expect(bench.register('eve', { token: `sli_${'A'.repeat(43)}` })).rejects.toMatchObject({
      code: 'ERR_FORBIDDEN',
    })
    const { token } = await rootLogin.peer.call('invite', { role: 'admin', user: 'ada', ttlSeconds: 3600 })
    expect(token).toMatch(/^sli_/)
    // audit_verify's own entry comes after the two written behind their answers.
    await rootLogin.peer.call('audit_verify', {})
    const after = (await all()).slice(before)
    expect(after.map((e) => [e.action, e.actor, e.target, e.outcome])).toEqual([
      ['login.failed', null, 'nobody', 'failed'],
      ['user.register', null, 'eve', 'refused'],
      ['invite.create', 'root', 'ada', 'ok'],
      ['audit.verify', 'root', null, 'ok'],
    ])
    expect(after[0]!.details).toEqual({ stage: 'proof' })
    expect(after[1]!.details).toMatchObject({ reason: expect.stringMatching(/not valid/) })
    expect(after[2]!.details).toMatchObject({ role: 'admin', expiresAt: expect.any(String) })
    expect(JSON.stringify(after)).not.toContain(token)
  })
})

describe('audit follow', () => {
  it('answers with the latest entries, then pushes each new one as it is written', async () => {
    const { peer } = await bench.login(root)
    const answer = await peer.send({ type: 'call', op: 'audit', args: { follow: true, limit: 1 } })
    expect(answer).toMatchObject({ message: { type: 'result', op: 'audit' }, end: false, follow: true })
    const [last] = (answer.message as unknown as { data: { entries: AuditEntry[] } }).data.entries
    await bench.login(sam)
    expect(await peer.push(1)).toMatchObject({
      type: 'audit_entry',
      entry: { n: last!.n + 1, action: 'login.ok', actor: 'sam', prev: last!.hash },
    })
    // Calls still work on a following connection.
    expect((await peer.call('whoami', {})).user).toBe('root')
    peer.close()
  })

  it('with a user, pushes only the entries by or about that user', async () => {
    const { peer } = await bench.login(root)
    await peer.call('audit', { follow: true, user: 'sam', limit: 1 })
    await rootLogin.peer.call('audit_verify', {})
    await bench.login(sam)
    expect(await peer.push(1)).toMatchObject({ type: 'audit_entry', entry: { action: 'login.ok', actor: 'sam' } })
    expect(peer.pushed).toHaveLength(1)
    peer.close()
  })

  it('ends with ERR_FORBIDDEN when the follower stops being an admin', async () => {
    const ada = await bench.registerInvited(rootLogin.peer, 'ada2', 'admin')
    const { peer } = await bench.login(ada)
    await peer.call('audit', { follow: true, limit: 1 })
    expect(await rootLogin.peer.call('set_role', { user: 'ada2', role: 'regular_user' })).toMatchObject({
      previous: 'admin',
    })
    await peer.ended()
    // The demotion's own entry is checked before it is sent: the stream ends instead.
    expect(peer.pushed.filter((m) => m.type === 'audit_entry')).toEqual([])
    expect(peer.pushed.at(-1)).toMatchObject({
      type: 'error',
      code: 'ERR_FORBIDDEN',
      message: 'following the audit log needs the admin or system_admin role',
    })
  })

  it('ends with ERR_FORBIDDEN when the follower’s session ends', async () => {
    const { peer, welcome } = await bench.login(root)
    await peer.call('audit', { follow: true, limit: 1 })
    expect(await rootLogin.peer.call('revoke', { id: welcome.sessionId })).toEqual({ revoked: 1 })
    // The follower checks its session as each entry arrives. The revocation's own entry may still
    // reach it (the session leaves memory just after its entry is written); the next one cannot.
    await rootLogin.peer.call('audit_verify', {})
    await peer.ended()
    expect(peer.pushed.filter((m) => m.type === 'audit_entry' && m.entry.action !== 'session.revoke')).toEqual([])
    expect(peer.pushed.at(-1)).toMatchObject({
      type: 'error',
      code: 'ERR_FORBIDDEN',
      message: expect.stringMatching(/session has ended/),
    })
  })
})

// --- Damage to the store itself, as an insider with the passphrase and a modified tool would do.

const key = (n: number) => `audit/${String(n).padStart(12, '0')}`

interface Tamper {
  name: string
  /** Damages the store; `entries` are the log as it stood, `head` its last number. */
  tamper: (store: Store, entries: AuditEntry[], head: number) => Promise<void>
  /** What the verification reports, entry by entry. */
  problems: (head: number) => Array<[number, RegExp]>
  /** Verify against the head before the damage (as the server log printed it). */
  anchored?: true
}

const TAMPERS: Tamper[] = [
  {
    name: 'a removed entry',
    tamper: (store) => store.commit([{ key: key(3), delete: true }]),
    problems: () => [[3, /entry 3 is missing \(removed\)/]],
  },
  {
    name: 'an edited entry',
    tamper: (store, e) => store.commit([{ key: key(3), value: { ...e[2]!, outcome: 'failed' } }]),
    problems: () => [[3, /entry 3's hash does not match its content \(edited\)/]],
  },
  {
    name: 'two entries swapped',
    tamper: (store, e) =>
      store.commit([
        { key: key(3), value: e[3] },
        { key: key(4), value: e[2] },
      ]),
    problems: () => [
      [3, /moved or reordered/],
      [3, /entry 3's prev/],
      [4, /moved or reordered/],
      [4, /entry 4's prev/],
      [5, /entry 5's prev/],
    ],
  },
  {
    name: 'the last two entries cut off',
    tamper: (store, _e, head) =>
      store.commit([
        { key: key(head), delete: true },
        { key: key(head - 1), delete: true },
      ]),
    problems: (head) => [[head - 1, /\(truncated\)/]],
  },
  {
    name: 'the last two entries cut off and the head rewritten to match',
    tamper: (store, e, head) =>
      store.commit([
        { key: key(head), delete: true },
        { key: key(head - 1), delete: true },
        { key: 'audit-head', value: { n: head - 2, hash: e[head - 3]!.hash } },
      ]),
    problems: (head) => [[head, /the anchor names entry \d+ but the log ends at entry \d+ \(truncated\)/]],
    anchored: true,
  },
]

/** The server log's record of the last entry written: the anchor an operator keeps. */
function loggedHead(): { n: number; hash: string } {
  const { n, hash } = bench.log.filter((e) => e.event === 'audit').at(-1)!.fields as { n: number; hash: string }
  return { n, hash }
}

describe('a damaged log is found by audit_verify after a restart', () => {
  it('an intact log passes', async () => {
    const report = await rootLogin.peer.call('audit_verify', {})
    expect(report).toMatchObject({ ok: true, problems: [] })
    expect(report.entries).toBeGreaterThanOrEqual(8)
    // The verification's own entry is written after its report, and logged with the new head.
    expect(loggedHead().n).toBe(report.head.n + 1)
  })

  it.for(TAMPERS)('$name', async ({ tamper, problems, anchored }) => {
    // The log (restored after the last case) verifies, and that verification is its newest entry.
    // Resumed sessions, not logins: a login would write an entry after the damage.
    const { peer } = await bench.resume(rootLogin.token)
    const before = await peer.call('audit_verify', {})
    expect(before.ok).toBe(true)
    const anchor = loggedHead()
    expect(anchor.n).toBe(before.entries + 1)
    let original: { entries: AuditEntry[]; head: unknown } | undefined
    await bench.offline(async (store) => {
      const entries = await Promise.all(Array.from({ length: anchor.n }, (_, i) => store.get<AuditEntry>(key(i + 1))))
      expect(entries.at(-1)!.hash, 'the log holds what the server logged').toBe(anchor.hash)
      original = { entries: entries as AuditEntry[], head: await store.get('audit-head') }
      await tamper(store, original.entries, anchor.n)
    })
    try {
      const expected = problems(anchor.n)
      const { peer: after } = await bench.resume(rootLogin.token)
      const report = await after.call('audit_verify', anchored ? { anchor } : {})
      expect(report.ok).toBe(false)
      expect(report.problems.map((p) => p.n)).toEqual(expected.map(([n]) => n))
      report.problems.forEach((p, i) => expect(p.problem).toMatch(expected[i]![1]))
      if (anchored)
        expect((await after.call('audit_verify', {})).ok, 'without the anchor the rewrite goes unseen').toBe(true)
      // The failed verification is itself recorded, as failed.
      expect((await after.call('audit', { limit: 1 })).entries[0]).toMatchObject({
        action: 'audit.verify',
        outcome: anchored ? 'ok' : 'failed',
        details: anchored ? { problems: 0 } : { problems: expected.length },
      })
    } finally {
      // The log as it was, before the next case (the entries written since are dropped with it).
      await bench.offline(async (store) => {
        const written = (await store.keys('audit/')).filter((k) => k > key(anchor.n))
        await store.commit([
          ...original!.entries.map((entry, i) => ({ key: key(i + 1), value: entry })),
          ...written.map((k) => ({ key: k, delete: true as const })),
          { key: 'audit-head', value: original!.head },
        ])
      })
      rootLogin = { ...rootLogin, ...(await bench.resume(rootLogin.token)) }
    }
  })
})
