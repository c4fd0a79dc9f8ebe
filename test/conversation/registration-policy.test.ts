import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEntry } from '../../src/protocol/calls.js'
import type { Role } from '../../src/protocol/messages.js'
import { BOOTSTRAP_KEY, type TokenRecord } from '../../src/server/invites.js'
import { Bench, MINUTE, ServerError, type LoggedIn, type User } from '../helpers/conversation.js'
import { noteOutput, noteSecret } from '../helpers/secrets.js'

// Who may register, and as what (issue 6, "Bootstrap and registration policy"; docs/protocol.md,
// "Registration policy"), through the server's conversations: the bootstrap token (the only way
// in, by default, while there is no system_admin; the first to use it becomes one, once;
// replaced by a restart while there is none; expires after 24 h; none once there is one),
// invites (single use, with their role, for one name only, expiring), the policies (invite by
// default, with or without a system_admin; closed refuses even invites; open registers
// regular_users only) and the audit entry each registration
// and each refusal leaves. One store, started without a policy, so that the default is under test
// until the policy tests restart it with one. The bootstrap token's file and log line, `register`
// end to end, `admin invite`'s JSON, `--expires` and `--registration`:
// test/e2e/registration-policy.test.ts; `admin add NAME`'s JSON: test/e2e/roles.test.ts.

const HOUR = 60 * MINUTE
const INVITE = /^sli_[A-Za-z0-9_-]{43}$/

let bench: Bench
let root: User
let rootLogin: LoggedIn

beforeAll(async () => {
  bench = await Bench.start()
})

afterAll(async () => {
  // The suite-wide check then finds any token or password an entry holds.
  if (bench && root) noteOutput('audit log', 'log', JSON.stringify(await registrations()))
  await bench?.stop()
})

/** A registration the server must refuse at register_start: ERR_FORBIDDEN; the connection stays. */
async function refused(name: string, token?: string): Promise<ServerError> {
  const error = await bench.register(name, { bulk: true, ...(token === undefined ? {} : { token }) }).then(
    () => new Error(`${name} registered`),
    (error: unknown) => error,
  )
  expect(error, name).toBeInstanceOf(ServerError)
  expect(error, name).toMatchObject({ code: 'ERR_FORBIDDEN', ended: false })
  // Its audit entry is written behind the answer; a restart right after must not lose it (the
  // core's close waits for the audit log: the last test finds every refusal).
  return error as ServerError
}

/** Root on a live session: the last login's while it lasts (a restart ends it), else a new login. */
async function asRoot(): Promise<LoggedIn> {
  const { peer } = rootLogin
  if (!peer.closed && (await peer.send({ type: 'call', op: 'whoami', args: {} })).message.type === 'result')
    return rootLogin
  rootLogin = await bench.login(root)
  return rootLogin
}

/** Every user's role, as `users` shows it to root. */
async function roles(): Promise<Map<string, Role>> {
  const { users } = await (await asRoot()).peer.call('users', {})
  return new Map(users.map((u) => [u.user, u.role]))
}

/** An invite made by root. */
async function invite(args: { role: Role; user?: string; ttlSeconds?: number }) {
  const made = await (await asRoot()).peer.call('invite', { ttlSeconds: 3600, ...args })
  noteSecret('invite', made.token)
  expect(made.token).toMatch(INVITE)
  return made
}

/** The audit log's registration entries, as root reads them (refusals, written behind their answers, included). */
async function registrations(): Promise<AuditEntry[]> {
  const { entries } = await (await asRoot()).peer.call('audit', {})
  return entries.filter((e) => e.action === 'user.register')
}

