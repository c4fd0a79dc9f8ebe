import { chmod, copyFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, newPassword, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Roles through the real CLI against the real server process (issue 6): that the CLI carries
// the server's answers. Each `admin` command once, with its arguments and its JSON; a refusal
// for the caller's role, for no session and for a revoked one, each with its exit code and the
// error on stderr; and `passwd` and `reset-2fa`, which log in afresh whatever became of the saved
// session. Who may do what to whom, every message by every kind of caller, is decided by the
// server and tested one layer down: test/conversation/roles.test.ts.

const hasOathtool = requireTool('oathtool')

let lab: Lab
let sys: Account
let reg: Account
let rvk: Account
const account = (name: string) => lab.accounts.get(name)!

function expectAllowed(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
  expect(result.error, what).toBeUndefined()
}

function expectForbidden(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe('ERR_FORBIDDEN')
}

async function copySessionInto(fromHome: string, toHome: string): Promise<void> {
  const to = lab.sessionFile(toHome)
  await mkdir(dirname(to), { recursive: true, mode: 0o700 })
  await copyFile(lab.sessionFile(fromHome), to)
  await chmod(to, 0o600)
}

beforeAll(async () => {
  lab = await Lab.start('roles', { serverArgs: ['--registration', 'open'] })
  if (!hasOathtool) return
  // Accounts and logins through the client library in this process: the CLI's register and
  // login are test/e2e/register-login.test.ts's and test/e2e/registration-policy.test.ts's.
  sys = await lab.registerDirect('sys', { invite: await lab.bootstrapToken() })
  await lab.loginDirect(sys)
}, 240_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

describe.runIf(hasOathtool)('with one system_admin', () => {
  it('the bootstrap registration made sys the system_admin, with the default session times', async () => {
    const whoami = await lab.run(sys, ['whoami'])
    expectAllowed(whoami, 'whoami')
    expect(whoami.json).toMatchObject({ event: 'whoami', user: 'sys', role: 'system_admin' })
    // This server runs with the default session times: 30 minutes idle, 12 hours in all.
    const { session } = whoami.json!
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(30 * 60_000)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(12 * 3_600_000)
  })

  it('the last system_admin may not remove itself: the server’s reason on stderr, exit 1', async () => {
    const last = await lab.run(sys, ['admin', 'remove', 'sys', '--yes'])
    expectForbidden(last, 'admin remove sys')
    expect(last.error?.message).toBe('the last system_admin cannot be removed')
    expect(last.stdout).toBe('')
  })
})

describe.runIf(hasOathtool)('the CLI carries the role rules', () => {
  beforeAll(async () => {
    reg = await lab.registerDirect('reg')
    await lab.loginDirect(reg)
    await lab.registerDirect('plain')
    await lab.registerDirect('promoted')
    ;[rvk] = await lab.registerInvitedDirect(sys, [
      ['rvk', 'system_admin'],
      ['sys2', 'system_admin'],
    ])
    await lab.loginDirect(rvk!)
  }, 240_000)

  it('a refusal for the caller’s role is ERR_FORBIDDEN on stderr, exit 1, and the session stays', async () => {
    const users = await lab.run(reg, ['admin', 'users'])
    expectForbidden(users, 'admin users by a regular user')
    expect(users.error?.message).toBe('users needs the admin or system_admin role')
    expect(users.stdout).toBe('')
    const whoami = await lab.run(reg, ['whoami'])
    expectAllowed(whoami, 'whoami by reg after the refusal')
    expect(whoami.json).toMatchObject({ user: 'reg', role: 'regular_user' })
  })

  it('logged out: every command is refused with "not logged in"; logout itself is not an error', async () => {
    const home = lab.homeOf('out')
    await lab.loginDirect(account('plain'), { home })
    const logout = await lab.runIn(home, ['logout'])
    expectAllowed(logout, 'logout')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 1 })
    expect(await lab.savedSession(home)).toBeUndefined()
    for (const args of [['whoami'], ['admin', 'users']]) {
      const refused = await lab.runIn(home, args)
      expectForbidden(refused, `${args.join(' ')} logged out`)
      expect(refused.error?.message).toMatch(/^not logged in/)
    }
    expect((await lab.runIn(home, ['logout'])).json).toMatchObject({ event: 'logout', revoked: 0 })
  })

  it('revoked: admin revoke --user ends it; the client is refused and forgets it; its logout says revoked 0', async () => {
    const copy = lab.homeOf('rvk-copy')
    await copySessionInto(rvk.home, copy)
    const revoke = await lab.run(sys, ['admin', 'revoke', '--user', 'rvk'])
    expectAllowed(revoke, 'admin revoke --user rvk')
    expect(revoke.json).toMatchObject({ event: 'revoked', revoked: 1 })
    const whoami = await lab.run(rvk, ['whoami'])
    expectForbidden(whoami, 'whoami in a revoked session')
    expect(whoami.error?.message).toMatch(/session has ended/)
    expect(await lab.savedSession(rvk.home), 'an ended session is forgotten').toBeUndefined()
    const logout = await lab.runIn(copy, ['logout'])
    expectAllowed(logout, 'logout of a revoked session')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 0 })
    expect(await lab.savedSession(copy)).toBeUndefined()
  })
})

