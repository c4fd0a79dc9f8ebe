import { stat } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, type Account } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Who may register, and as what (issue 6, "Bootstrap and registration policy"; docs/protocol.md,
// "Registration policy"): what of it needs the real server process and the real CLI. The
// bootstrap token in its 0600 file (and never in the log), `register --bootstrap-token` and
// `register --invite` end to end, `admin invite`'s JSON, `--expires` and its usage errors, and
// --registration. What the server decides (only the token before any system_admin, the token replaced on
// restart and expiring, invites single use, with their role, for one name, expiring, a made-up
// one not valid, each policy, the audit entries): test/conversation/registration-policy.test.ts.
// `admin add NAME`'s JSON: test/e2e/roles.test.ts.

const hasOathtool = requireTool('oathtool')
const HOUR = 60 * 60_000

let lab: Lab
let root: Account
/** An invite for an admin, made by root with `admin invite`, not used until the server is closed. */
let adminInvite: string

beforeAll(async () => {
  lab = await Lab.start('registration')
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

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
    // The login is setup (the CLI's own is test/e2e/register-login.test.ts's); the role is what
    // shows that the CLI sent the token: a registration without one is refused.
    await lab.loginDirect(root)
    expect(await lab.asUser(root, (run) => run('whoami', {}))).toMatchObject({ user: 'root', role: 'system_admin' })
  })
})

describe.runIf(hasOathtool)('admin invite', () => {
  it('prints the invite as JSON; --expires: 1h is an hour from now, 1m and 30d are the bounds', async () => {
    const invited = await lab.run(root, ['admin', 'invite', '--role', 'admin', '--expires', '30d'])
    expect(invited.code, describeResult(invited)).toBe(0)
    expect(invited.json).toMatchObject({
      event: 'invite',
      role: 'admin',
      user: null,
      token: expect.stringMatching(/^sli_[A-Za-z0-9_-]{43}$/),
    })
    expect(Date.parse(invited.json!['expiresAt']) - lab.clock.ms, '--expires 30d').toBe(30 * 24 * HOUR)
    adminInvite = invited.json!['token'] as string
    for (const [expires, ms] of [
      ['1h', HOUR],
      ['1m', 60_000],
    ] as const) {
      const result = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', expires])
      expect(result.code, `--expires ${expires}: ${describeResult(result)}`).toBe(0)
      expect(Date.parse(result.json!['expiresAt']) - lab.clock.ms, `--expires ${expires}`).toBe(ms)
    }
  })

  it('--expires outside 1m to 30d, or not a duration: a usage error (exit 2)', async () => {
    for (const expires of ['10s', '31d', 'soon']) {
      const result = await lab.run(root, ['admin', 'invite', '--role', 'regular_user', '--expires', expires])
      expect(result.code, `--expires ${expires}: ${describeResult(result)}`).toBe(2)
      expect(result.error?.code).toBe('ERR_USAGE')
    }
  })
})

describe.runIf(hasOathtool)('a restart with --registration closed', () => {
  // One restart for both tests: a server process start is a node start-up and a store opening.
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

  it('register --invite is refused: exit 1, ERR_FORBIDDEN, and why', async () => {
    // "invites included" is the answer to a valid invite only (a token that is not one is "not
    // valid"): it shows that the CLI sent the invite, and that the server runs closed.
    const { result, account } = await lab.tryRegister('ada', { invite: adminInvite })
    expect(result.code, describeResult(result)).toBe(1)
    expect(result.error?.code, describeResult(result)).toBe('ERR_FORBIDDEN')
    expect(result.error?.message).toMatch(/registration is closed on this server, invites included/)
    expect(account).toBeUndefined()
  })
})
