import { chmod, copyFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resumeSession, type LoginResult } from '../../src/client/login.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, newPassword, type Account, type CliResult } from '../helpers/accounts.js'
import { noteSecret } from '../helpers/secrets.js'
import { requireTool } from '../helpers/tools.js'
import { storeKindAvailable } from '../helpers/store-kind.js'

// Roles through the real CLI against the real server process (issue 6): that the CLI carries
// the server's answers. Each `admin` command once, with its arguments and its JSON; a refusal
// for the caller's role, for no session and for a revoked one, each with its exit code and the
// error on stderr; and `passwd` and `reset-2fa`, which log in afresh whatever became of the saved
// session. Who may do what to whom, every message by every kind of caller, is decided by the
// server and tested one layer down: test/conversation/roles.test.ts.
//
// A CLI process costs about half a second of CPU, one that logs in about twice that. So each
// command runs through the real process, and its other inputs here (`admin users` as a
// system_admin and with no session, `admin remove` of the last system_admin, `admin add` beside
// `admin invite`, `admin sessions NAME`, `whoami` on a revoked session: test/e2e/sessions.test.ts
// runs it) go through the CLI's own main() in this process (cli()): the same parsing, handler,
// output and exit code, without the start-up. Whether a session still works on the server is a
// session_resume in this process. One regular user, reg, is refused, revoked, logs in afresh and
// is then the target of each admin command; the accounts and their logins are made through the
// client library in this process. A system_admin removing itself when another remains is the
// server's decision (test/conversation/roles.test.ts; `admin remove`'s output is shown here);
// `passwd` and `reset-2fa` by a regular user whose session is live: test/e2e/sessions.test.ts.

// Once on each store kind (vitest.config.ts): skipped, with one line, without oathtool or the
// kind's server (PostgreSQL); under CI either fails instead.
const canRun = requireTool('oathtool') && (await storeKindAvailable())

let lab: Lab
let sys: Account
let reg: Account

function expectAllowed(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
  expect(result.error, what).toBeUndefined()
}

function expectForbidden(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe('ERR_FORBIDDEN')
  expect(result.stdout, `${what}: nothing on stdout`).toBe('')
}

async function copySessionInto(fromHome: string, toHome: string): Promise<void> {
  const to = lab.sessionFile(toHome)
  await mkdir(dirname(to), { recursive: true, mode: 0o700 })
  await copyFile(lab.sessionFile(fromHome), to)
  await chmod(to, 0o600)
}

/** The token of the session saved in `home` (noted: the CLI's own logins save tokens no helper notes). */
async function savedToken(home: string): Promise<string> {
  const token = (await lab.savedSession(home))!['token'] as string
  noteSecret('session token', token)
  return token
}

/** What the server says to a session_resume with `token` (as each command begins), or undefined when it has ended. */
async function resumed(token: string): Promise<LoginResult | undefined> {
  const conn = await lab.connect()
  try {
    return await resumeSession(conn, token)
  } catch (error) {
    if (!(error instanceof SecureLoginError && error.code === 'ERR_FORBIDDEN')) throw error
    expect(error.message).toMatch(/session has ended/)
    return undefined
  } finally {
    conn.close()
  }
}

/** The CLI's main() in this process, as the client whose home is `home` (see the header). */
const cli = (home: string, args: string[]) => lab.runHere(home, args)