describe.runIf(hasOathtool)('each admin command: its arguments and its JSON', () => {
  it('users, invite, add', async () => {
    const users = await lab.run(sys, ['admin', 'users'])
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
    const add = await lab.run(sys, ['admin', 'add', 'newcomer', '--role', 'regular_user'])
    expectAllowed(add, 'admin add')
    expect(add.json).toMatchObject({ event: 'invite', role: 'regular_user', user: 'newcomer' })
  })

  it('sessions, sessions NAME, revoke --user', async () => {
    const all = await lab.run(sys, ['admin', 'sessions'])
    expectAllowed(all, 'admin sessions')
    expect(all.json!['event']).toBe('sessions')
    expect((all.json!['sessions'] as Array<{ user: string }>).map((s) => s.user)).toEqual(
      expect.arrayContaining(['sys', 'reg']),
    )
    const regs = await lab.run(sys, ['admin', 'sessions', 'reg'])
    expect((regs.json!['sessions'] as Array<{ user: string }>).map((s) => s.user)).toEqual(['reg'])
    const revoke = await lab.run(sys, ['admin', 'revoke', '--user', 'plain'])
    expect(revoke.json).toMatchObject({ event: 'revoked', revoked: 0 })
  })

  it('role, reset-2fa, unlock, remove (which wants --yes)', async () => {
    const role = await lab.run(sys, ['admin', 'role', 'promoted', 'admin'])
    expectAllowed(role, 'admin role')
    expect(role.json).toMatchObject({ event: 'role', user: 'promoted', role: 'admin', previous: 'regular_user' })
    const reset = await lab.run(sys, ['admin', 'reset-2fa', 'promoted'])
    expectAllowed(reset, 'admin reset-2fa')
    expect(reset.json).toMatchObject({ event: 'reset_2fa', user: 'promoted', revokedSessions: 0 })
    const unlock = await lab.run(sys, ['admin', 'unlock', 'promoted'])
    expect(unlock.json).toMatchObject({ event: 'unlock', user: 'promoted', wasLocked: false })
    const unconfirmed = await lab.run(sys, ['admin', 'remove', 'promoted'])
    expect(unconfirmed.code, describeResult(unconfirmed)).toBe(2)
    expect(unconfirmed.error?.code).toBe('ERR_USAGE')
    const remove = await lab.run(sys, ['admin', 'remove', 'promoted', '--yes'])
    expectAllowed(remove, 'admin remove')
    expect(remove.json).toMatchObject({ event: 'removed', user: 'promoted', revokedSessions: 0 })
    const after = await lab.run(sys, ['admin', 'users'])
    expect((after.json!['users'] as Array<{ user: string }>).map((u) => u.user)).not.toContain('promoted')
  })
})

// `passwd` and `reset-2fa` run on no saved session: each logs in afresh with the password and a
// code. So a caller may whatever their role and whatever became of their session: here a
// regular user, and a system_admin whose session was revoked (the other callers: one layer down).
describe.runIf(hasOathtool)('passwd and reset-2fa log in afresh', () => {
  it.concurrent.for([
    { caller: 'regular_user', name: 'reg' },
    { caller: 'revoked', name: 'rvk' },
  ])('$caller', async ({ caller, name }, { expect }) => {
    const who = account(name)
    const nextPassword = newPassword()
    const passwd = await lab.run(
      who,
      ['passwd', '--user', who.name, '--password-stdin', '--otp', lab.codeFor(who)],
      `${who.password}\n${nextPassword}\n`,
    )
    expect(passwd.code, `passwd by ${caller}: ${describeResult(passwd)}`).toBe(0)
    expect(passwd.json).toMatchObject({ event: 'password_changed', user: who.name })
    who.password = nextPassword

    const oldSecret = who.totpSecret
    const lastStep = who.lastStep
    const { result } = await lab.enrolThrough(who, who.home, [
      'reset-2fa',
      '--user',
      who.name,
      '--password-stdin',
      '--otp',
      lab.codeFor(who),
    ])
    expect(result.code, `reset-2fa by ${caller}: ${describeResult(result)}`).toBe(0)
    expect(result.json).toMatchObject({ event: 'totp_reset', user: who.name })
    expect(who.totpSecret).not.toBe(oldSecret)
    // The step the reset's own login used stays spent (enrolThrough counts from the enrolment's).
    who.lastStep = Math.max(who.lastStep, lastStep)

    // Both logins saved a session: the caller is logged in again, in their own role.
    const whoami = await lab.run(who, ['whoami'])
    expect(whoami.code, `whoami by ${caller} after passwd: ${describeResult(whoami)}`).toBe(0)
    expect(whoami.json).toMatchObject({ user: who.name, role: name === 'reg' ? 'regular_user' : 'system_admin' })
  })
})

describe.runIf(hasOathtool)('with two system_admins', () => {
  it('sys may remove itself; its session ends with it', async () => {
    const result = await lab.run(sys, ['admin', 'remove', 'sys', '--yes'])
    expectAllowed(result, 'admin remove sys (other system_admins exist)')
    expect(result.json).toMatchObject({ event: 'removed', user: 'sys', revokedSessions: 1 })
    expectForbidden(await lab.run(sys, ['whoami']), 'whoami by the removed sys')
  })
})
