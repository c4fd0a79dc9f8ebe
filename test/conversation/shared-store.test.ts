import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as srpMath from '../../src/auth/srp-math.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import type { ServerCore } from '../../src/server/server.js'
import { verifyAuditChain } from '../../src/server/audit-log.js'
import { createInvite, roleIndexChanges } from '../../src/server/invites.js'
import type { Answer } from '../../src/server/conversation.js'
import { Bench, MINUTE, newSalt, ServerError, type Peer, type User } from '../helpers/conversation.js'
import { getGuard, getUser, hasUser } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'
import { storeKind } from '../helpers/store-kind.js'

// The rules of issue 20 across server processes: three server cores on one store object behave
// exactly as three processes on one database do, since the store is all they share (each core
// has its own per-user queues, guard, sessions, audit log and budgets). Each race sends its
// messages to the three cores in the same tick, so every handler runs up to its first store
// read before any of them commits: the widest window two processes could ever meet in.

const CORES = 3
const SRP_PARAMS = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' } as const
const GENERIC = { code: 'ERR_AUTH_FAILED', message: 'authentication failed' }
const ENDED = { code: 'ERR_FORBIDDEN', message: 'your session has ended (expired, logged out or revoked)' }

/** A bench with three cores on its store; `options` as Bench.start takes them. */
async function threeCores(
  options: Parameters<typeof Bench.start>[0] = {},
): Promise<{ bench: Bench; cores: ServerCore[] }> {
  const bench = await Bench.start({ registration: 'open', postgres: storeKind() === 'postgres', ...options })
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

/** Registrations in a race share a password and salt: the client's 64 MiB stretch runs once (Bench keeps it). */
const PASSWORD = 'one password for all of them 5'
const SALT = newSalt()
noteSecret('password', PASSWORD)

const call = (op: string, args: Record<string, unknown> = {}) => ({ type: 'call', op, args })

/**
 * Attempts per race here: 20. The suite runs the same races 50 times each with three real server
 * processes on PostgreSQL (test/e2e/postgres-rules.test.ts); this layer is the one that runs
 * without a database, and the one the mutants (scripts/mutants.mjs) run against.
 */
const RACES = 20

describe('a TOTP code is accepted once in total', () => {
  const ATTEMPTS = RACES
  let bench: Bench
  let cores: ServerCore[]
  let tina: User
  beforeAll(async () => {
    // The two refused logins of each attempt are failures: no lock within this test.
    ;({ bench, cores } = await threeCores({ guard: { lockAfter: 100 } }))
    tina = await bench.register('tina', { bulk: true })
  })
  afterAll(() => bench?.stop())

  it(`${ATTEMPTS} times, the same code sent to three servers at once: one welcome, two ERR_AUTH_FAILED`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const proven = await Promise.all(cores.map((core) => bench.prove(tina, { peer: bench.connect(undefined, core) })))
      const code = await bench.codeFor(tina)
      const answers = await atOnce(proven.map(({ peer }) => [peer, { type: 'login_otp', code }]))
      expect(kinds(answers), `attempt ${i}`).toEqual(['ERR_AUTH_FAILED', 'ERR_AUTH_FAILED', 'welcome'])
      for (const { peer } of proven) peer.close()
    }
    const { entries } = await bench.core.ctx.audit.query({ user: 'tina' })
    expect(entries.filter((e) => e.action === 'login.ok')).toHaveLength(ATTEMPTS)
  })
})