beforeAll(async () => {
  lab = await Lab.start('roles', { serverArgs: ['--registration', 'open'] })
  if (!canRun) return
  // Accounts and logins through the client library in this process: the CLI's register and
  // login are test/e2e/register-login.test.ts's and test/e2e/registration-policy.test.ts's.
  sys = await lab.registerDirect('sys', { invite: await lab.bootstrapToken() })
  await lab.loginDirect(sys)
  reg = await lab.registerDirect('reg')
  await lab.loginDirect(reg)
}, 240_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

describe.runIf(canRun)('with one system_admin', () => {
  it('the bootstrap registration made sys the system_admin, with the default session times', async () => {
    // What this server process says with no session flags (`whoami`'s output: test/e2e/sessions.test.ts).
    const { user, role, session } = await lab.asUser(sys, (run) => run('whoami', {}))
    expect({ user, role }).toEqual({ user: 'sys', role: 'system_admin' })
    // 30 minutes idle, 12 hours in all.
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(30 * 60_000)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(12 * 3_600_000)
  })

  it('the last system_admin may not remove itself: the server’s reason on stderr, exit 1', async () => {
    const last = await cli(sys.home, ['admin', 'remove', 'sys', '--yes'])
    expectForbidden(last, 'admin remove sys')
    expect(last.error?.message).toBe('the last system_admin cannot be removed')
  })
})

describe.runIf(canRun)('the CLI carries the role rules', () => {
  it('a refusal for the caller’s role is ERR_FORBIDDEN on stderr, exit 1, and the session stays', async () => {
    const token = await savedToken(reg.home)
    const users = await lab.run(reg, ['admin', 'users'])
    expectForbidden(users, 'admin users by a regular user')
    expect(users.error?.message).toBe('users needs the admin or system_admin role')
    // Kept here, and still live on the server.
    expect(await savedToken(reg.home)).toBe(token)
    expect(await resumed(token)).toMatchObject({ user: 'reg', role: 'regular_user' })
  })

  it('with no saved session a command is refused with "not logged in", exit 1', async () => {
    // Logging out, and `whoami` with no session through the process: test/e2e/sessions.test.ts.
    const refused = await cli(lab.homeOf('nobody'), ['admin', 'users'])
    expectForbidden(refused, 'admin users logged out')
    expect(refused.error?.message).toMatch(/^not logged in/)
  })

  it('revoked: admin revoke --user ends it; the client is refused and forgets it; its logout says revoked 0', async () => {
    const copy = lab.homeOf('reg-copy')
    await copySessionInto(reg.home, copy)
    const revoke = await lab.run(sys, ['admin', 'revoke', '--user', 'reg'])
    expectAllowed(revoke, 'admin revoke --user reg')
    expect(revoke.json).toMatchObject({ event: 'revoked', revoked: 1 })
    const whoami = await cli(reg.home, ['whoami'])
    expectForbidden(whoami, 'whoami in a revoked session')
    expect(whoami.error?.message).toMatch(/session has ended/)
    expect(await lab.savedSession(reg.home), 'an ended session is forgotten').toBeUndefined()
    const logout = await lab.runIn(copy, ['logout'])
    expectAllowed(logout, 'logout of a revoked session')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 0 })
    expect(await lab.savedSession(copy)).toBeUndefined()
  })
})

// `passwd` and `reset-2fa` run on no saved session: each logs in afresh with the password and a
// code. So a caller may whatever their role and whatever became of their session: here a regular
// user whose session was revoked and forgotten (the other callers: one layer down).
describe.runIf(canRun)('passwd and reset-2fa log in afresh', () => {
  it('a regular user whose session was revoked', async () => {
    expect(await lab.savedSession(reg.home), 'no saved session').toBeUndefined()
    const nextPassword = newPassword()
    const passwd = await lab.run(
      reg,
      ['passwd', '--user', 'reg', '--password-stdin', '--otp', lab.codeFor(reg)],
      `${reg.password}\n${nextPassword}\n`,
    )
    expectAllowed(passwd, 'passwd')
    expect(passwd.json).toMatchObject({ event: 'password_changed', user: 'reg' })
    reg.password = nextPassword
    const afterPasswd = await savedToken(reg.home)

    const oldSecret = reg.totpSecret
    const lastStep = reg.lastStep
    const { result } = await lab.enrolThrough(reg, reg.home, [
      'reset-2fa',
      '--user',
      'reg',
      '--password-stdin',
      '--otp',
      lab.codeFor(reg),
    ])
    expectAllowed(result, 'reset-2fa')
    expect(result.json).toMatchObject({ event: 'totp_reset', user: 'reg' })
    expect(reg.totpSecret).not.toBe(oldSecret)
    // The step the reset's own login used stays spent (enrolThrough counts from the enrolment's).
    reg.lastStep = Math.max(reg.lastStep, lastStep)

    // Both logins saved a session: reg is logged in again, in their own role.
    const token = await savedToken(reg.home)
    expect(token).not.toBe(afterPasswd)
    expect(await lab.savedSession(reg.home)).toMatchObject({ user: 'reg', role: 'regular_user' })
    expect(await resumed(token)).toMatchObject({ user: 'reg', role: 'regular_user' })
  })
})

