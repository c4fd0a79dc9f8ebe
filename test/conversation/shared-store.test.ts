import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as srpMath from '../../src/auth/srp-math.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import type { ServerCore } from '../../src/server/server.js'
import { verifyAuditChain } from '../../src/server/audit-log.js'
import type { Answer } from '../../src/server/conversation.js'
import { Bench, MINUTE, ServerError, type Peer, type User } from '../helpers/conversation.js'
import { getGuard, getUser } from '../helpers/records.js'

// The rules of issue 20 across server processes: three server cores on one store object behave
// exactly as three processes on one database do, since the store is all they share (each core
// has its own per-user queues, guard, sessions, audit log and budgets). Each race sends its
// messages to the three cores in the same tick, so every handler runs up to its first store
// read before any of them commits: the widest window two processes could ever meet in.

const CORES = 3
const SRP_PARAMS = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' } as const
const GENERIC = { code: 'ERR_AUTH_FAILED', message: 'authentication failed' }

/** A bench with three cores on its store; `options` as Bench.start takes them. */
async function threeCores(
  options: Parameters<typeof Bench.start>[0] = {},
): Promise<{ bench: Bench; cores: ServerCore[] }> {
  const bench = await Bench.start({ registration: 'open', ...options })
  const cores = [bench.core]
  for (let i = 1; i < CORES; i++) cores.push(await bench.addCore())
  return { bench, cores }
}

/** Hands each peer its message in the same tick and collects the answers. */
function atOnce(sends: Array<[Peer, unknown]>): Promise<Answer[]> {
  return Promise.all(sends.map(([peer, message]) => peer.send(message)))
}

const kinds = (answers: Answer[]) =>
  answers.map((answer) => (answer.message.type === 'error' ? answer.message.code : answer.message.type)).sort()

const call = (op: string, args: Record<string, unknown> = {}) => ({ type: 'call', op, args })

describe('failed-login counts and lockouts are shared', () => {
  const ATTEMPTS = 50
  let bench: Bench
  let cores: ServerCore[]
  let gus: User
  beforeAll(async () => {
    // The default limits: a wait from the 3rd failure, a lock of 15 minutes at the 10th.
    ;({ bench, cores } = await threeCores())
    gus = await bench.register('gus', { bulk: true })
  })
  afterAll(() => bench?.stop())

  /**
   * A login_start answered, and a wrong proof for it: a random M1, which the server cannot tell
   * from a wrong password's (A: any valid one, the same for all).
   */
  const A = srpMath.A(SRP_PARAMS, randomBytes(32)).toString('hex')
  async function started(core: ServerCore): Promise<{ peer: Peer; M1: string }> {
    const peer = bench.connect(undefined, core)
    await peer.request({ type: 'login_start', username: 'gus', A }, 'challenge')
    return { peer, M1: randomBytes(32).toString('hex') }
  }

  it(`${ATTEMPTS} times, ten wrong passwords spread over three servers at once lock the name on all three`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const guesses = await Promise.all(Array.from({ length: 10 }, (_, j) => started(cores[j % CORES]!)))
      const answers = await atOnce(guesses.map(({ peer, M1 }) => [peer, { type: 'login_proof', M1 }]))
      expect(new Set(kinds(answers)), `attempt ${i}`).toEqual(new Set(['ERR_AUTH_FAILED']))
      // A count's write follows its answer when the answer does not wait (src/server/guard.ts).
      await Promise.all(cores.map((core) => core.ctx.guard.flush()))
      expect(await getGuard(bench.store, 'gus'), `attempt ${i}`).toMatchObject({
        failures: 10,
        lockedUntil: bench.clock.now() + 15 * MINUTE,
      })
      for (const core of cores) expect(await core.ctx.guard.isLocked('gus', true), `attempt ${i}`).toBe(true)
      // The right password on one of them: the same answer as a wrong one.
      await expect(
        bench.prove(gus, { peer: bench.connect(undefined, cores[i % CORES]) }),
        `attempt ${i}`,
      ).rejects.toMatchObject(GENERIC)
      bench.clock.advance(15 * MINUTE)
    }
    await Promise.all(cores.map((core) => core.ctx.audit.flush()))
    const { entries } = await bench.core.ctx.audit.query({ user: 'gus' })
    // One lock each time, audited by the server whose write locked it, once.
    expect(entries.filter((e) => e.action === 'user.locked').map((e) => e.details?.['failures'])).toEqual(
      Array(ATTEMPTS).fill(10),
    )
  })
})

