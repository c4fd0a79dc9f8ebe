import { stat } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, type Account, type CliResult, type Role } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Who may register, and as what (issue 6, "Bootstrap and registration policy"; docs/protocol.md,
// "Registration policy"): what of it needs the real server process and the real CLI. The
// bootstrap token in its 0600 file (and never in the log), `register --bootstrap-token` and
// `register --invite` end to end, `admin invite`'s JSON, `--expires` and its usage errors, a
// token that is not one, and --registration. What the server decides (open before any
// system_admin, the token replaced on restart and expiring, invites single use, for one name,
// expiring, each policy, the audit entries): test/conversation/registration-policy.test.ts.
// `admin add NAME`'s JSON: test/e2e/roles.test.ts.

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
  it('a new store gets one: written to a 0600 file, the log names the file but never holds the token', async () => {
    const token = await lab.bootstrapToken()
    expect(token).toMatch(/^slb_[A-Za-z0-9_-]{43}$/)
    expect((await stat(lab.bootstrapTokenFile)).mode & 0o777).toBe(0o600)
    const [written, ...more] = logged('bootstrap_token_written')
    expect(more).toEqual([])
    expect(written).toMatchObject({
      path: lab.bootstrapTokenFile,
      expiresAt: new Date(lab.clock.ms + 24 * HOUR).toISOString(),
    })
    expect(lab.server.log()).not.toContain(token)
  })

  it('register --bootstrap-token makes the first system_admin', async () => {
    root = await lab.register('root', { bootstrapToken: await lab.bootstrapToken() })
    await lab.mustLogin(root)
    const whoami = await lab.run(root, ['whoami'])
    expect(whoami.json).toMatchObject({ user: 'root', role: 'system_admin' })
  })
})

describe.runIf(hasOathtool)('invites', () => {
  it('admin invite prints a single-use invite as JSON; register --invite takes its role', async () => {
    const invited = await lab.run(root, ['admin', 'invite', '--role', 'admin'])
    expect(invited.json).toMatchObject({
      event: 'invite',
      role: 'admin',
      user: null,
      token: expect.stringMatching(/^sli_[A-Za-z0-9_-]{43}$/),
    })
    await lab.register('ada', { invite: invited.json!['token'] as string })
    expect((await roles()).get('ada')).toBe('admin')
  })

  it('--expires: 1h is an hour from now, 1m and 30d are the bounds; outside them a usage error', async () => {
    const made = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', '1h'])
    expect(made.code, describeResult(made)).toBe(0)
    expect(Date.parse(made.json!['expiresAt']) - lab.clock.ms).toBe(HOUR)
    for (const [expires, ms] of [
      ['1m', 60_000],
      ['30d', 30 * 24 * HOUR],
    ] as const) {
      const result = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', expires])
      expect(result.code, `--expires ${expires}: ${describeResult(result)}`).toBe(0)
      expect(Date.parse(result.json!['expiresAt']) - lab.clock.ms, `--expires ${expires}`).toBe(ms)
    }
    for (const expires of ['10s', '31d', 'soon']) {
      const result = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', expires])
      expect(result.code, `--expires ${expires}: ${describeResult(result)}`).toBe(2)
      expect(result.error?.code).toBe('ERR_USAGE')
    }
  })

  it('register --invite with a token that is not one: exit 1, ERR_FORBIDDEN, not valid', async () => {
    expectRefused(
      (await lab.tryRegister('forger', { invite: `sli_${'A'.repeat(43)}` })).result,
      'a made-up invite',
      /not valid/,
    )
    expect(lab.accounts.has('forger')).toBe(false)
  })
})

describe.runIf(hasOathtool)('a restart with --registration closed', () => {
  // One restart for both: a server process start opens the store at its real KDF cost.
  beforeAll(async () => {
    await lab.stopServer()
    await lab.startServer(['--registration', 'closed'])
  })

  it('with a system_admin, no bootstrap token is written and the spent file is removed', async () => {
    expect(logged('bootstrap_token_written')).toEqual([])
    await expect(stat(lab.bootstrapTokenFile), 'the spent token file is removed').rejects.toMatchObject({
      code: 'ENOENT',
    })
  })

  it('the server refuses a registration, and says why', async () => {
    expectRefused((await lab.tryRegister('carl')).result, 'closed, no invite', /closed/)
    expect((await roles()).has('carl')).toBe(false)
  })
})