describe.runIf(canRun)('each admin command: its arguments and its JSON', () => {
  it('users, invite, add', async () => {
    const users = await cli(sys.home, ['admin', 'users'])
    expectAllowed(users, 'admin users')
    expect(users.json!['event']).toBe('users')
    expect(users.json!['users']).toContainEqual(
      expect.objectContaining({ user: 'sys', role: 'system_admin', twoFactor: 'enrolled', locked: false }),
    )
    const invite = await lab.run(sys, ['admin', 'invite', '--role', 'admin', '--expires', '2h'])
    expectAllowed(invite, 'admin invite')
    expect(invite.json).toMatchObject({
      event: 'invite',
      role: 'admin',
      user: null,
      token: expect.stringMatching(/^sli_/),
    })
    expect(Date.parse(invite.json!['expiresAt']) - lab.clock.ms).toBe(2 * 3_600_000)
    const add = await cli(sys.home, ['admin', 'add', 'newcomer', '--role', 'regular_user'])
    expectAllowed(add, 'admin add')
    expect(add.json).toMatchObject({ event: 'invite', role: 'regular_user', user: 'newcomer' })
  })

  it('sessions, sessions NAME', async () => {
    const all = await lab.run(sys, ['admin', 'sessions'])
    expectAllowed(all, 'admin sessions')
    expect(all.json!['event']).toBe('sessions')
    expect((all.json!['sessions'] as Array<{ user: string }>).map((s) => s.user)).toEqual(
      expect.arrayContaining(['sys', 'reg']),
    )
    const regs = await cli(sys.home, ['admin', 'sessions', 'reg'])
    expectAllowed(regs, 'admin sessions reg')
    expect((regs.json!['sessions'] as Array<{ user: string }>).map((s) => s.user)).toEqual(['reg'])
  })

  it('role, reset-2fa, unlock, remove (which wants --yes)', async () => {
    const role = await lab.run(sys, ['admin', 'role', 'reg', 'admin'])
    expectAllowed(role, 'admin role')
    expect(role.json).toMatchObject({ event: 'role', user: 'reg', role: 'admin', previous: 'regular_user' })
    // reg's one live session (the reset-2fa above saved it) ends with the reset.
    const reset = await lab.run(sys, ['admin', 'reset-2fa', 'reg'])
    expectAllowed(reset, 'admin reset-2fa')
    expect(reset.json).toMatchObject({ event: 'reset_2fa', user: 'reg', revokedSessions: 1 })
    const unlock = await lab.run(sys, ['admin', 'unlock', 'reg'])
    expect(unlock.json).toMatchObject({ event: 'unlock', user: 'reg', wasLocked: false })
    const unconfirmed = await lab.run(sys, ['admin', 'remove', 'reg'])
    expect(unconfirmed.code, describeResult(unconfirmed)).toBe(2)
    expect(unconfirmed.error?.code).toBe('ERR_USAGE')
    expect(unconfirmed.stdout).toBe('')
    const remove = await lab.run(sys, ['admin', 'remove', 'reg', '--yes'])
    expectAllowed(remove, 'admin remove')
    expect(remove.json).toMatchObject({ event: 'removed', user: 'reg', revokedSessions: 0 })
    const after = await lab.asUser(sys, (run) => run('users', {}))
    expect(after.users.map((u) => u.user)).not.toContain('reg')
  })
})