describe('a recovery code is accepted once in total', () => {
  // Ten codes a user: five users give fifty attempts.
  const USERS = 5
  let bench: Bench
  let cores: ServerCore[]
  const users: User[] = []
  beforeAll(async () => {
    ;({ bench, cores } = await threeCores({ guard: { lockAfter: 100 } }))
    for (let i = 0; i < USERS; i++) users.push(await bench.register(`rory${i}`, { bulk: true }))
  })
  afterAll(() => bench?.stop())

  it(`${USERS * 10} times, one recovery code sent to three servers at once: one welcome, and the code is spent`, async () => {
    for (const user of users) {
      for (const [i, code] of user.recoveryCodes.entries()) {
        const proven = await Promise.all(
          cores.map((core) => bench.prove(user, { peer: bench.connect(undefined, core) })),
        )
        const answers = await atOnce(proven.map(({ peer }) => [peer, { type: 'login_recovery', code }]))
        expect(kinds(answers), `${user.name}, code ${i}`).toEqual(['ERR_AUTH_FAILED', 'ERR_AUTH_FAILED', 'welcome'])
        const welcome = answers.find((answer) => answer.message.type === 'welcome')!.message
        expect(welcome, `${user.name}, code ${i}`).toMatchObject({ recoveryCodesLeft: 9 - i })
        for (const { peer } of proven) peer.close()
      }
    }
  })
})

describe('failed-login counts and lockouts are shared', () => {
  const ATTEMPTS = RACES
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

describe('a session revoked, ended or demoted on one server is refused by every other at its next request', () => {
  const ATTEMPTS = RACES
  let bench: Bench
  let cores: ServerCore[]
  let root: User
  let sam: User
  let ada: User
  /** root logged in on each core (afresh: the tests move the clock past the idle timeout). */
  let roots: Peer[] = []
  async function rootEverywhere(): Promise<void> {
    roots = []
    for (const core of cores) roots.push((await bench.login(root, { peer: bench.connect(undefined, core) })).peer)
  }
  beforeAll(async () => {
    ;({ bench, cores } = await threeCores({ guard: { lockAfter: 100 } }))
    root = await bench.registerBootstrap('root')
    await rootEverywhere()
    sam = await bench.register('sam', { bulk: true })
    ada = await bench.registerInvited(roots[0]!, 'ada', 'admin', { bulk: true })
  })
  afterAll(() => bench?.stop())

  it(`${ATTEMPTS} times: a session used on all three, logged out or revoked on one while the others call`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const home = i % CORES
      const { peer: own, token } = await bench.login(sam, { peer: bench.connect(undefined, cores[home]) })
      const elsewhere = cores.filter((_, j) => j !== home)
      // Resumed on the other two: a session one server made is known to every other.
      const others = await Promise.all(elsewhere.map(async (core) => (await bench.resume(token, undefined, core)).peer))
      const ending: [Peer, unknown] =
        i % 2 === 0 ? [own, call('logout')] : [roots[(home + 1) % CORES]!, call('revoke', { user: 'sam' })]
      const [ended, ...meanwhile] = await atOnce([
        ending,
        ...others.map((peer): [Peer, unknown] => [peer, call('whoami')]),
      ])
      expect(ended!.message, `attempt ${i}`).toMatchObject({ type: 'result' })
      for (const [j, peer] of others.entries()) {
        // A call that met the end already was refused and its connection closed; any other is
        // refused at its next call.
        const refusal = peer.closed ? meanwhile[j]!.message : ((await peer.callRefusal('whoami', {})) as unknown)
        expect(refusal, `attempt ${i}`).toMatchObject(ENDED)
      }
      await expect(bench.resume(token, undefined, cores[(home + 2) % CORES]), `attempt ${i}`).rejects.toMatchObject(
        ENDED,
      )
    }
  })

  it('a session one server finds ended (no use for 30 minutes, as stored) is refused by the server that saw a later use', async () => {
    const { peer: a, token } = await bench.login(sam, { peer: bench.connect(undefined, cores[0]) })
    bench.clock.advance(20 * MINUTE)
    await a.call('whoami', {}) // written: the last write was 20 minutes ago
    bench.clock.advance(30_000)
    await a.call('whoami', {}) // not written: within a minute of the last write (the throttle)
    bench.clock.advance(30 * MINUTE - 20_000)
    // Server B reads the stored last use, 30 minutes and 10 s ago: the session has ended there.
    await expect(bench.resume(token, undefined, cores[1])).rejects.toMatchObject(ENDED)
    // Server A saw a use 20 s later than the stored one, yet it refuses too: the store decides.
    expect(await a.callRefusal('whoami', {})).toMatchObject(ENDED)
  })

  it(`${ATTEMPTS} times: an admin demoted on one server while calling on another is refused at the next call`, async () => {
    await rootEverywhere()
    const { peer: adaPeer } = await bench.login(ada, { peer: bench.connect(undefined, cores[1]) })
    for (let i = 0; i < ATTEMPTS; i++) {
      const demoter = roots[i % 2 === 0 ? 0 : 2]!
      const answers = await atOnce([
        [demoter, call('set_role', { user: 'ada', role: 'regular_user' })],
        [adaPeer, call('users')],
      ])
      expect(answers[0]!.message, `attempt ${i}`).toMatchObject({ type: 'result' })
      expect(await adaPeer.callRefusal('users', {}), `attempt ${i}`).toMatchObject({
        code: 'ERR_FORBIDDEN',
        message: 'users needs the admin or system_admin role',
      })
      expect(await demoter.call('set_role', { user: 'ada', role: 'admin' })).toMatchObject({ role: 'admin' })
    }
  })
})