describe('the bootstrap token', () => {
  let first: string

  it('a new store gets one (slb_...), expiring in 24 hours; the store keeps only its hash', async () => {
    first = bench.bootstrapToken
    expect(first).toMatch(/^slb_[A-Za-z0-9_-]{43}$/)
    const record = await bench.store.get<TokenRecord>(BOOTSTRAP_KEY)
    expect(record).toMatchObject({ role: 'system_admin', user: null, createdBy: null, createdAt: bench.clock.ms })
    expect(record!.expiresAt - record!.createdAt).toBe(24 * HOUR)
    expect(JSON.stringify(record)).not.toContain(first.slice(4))
  })

  it('before any system_admin, without --registration, only the bootstrap token registers: no token is refused', async () => {
    expect((await refused('first-walkin')).message).toMatch(/needs an invite/)
    expect(await bench.store.keys('user/')).toEqual([])
  })

  it('under --registration open a user registers without a token; that store (users, no system_admin) restarted without the flag refuses walk-ins', async () => {
    await bench.restartServer({ registration: 'open' })
    const early = await bench.register('early', { bulk: true })
    const { welcome } = await bench.login(early)
    expect(welcome).toMatchObject({ user: 'early', role: 'regular_user' })
    first = (await bench.restartServer({ registration: undefined }))!
    expect((await refused('early2')).message).toMatch(/needs an invite/)
  })

  it('a restart while there is no system_admin replaces it: the old one no longer works', async () => {
    const second = await bench.restartServer()
    expect(second).toMatch(/^slb_[A-Za-z0-9_-]{43}$/)
    expect(second).not.toBe(first)
    expect((await refused('root', first)).message).toMatch(/not valid/)
  })

  it('expires after 24 hours', async () => {
    const token = bench.bootstrapToken
    bench.clock.advance(24 * HOUR + MINUTE)
    expect((await refused('root', token)).message).toMatch(/not valid/)
  })

  it('makes the first to use it a system_admin, once; with a system_admin, a restart makes none', async () => {
    const token = (await bench.restartServer())!
    root = await bench.register('root', { token, bulk: true })
    expect(await bench.store.has(BOOTSTRAP_KEY), 'spent with the registration').toBe(false)
    expect((await refused('root2', token)).message).toMatch(/not valid/)
    rootLogin = await bench.login(root)
    expect(rootLogin.welcome).toMatchObject({ user: 'root', role: 'system_admin' })
    expect(await rootLogin.peer.call('whoami', {})).toMatchObject({ user: 'root', role: 'system_admin' })

    expect(await bench.restartServer(), 'no token once a system_admin exists').toBeUndefined()
    expect(await bench.store.has(BOOTSTRAP_KEY)).toBe(false)
    expect((await refused('root2', token)).message).toMatch(/not valid/)
    expect(await roles()).toEqual(
      new Map([
        ['early', 'regular_user'],
        ['root', 'system_admin'],
      ]),
    )
  })
})

describe('invites', () => {
  it('once a system_admin exists, the default policy is invite: registering without one is refused', async () => {
    expect((await refused('walkin')).message).toMatch(/needs an invite/)
    expect((await roles()).has('walkin')).toBe(false)
  })

  it('an invite is single use, and the registration takes its role', async () => {
    const made = await invite({ role: 'admin' })
    expect(made).toMatchObject({ role: 'admin', user: null })
    const ada = await bench.register('ada', { token: made.token, bulk: true })
    expect((await refused('ada2', made.token)).message).toMatch(/not valid/)
    expect((await roles()).get('ada')).toBe('admin')
    expect((await roles()).has('ada2')).toBe(false)
    expect((await bench.login(ada)).welcome.role).toBe('admin')
  })

  it('an invite for a name works for that name only, and its holder is told which name', async () => {
    const made = await invite({ role: 'regular_user', user: 'bea' })
    expect(made).toMatchObject({ role: 'regular_user', user: 'bea' })
    // The invite's holder learns the name it was made for: what they were given with it.
    expect(await refused('eve', made.token)).toMatchObject({
      message: 'this invite is for the user name bea',
      hint: 'register as bea, or ask an administrator for an invite for the name you want',
    })
    // Without that invite nobody learns it: another token, or none, gets the answer every name gets.
    const forged = `sli_${'B'.repeat(43)}`
    for (const name of ['eve', 'bea']) {
      expect((await refused(name, forged)).message).toMatch(/not valid/)
      expect((await refused(name)).message).toMatch(/needs an invite/)
    }
    await bench.register('bea', { token: made.token, bulk: true })
    expect((await roles()).get('bea')).toBe('regular_user')
  })

  it('an invite expires: made for an hour, refused 61 minutes later', async () => {
    const made = await invite({ role: 'regular_user', ttlSeconds: 3600 })
    expect(Date.parse(made.expiresAt) - bench.clock.ms).toBe(HOUR)
    bench.clock.advance(HOUR + MINUTE)
    expect((await refused('late', made.token)).message).toMatch(/not valid/)
    // Root's session has idled out (30 min) meanwhile.
    const idle = await bench.connect().refusal({ type: 'session_resume', token: rootLogin.token })
    expect(idle).toMatchObject({ code: 'ERR_FORBIDDEN', message: expect.stringMatching(/session has ended/) })
    rootLogin = await bench.login(root)
    expect((await rootLogin.peer.call('whoami', {})).user).toBe('root')
  })

  it('a made-up invite is not valid, and makes no account', async () => {
    expect((await refused('forger', `sli_${'A'.repeat(43)}`)).message).toMatch(/not valid/)
    expect((await roles()).has('forger')).toBe(false)
  })
})