describe('the last system_admin, and one audit chain', () => {
  const ATTEMPTS = 50
  let bench: Bench
  let cores: ServerCore[]
  /** The chain as stored, checked as `store verify` checks it. */
  const chain = () =>
    verifyAuditChain(
      (key) => bench.store.get(key),
      (prefix) => bench.store.keys(prefix),
    )
  beforeAll(async () => ({ bench, cores } = await threeCores({ guard: { lockAfter: 100 } })))
  afterAll(() => bench?.stop())

  it(`${ATTEMPTS} times, two system_admins on two servers demote each other at once: one goes through`, async () => {
    const root = await bench.registerBootstrap('root')
    const { peer: rootPeer } = await bench.login(root, { peer: bench.connect(undefined, cores[0]) })
    const sa2 = await bench.registerInvited(rootPeer, 'sa2', 'system_admin', { bulk: true })
    const { peer: sa2Peer } = await bench.login(sa2, { peer: bench.connect(undefined, cores[1]) })
    for (let i = 0; i < ATTEMPTS; i++) {
      const answers = await atOnce([
        [rootPeer, call('set_role', { user: 'sa2', role: 'admin' })],
        [sa2Peer, call('set_role', { user: 'root', role: 'admin' })],
      ])
      expect(kinds(answers), `attempt ${i}`).toEqual(['ERR_FORBIDDEN', 'result'])
      const refused = answers.find((answer) => answer.message.type === 'error')!.message
      expect(refused, `attempt ${i}`).toMatchObject({ message: 'the last system_admin cannot be demoted' })
      const roles = await Promise.all(['root', 'sa2'].map(async (name) => (await getUser(bench.store, name))!.role))
      expect(
        roles.filter((role) => role === 'system_admin'),
        `attempt ${i}`,
      ).toHaveLength(1)
      const [winner, loser] = roles[0] === 'system_admin' ? [rootPeer, 'sa2'] : [sa2Peer, 'root']
      expect(await winner.call('set_role', { user: loser, role: 'system_admin' })).toMatchObject({
        role: 'system_admin',
      })
    }
    // Both servers wrote their audit entries into one chain.
    expect(await chain()).toMatchObject({ ok: true, problems: [] })
  })

  it(`${ATTEMPTS} appends on each of three servers at once, one of them each racing for one key: one chain that verifies`, async () => {
    const before = (await chain()).head.n
    const event = (core: number, i: number) => ({
      actor: null,
      action: 'test.append',
      target: `core${core}`,
      address: null,
      outcome: 'ok' as const,
      details: { i },
    })
    const appends = cores.flatMap((core, c) =>
      Array.from({ length: ATTEMPTS }, (_, i) =>
        // Entry 25 of each core also creates one key, expecting it absent: one of the three can.
        core.ctx.audit.append(event(c, i), i === 25 ? [{ key: 'test/once', value: { c }, expect: null }] : []),
      ),
    )
    const settled = await Promise.allSettled(appends)
    const rejected = settled.filter((result) => result.status === 'rejected')
    expect(rejected.map((result) => (result.reason as ServerError).code)).toEqual([
      'ERR_STORE_CONFLICT',
      'ERR_STORE_CONFLICT',
    ])
    const written = CORES * ATTEMPTS - 2
    const ns = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value.n] : []))
    expect(new Set(ns).size).toBe(written)
    expect(Math.min(...ns)).toBe(before + 1)
    expect(Math.max(...ns)).toBe(before + written)
    for (const core of cores) {
      expect(await core.ctx.audit.verify()).toMatchObject({ ok: true, entries: before + written, problems: [] })
    }
    expect(
      await verifyAuditChain(
        (key) => bench.store.get(key),
        (prefix) => bench.store.keys(prefix),
      ),
    ).toMatchObject({
      ok: true,
      entries: before + written,
      head: { n: before + written },
    })
  })

  it('a follower on one server gets the entries another server appends, in chain order', async () => {
    const root = bench.users.get('root')!
    const { peer } = await bench.login(root, { peer: bench.connect(undefined, cores[0]) })
    await peer.call('audit', { follow: true, limit: 1 })
    const appended = [
      await cores[1]!.ctx.audit.append({
        actor: null,
        action: 'test.elsewhere',
        target: null,
        address: null,
        outcome: 'ok',
      }),
    ]
    appended.push(
      await cores[2]!.ctx.audit.append({
        actor: null,
        action: 'test.elsewhere',
        target: null,
        address: null,
        outcome: 'ok',
      }),
    )
    appended.push(
      await cores[0]!.ctx.audit.append({
        actor: null,
        action: 'test.here',
        target: null,
        address: null,
        outcome: 'ok',
      }),
    )
    const pushed = await Promise.all([1, 2, 3].map((n) => peer.push(n)))
    expect(pushed.map((frame) => (frame as { entry: { n: number } }).entry.n)).toEqual(appended.map((e) => e.n))
  })
})