describe('one name registers once', () => {
  const ATTEMPTS = RACES
  let bench: Bench
  let cores: ServerCore[]
  beforeAll(async () => ({ bench, cores } = await threeCores()))
  afterAll(() => bench?.stop())

  /** register_start of `name` (the same credentials each time) on each of `peers` at once. */
  async function startAll(peers: Peer[], name: string, token?: string): Promise<Answer[]> {
    const credentials = await bench.credentials(name, PASSWORD, SALT)
    return atOnce(
      peers.map((peer) => [
        peer,
        { type: 'register_start', username: name, ...credentials, ...(token ? { token } : {}) },
      ]),
    )
  }

  /** register_confirm on each peer that got `enrol`, at once, with a code of its secret. */
  async function confirmAll(peers: Peer[], starts: Answer[]): Promise<Answer[]> {
    const sends: Array<[Peer, unknown]> = []
    for (const [j, answer] of starts.entries()) {
      if (answer.message.type !== 'enrol') continue
      const secret = secretFromOtpauthUri(answer.message.otpauthUri)!
      noteSecret('TOTP secret', secret)
      sends.push([peers[j]!, { type: 'register_confirm', code: (await bench.nextCode(secret, -1)).code }])
    }
    const answers = await atOnce(sends)
    for (const answer of answers)
      if (answer.message.type === 'registered')
        for (const code of answer.message.recoveryCodes) noteSecret('recovery code', code)
    return answers
  }

  it(`${ATTEMPTS} times, one name sent to three servers at once: one is enrolling, the others are told it is taken`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const name = `nora${i}`
      const peers = cores.map((core) => bench.connect(undefined, core))
      const starts = await startAll(peers, name)
      expect(kinds(starts), `attempt ${i}`).toEqual(['ERR_USERNAME_TAKEN', 'ERR_USERNAME_TAKEN', 'enrol'])
      expect(kinds(await confirmAll(peers, starts)), `attempt ${i}`).toEqual(['registered'])
      for (const peer of peers) peer.close()
    }
  })

  it('a name whose hold outlived its registration: of two confirmations at once, one registers', async () => {
    const [a, b] = [bench.connect(undefined, cores[0]), bench.connect(undefined, cores[1])]
    const first = await startAll([a], 'olga')
    // Past the longest a connection may wait for its code: the hold has expired.
    bench.clock.advance(5 * MINUTE + 1000)
    const second = await startAll([b], 'olga')
    expect(kinds([...first, ...second])).toEqual(['enrol', 'enrol'])
    const answers = await confirmAll([a, b], [...first, ...second])
    expect(kinds(answers)).toEqual(['ERR_USERNAME_TAKEN', 'registered'])
    expect(await hasUser(bench.store, 'olga')).toBe(true)
  })
})