describe('the registration policy', () => {
  it('closed: nobody registers, not even with an invite; the refused invite is not spent', async () => {
    const { token } = await invite({ role: 'regular_user' })
    expect(await bench.restartServer({ registration: 'closed' })).toBeUndefined()
    expect((await refused('carl')).message).toMatch(/closed/)
    expect((await refused('carl', token)).message).toMatch(/invites included/)

    // The invite was refused, not spent: under another policy it still works.
    await bench.restartServer({ registration: 'invite' })
    await bench.register('carl', { token, bulk: true })
    expect((await roles()).get('carl')).toBe('regular_user')
  })

  it('open: anyone registers, as a regular_user only', async () => {
    await bench.restartServer({ registration: 'open' })
    await bench.register('walkin', { bulk: true })
    const now = await roles()
    expect(now.get('walkin')).toBe('regular_user')
    expect(now.get('carl')).toBe('regular_user')
    expect([...now.values()].filter((role) => role === 'system_admin')).toEqual(['system_admin'])
  })

  it('the audit log has each registration, how it was allowed, and each refusal with its reason', async () => {
    const entries = await registrations()
    const ok = entries.filter((e) => e.outcome === 'ok').map((e) => [e.target, e.details!['via'], e.details!['role']])
    expect(ok).toEqual([
      ['early', 'open', 'regular_user'],
      ['root', 'bootstrap', 'system_admin'],
      ['ada', 'invite', 'admin'],
      ['bea', 'invite', 'regular_user'],
      ['carl', 'invite', 'regular_user'],
      ['walkin', 'open', 'regular_user'],
    ])
    const refusals = entries.filter((e) => e.outcome === 'refused').map((e) => [e.target, e.details!['reason']])
    const invalid = expect.stringMatching(/not valid/)
    expect(refusals).toEqual([
      ['first-walkin', expect.stringMatching(/needs an invite/)],
      ['early2', expect.stringMatching(/needs an invite/)],
      ['root', invalid],
      ['root', invalid],
      ['root2', invalid],
      ['root2', invalid],
      ['walkin', expect.stringMatching(/needs an invite/)],
      ['ada2', invalid],
      ['eve', 'this invite is for the user name bea'],
      ['eve', invalid],
      ['eve', expect.stringMatching(/needs an invite/)],
      ['bea', invalid],
      ['bea', expect.stringMatching(/needs an invite/)],
      ['late', invalid],
      ['forger', invalid],
      ['carl', expect.stringMatching(/closed/)],
      ['carl', expect.stringMatching(/invites included/)],
    ])
    for (const entry of entries)
      expect(entry).toMatchObject({ actor: null, address: '127.0.0.1', at: expect.any(String) })
  })
})

describe('closed from the start', () => {
  it('the bootstrap token still makes the first system_admin; nobody else registers', async () => {
    const closed = await Bench.start({ registration: 'closed' })
    try {
      const sys = await closed.registerBootstrap('sys')
      expect((await closed.login(sys)).welcome.role).toBe('system_admin')
      await expect(closed.register('other', { bulk: true })).rejects.toMatchObject({
        code: 'ERR_FORBIDDEN',
        message: expect.stringMatching(/closed/),
      })
    } finally {
      await closed.stop()
    }
  })
})
