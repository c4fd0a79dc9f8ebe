import { stat } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, type Account, type CliResult, type Role } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Who may register, and as what (issue 6, "Bootstrap and registration policy"; docs/protocol.md,
// "Registration policy"): the bootstrap token, invites, and --registration, through the real
// server process and the real CLI. One server, started without --registration, so its default
// is what is under test until the last two tests restart it with a policy.

const hasOathtool = requireTool('oathtool')
const HOUR = 60 * 60_000

let lab: Lab
let root: Account

beforeAll(async () => {
  lab = await Lab.start('registration')
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

function expectRefused(result: CliResult, what: string, message?: RegExp): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe('ERR_FORBIDDEN')
  if (message) expect(result.error?.message, what).toMatch(message)
}

/** Every user's role, as `admin users` shows it to root. */
async function roles(): Promise<Map<string, Role>> {
  const result = await lab.run(root, ['admin', 'users'])
  expect(result.code, describeResult(result)).toBe(0)
  return new Map((result.json!['users'] as Array<{ user: string; role: Role }>).map((u) => [u.user, u.role]))
}

/** The server's log lines of one event. */
const logged = (event: string) =>
  lab.server
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((entry) => entry['event'] === event)

describe.runIf(hasOathtool)('the bootstrap token', () => {
  let first: string

  it('a new store gets one: written to a 0600 file, the log names the file but never holds the token', async () => {
    first = await lab.bootstrapToken()
    expect(first).toMatch(/^slb_[A-Za-z0-9_-]{43}$/)
    expect((await stat(lab.bootstrapTokenFile)).mode & 0o777).toBe(0o600)
    const [written, ...more] = logged('bootstrap_token_written')
    expect(more).toEqual([])
    expect(written).toMatchObject({
      path: lab.bootstrapTokenFile,
      expiresAt: new Date(lab.clock.ms + 24 * HOUR).toISOString(),
    })
    expect(lab.server.log()).not.toContain(first)
  })

  it('before any system_admin, registration is open: a user without a token becomes a regular_user', async () => {
    await lab.register('early')
  })

  it('a restart while there is no system_admin replaces it: the old one no longer works', async () => {
    await lab.stopServer()
    await lab.startServer()
    const second = await lab.bootstrapToken()
    expect(second).not.toBe(first)
    expectRefused((await lab.tryRegister('root', { bootstrapToken: first })).result, 'the replaced token', /not valid/)
  })

  it('expires after 24 hours', async () => {
    const token = await lab.bootstrapToken()
    lab.clock.advance(24 * HOUR + 60_000)
    expectRefused(
      (await lab.tryRegister('root', { bootstrapToken: token })).result,
      'an expired bootstrap token',
      /not valid/,
    )
  })

  it('makes the first to use it a system_admin, once; with a system_admin, a restart makes none', async () => {
    await lab.stopServer()
    await lab.startServer()
    const token = await lab.bootstrapToken()
    root = await lab.register('root', { bootstrapToken: token })
    expectRefused((await lab.tryRegister('root2', { bootstrapToken: token })).result, 'a second use', /not valid/)
    await lab.mustLogin(root)
    const whoami = await lab.run(root, ['whoami'])
    expect(whoami.json).toMatchObject({ user: 'root', role: 'system_admin' })

    await lab.stopServer()
    await lab.startServer()
    expect(logged('bootstrap_token_written')).toEqual([])
    await expect(stat(lab.bootstrapTokenFile), 'the spent token file is removed').rejects.toMatchObject({
      code: 'ENOENT',
    })
    expectRefused((await lab.tryRegister('root2', { bootstrapToken: token })).result, 'the spent token after a restart')
    expect(await roles()).toEqual(
      new Map([
        ['early', 'regular_user'],
        ['root', 'system_admin'],
      ]),
    )
  })
})

describe.runIf(hasOathtool)('invites', () => {
  it('once a system_admin exists, the default policy is invite: registering without one is refused', async () => {
    expectRefused((await lab.tryRegister('walkin')).result, 'no invite', /needs an invite/)
    expect(lab.accounts.has('walkin')).toBe(false)
  })

  it('admin invite: single use, and the registration takes its role', async () => {
    const invited = await lab.run(root, ['admin', 'invite', '--role', 'admin'])
    expect(invited.json).toMatchObject({
      event: 'invite',
      role: 'admin',
      user: null,
      token: expect.stringMatching(/^sli_[A-Za-z0-9_-]{43}$/),
    })
    const token = invited.json!['token'] as string
    await lab.register('ada', { invite: token })
    expectRefused((await lab.tryRegister('ada2', { invite: token })).result, 'a second use of the invite', /not valid/)
    expect((await roles()).get('ada')).toBe('admin')
    expect((await roles()).has('ada2')).toBe(false)
  })

  it('admin add NAME: the invite works for that name only', async () => {
    const token = await lab.invite(root, 'regular_user', { name: 'bea' })
    expectRefused((await lab.tryRegister('eve', { invite: token })).result, 'another name', /for another user name/)
    await lab.register('bea', { invite: token })
    expect((await roles()).get('bea')).toBe('regular_user')
  })

  it('an invite expires: --expires 1h, then 61 minutes', async () => {
    const made = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', '1h'])
    expect(Date.parse(made.json!['expiresAt']) - lab.clock.ms).toBe(HOUR)
    lab.clock.advance(HOUR + 60_000)
    expectRefused(
      (await lab.tryRegister('late', { invite: made.json!['token'] })).result,
      'an expired invite',
      /not valid/,
    )
    // Root's session has idled out (30 min) meanwhile.
    expectRefused(await lab.run(root, ['whoami']), 'root after 61 idle minutes', /session has ended/)
    await lab.mustLogin(root)
  })

  it('refuses an --expires outside 1m to 30d, and a token that is not one', async () => {
    for (const expires of ['10s', '31d', 'soon']) {
      const result = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', expires])
      expect(result.code, `--expires ${expires}: ${describeResult(result)}`).toBe(2)
      expect(result.error?.code).toBe('ERR_USAGE')
    }
    expectRefused(
      (await lab.tryRegister('forger', { invite: `sli_${'A'.repeat(43)}` })).result,
      'a made-up invite',
      /not valid/,
    )
  })
})

describe.runIf(hasOathtool)('--registration', () => {
  it('closed: nobody registers, not even with an invite', async () => {
    const token = await lab.invite(root, 'regular_user')
    await lab.stopServer()
    await lab.startServer(['--registration', 'closed'])
    expectRefused((await lab.tryRegister('carl')).result, 'closed, no invite', /closed/)
    expectRefused(
      (await lab.tryRegister('carl', { invite: token })).result,
      'closed, with an invite',
      /invites included/,
    )

    // The invite was refused, not spent: under another policy it still works.
    await lab.stopServer()
    await lab.startServer(['--registration', 'invite'])
    await lab.register('carl', { invite: token })
  })

  it('open: anyone registers, as a regular_user only', async () => {
    await lab.stopServer()
    await lab.startServer(['--registration', 'open'])
    await lab.register('walkin')
    const now = await roles()
    expect(now.get('walkin')).toBe('regular_user')
    expect(now.get('carl')).toBe('regular_user')
    expect([...now.values()].filter((role) => role === 'system_admin')).toEqual(['system_admin'])
  })

  it('the audit log has each registration, how it was allowed, and each refusal', async () => {
    const audit = await lab.run(root, ['admin', 'audit', '--json'])
    const registrations = audit.events.filter((e) => e['action'] === 'user.register')
    const ok = registrations
      .filter((e) => e['outcome'] === 'ok')
      .map((e) => [e['target'], e['details']['via'], e['details']['role']])
    expect(ok).toEqual([
      ['early', 'open', 'regular_user'],
      ['root', 'bootstrap', 'system_admin'],
      ['ada', 'invite', 'admin'],
      ['bea', 'invite', 'regular_user'],
      ['carl', 'invite', 'regular_user'],
      ['walkin', 'open', 'regular_user'],
    ])
    const refused = registrations.filter((e) => e['outcome'] === 'refused').map((e) => e['target'])
    expect(refused).toEqual([
      'root',
      'root',
      'root2',
      'root2',
      'walkin',
      'ada2',
      'eve',
      'late',
      'forger',
      'carl',
      'carl',
    ])
    for (const entry of registrations)
      expect(entry).toMatchObject({ actor: null, address: '127.0.0.1', at: expect.any(String) })
  })
})