describe('invites and the bootstrap token are single use', () => {
  const INVITES = 50
  const BOOTSTRAPS = 20
  let bench: Bench
  let cores: ServerCore[]
  beforeAll(async () => ({ bench, cores } = await threeCores({ registration: 'invite' })))
  afterAll(() => bench?.stop())

  /** Three registrations, one per core, with `token` under three names: started, then confirmed at once. */
  async function raceFor(token: string, names: string[]): Promise<Answer[]> {
    const peers = cores.map((core) => bench.connect(undefined, core))
    const starts: Answer[] = []
    for (const [j, peer] of peers.entries()) {
      const credentials = await bench.credentials(names[j]!, PASSWORD, SALT)
      starts.push(await peer.send({ type: 'register_start', username: names[j], ...credentials, token }))
    }
    expect(kinds(starts)).toEqual(['enrol', 'enrol', 'enrol'])
    const codes = await Promise.all(
      starts.map(async (answer) => {
        if (answer.message.type !== 'enrol') throw new Error('no enrol')
        const secret = secretFromOtpauthUri(answer.message.otpauthUri)!
        noteSecret('TOTP secret', secret)
        return (await bench.nextCode(secret, -1)).code
      }),
    )
    const answers = await atOnce(peers.map((peer, j) => [peer, { type: 'register_confirm', code: codes[j] }]))
    for (const answer of answers)
      if (answer.message.type === 'registered')
        for (const code of answer.message.recoveryCodes) noteSecret('recovery code', code)
    for (const peer of peers) peer.close()
    return answers
  }

  it(`${BOOTSTRAPS} times, the bootstrap token used by three servers at once: one system_admin`, async () => {
    for (let i = 0; i < BOOTSTRAPS; i++) {
      const token = i === 0 ? bench.bootstrapToken : (await bench.newBootstrapToken())!
      const names = cores.map((_, j) => `boot${i}x${j}`)
      const answers = await raceFor(token, names)
      expect(kinds(answers), `attempt ${i}`).toEqual(['ERR_FORBIDDEN', 'ERR_FORBIDDEN', 'registered'])
      const made = (await Promise.all(names.map((name) => getUser(bench.store, name)))).filter(Boolean)
      expect(
        made.map((user) => user!.role),
        `attempt ${i}`,
      ).toEqual(['system_admin'])
      // As if this store had lost its system_admin: the next start issues a new token.
      await bench.store.commit(roleIndexChanges(made[0]!.username, 'system_admin', undefined))
    }
  })

  it(`${INVITES} times, one invite used by three servers at once: one account`, async () => {
    for (let i = 0; i < INVITES; i++) {
      // Made in the store as `admin invite` makes one: what is under test is its spending.
      const invite = createInvite({
        role: 'regular_user',
        user: null,
        createdBy: 'root',
        nowMs: bench.clock.now(),
        ttlMs: 3600_000,
        randomBytes,
      })
      noteSecret('invite', invite.token)
      await bench.store.commit([invite.change])
      const names = cores.map((_, j) => `inv${i}x${j}`)
      const answers = await raceFor(invite.token, names)
      expect(kinds(answers), `attempt ${i}`).toEqual(['ERR_FORBIDDEN', 'ERR_FORBIDDEN', 'registered'])
      const made = await Promise.all(names.map((name) => hasUser(bench.store, name)))
      expect(made.filter(Boolean), `attempt ${i}`).toHaveLength(1)
    }
  })
})

describe('the last system_admin, and one audit chain', () => {
  const ATTEMPTS = RACES
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
      // Refused by the rule, or, when the other's demotion landed before this call read its caller,
      // as the admin it has just become.
      expect(
        ['the last system_admin cannot be demoted', 'an admin may act on regular users only'],
        `attempt ${i}`,
      ).toContain((refused as { message: string }).message)
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
    // What earlier tests left to write behind their answers (refusals' audit runs) is written first.
    for (const core of cores) core.ctx.budgets.audit.flush()
    await Promise.all(cores.map((core) => core.ctx.audit.flush()))
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
        // The middle entry of each core also creates one key, expecting it absent: one of the three can.
        core.ctx.audit.append(
          event(c, i),
          i === Math.floor(ATTEMPTS / 2) ? [{ key: 'test/once', value: { c }, expect: null }] : [],
        ),
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
