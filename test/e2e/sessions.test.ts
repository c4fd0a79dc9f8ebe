import { copyFile, mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, newPassword, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Sessions and self-service through the real server process and the real CLI (issue 6,
// "Sessions"): what the client adds to the server's sessions. The saved session (its file, a new
// login revoking the one it replaces, an ended one forgotten), --session-idle and --session-max,
// logout, `sessions` with id prefixes, `passwd`, `reset-2fa --recovery-code`, the login that
// enrols after `admin reset-2fa`. What the server decides (expiry, revoking,
// password and authenticator changes, lockout, the audit entries): test/conversation/sessions.test.ts.

const hasOathtool = requireTool('oathtool')
const MINUTE = 60_000
const TOKEN = /^sls_[A-Za-z0-9_-]{43}$/

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('sessions', {
    serverArgs: ['--registration', 'open', '--session-idle', '5m', '--session-max', '20m'],
  })
  if (!hasOathtool) return
  // Through the client library in this process: the CLI's register is test/e2e/register-login.test.ts's.
  root = await lab.registerDirect('root', { invite: await lab.bootstrapToken() })
  sam = await lab.registerDirect('sam')
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

function expectOk(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
  expect(result.error, what).toBeUndefined()
}

function expectCode(result: CliResult, code: string, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(code === 'ERR_USAGE' ? 2 : 1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe(code)
}

/** A client home of sam's with a fresh login through the CLI in it. */
async function samLoggedIn(name: string): Promise<string> {
  const home = lab.homeOf(name)
  const login = await lab.mustLogin(sam, { home })
  expect(login.json).toMatchObject({ event: 'login', user: 'sam', role: 'regular_user' })
  return home
}

/** A client home of sam's with a session saved as `securelogin login` saves it (made in this process). */
async function samSession(name: string): Promise<string> {
  const home = lab.homeOf(name)
  await lab.loginDirect(sam, { home })
  return home
}

const whoami = (home: string) => lab.runIn(home, ['whoami'])

async function copySession(home: string, copy: string): Promise<void> {
  await mkdir(dirname(lab.sessionFile(copy)), { recursive: true, mode: 0o700 })
  await copyFile(lab.sessionFile(home), lab.sessionFile(copy))
}

describe.runIf(hasOathtool)('the saved session', () => {
  it('a login saves a fresh 256-bit token in a 0600 file in a 0700 directory; every login gets a new one', async () => {
    const [homeA, homeB] = [await samLoggedIn('a'), await samLoggedIn('b')]
    const [a, b] = [await lab.savedSession(homeA), await lab.savedSession(homeB)]
    for (const saved of [a!, b!]) {
      expect(saved).toMatchObject({
        server: `127.0.0.1:${lab.port}`,
        user: 'sam',
        role: 'regular_user',
        token: expect.stringMatching(TOKEN),
        sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      })
      // 32 random bytes behind the prefix.
      expect(Buffer.from(saved['token'].slice(4), 'base64url')).toHaveLength(32)
    }
    expect(a!['token']).not.toBe(b!['token'])
    expect(a!['sessionId']).not.toBe(b!['sessionId'])
    for (const home of [homeA, homeB]) {
      expect((await stat(lab.sessionFile(home))).mode & 0o777).toBe(0o600)
      expect((await stat(dirname(lab.sessionFile(home)))).mode & 0o777).toBe(0o700)
    }
  })

  it('a new login where a session is saved revokes the one it replaces: a copy of the old token no longer works', async () => {
    const home = await samLoggedIn('replaced')
    const copy = lab.homeOf('replaced-copy')
    await copySession(home, copy)
    expectOk(await whoami(copy), 'whoami with the copy, before')
    await samLoggedIn('replaced')
    expectCode(await whoami(copy), 'ERR_FORBIDDEN', 'whoami with the replaced token')
    expectOk(await whoami(home), 'whoami with the new one')
  })

  it('whoami says who and until when: --session-idle 5m and --session-max 20m are the server’s times', async () => {
    const home = await samSession('times')
    const result = await whoami(home)
    expectOk(result, 'whoami')
    expect(result.json).toMatchObject({
      event: 'whoami',
      user: 'sam',
      role: 'regular_user',
      server: `127.0.0.1:${lab.port}`,
    })
    const session = result.json!['session']
    expect(session).toMatchObject({
      id: (await lab.savedSession(home))!['sessionId'],
      current: true,
      address: '127.0.0.1',
    })
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(5 * MINUTE)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(20 * MINUTE)
  })

  it('an ended session is refused with the way out, and forgotten', async () => {
    const home = await samSession('idle')
    lab.clock.advance(5 * MINUTE + 1000)
    const ended = await whoami(home)
    expectCode(ended, 'ERR_FORBIDDEN', 'whoami after 5 idle minutes')
    expect(ended.error).toMatchObject({ message: expect.stringMatching(/session has ended/), hint: expect.any(String) })
    expect(await lab.savedSession(home), 'an ended session is forgotten').toBeUndefined()
    const none = await whoami(home)
    expectCode(none, 'ERR_FORBIDDEN', 'whoami with no saved session')
    expect(none.error?.message).toMatch(/^not logged in/)
  })

  it('logout revokes the session on the server and forgets it here; again, there is nothing to revoke', async () => {
    const home = await samSession('logout')
    const copy = lab.homeOf('logout-copy')
    await copySession(home, copy)
    const logout = await lab.runIn(home, ['logout'])
    expectOk(logout, 'logout')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 1 })
    expect(await lab.savedSession(home)).toBeUndefined()
    expectCode(await whoami(copy), 'ERR_FORBIDDEN', 'whoami with the copied token')
    expect((await lab.runIn(home, ['logout'])).json).toMatchObject({ event: 'logout', revoked: 0 })
  })
})

describe.runIf(hasOathtool)('sessions: list, and revoke by a prefix of the id', () => {
  it("lists sam's sessions, this one marked; revokes one by a prefix, then all others; an admin by a prefix", async () => {
    lab.clock.advance(21 * MINUTE) // every earlier session has ended
    const [f, g, h] = [await samSession('f'), await samSession('g'), await samSession('h')]
    const ids = await Promise.all([f, g, h].map(async (home) => (await lab.savedSession(home))!['sessionId'] as string))

    const list = await lab.runIn(f, ['sessions'])
    expectOk(list, 'sessions')
    expect(list.json!['event']).toBe('sessions')
    const listed = (list.json!['sessions'] as Array<{ id: string; current: boolean }>).map((s) => [s.id, s.current])
    expect(listed.sort()).toEqual(
      [
        [ids[0], true],
        [ids[1], false],
        [ids[2], false],
      ].sort(),
    )

    const one = await lab.runIn(f, ['sessions', '--revoke', ids[1]!.slice(0, 8)])
    expect(one.json).toMatchObject({ event: 'revoked', revoked: 1 })
    // The prefix named g's session, and only that one.
    expectCode(await whoami(g), 'ERR_FORBIDDEN', 'whoami in the revoked session')
    expectOk(await whoami(h), 'whoami in a session that was not named')

    const others = await lab.runIn(f, ['sessions', '--revoke-others'])
    expect(others.json).toMatchObject({ event: 'revoked', revoked: 1 })
    expectCode(await whoami(h), 'ERR_FORBIDDEN', 'whoami in an other session')

    expectCode(await lab.runIn(f, ['sessions', '--revoke', 'xyz']), 'ERR_USAGE', 'a malformed id')
    expectCode(await lab.runIn(f, ['sessions', '--revoke', '000000']), 'ERR_NOT_FOUND', 'an id that names no session')

    await lab.loginDirect(root)
    expect((await lab.run(root, ['admin', 'revoke', ids[0]!.slice(0, 10)])).json).toMatchObject({
      event: 'revoked',
      revoked: 1,
    })
    expectCode(await whoami(f), 'ERR_FORBIDDEN', 'whoami in the session the admin revoked')
  })
})

describe.runIf(hasOathtool)('passwd', () => {
  it('refuses a wrong current password and a weak new one, and changes nothing', async () => {
    const home = await samSession('passwd-refused')
    const wrong = await lab.runIn(
      home,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', lab.codeFor(sam)],
      `not sam's password 1\n${newPassword()}\n`,
    )
    expectCode(wrong, 'ERR_AUTH_FAILED', 'passwd with a wrong current password')
    // The weak password is refused before the login: no code is spent (so none is given).
    const weak = await lab.runIn(
      home,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', '000000'],
      `${sam.password}\npassword\n`,
    )
    expectCode(weak, 'ERR_WEAK_PASSWORD', 'passwd to "password"')
    expectOk(await whoami(home), 'the session after the refusals')
  })

  it('logs in with the current password and a code, sets the new one, saves its session and ends every other', async () => {
    const [i, j] = [await samSession('passwd-i'), await samSession('passwd-j')]
    const live = (await lab.runIn(j, ['sessions'])).json!['sessions'].length as number
    const nextPassword = newPassword()
    const changed = await lab.runIn(
      i,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', lab.codeFor(sam)],
      `${sam.password}\n${nextPassword}\n`,
    )
    expectOk(changed, 'passwd')
    // Its own login made a new session, saved in i (revoking the one it replaced there); every other one is revoked.
    expect(changed.json).toMatchObject({ event: 'password_changed', user: 'sam', revokedSessions: live - 1 })
    sam.password = nextPassword
    expectCode(await whoami(j), 'ERR_FORBIDDEN', 'whoami in another session after passwd')
    expectOk(await whoami(i), 'whoami in the session passwd saved')
  })
})

describe.runIf(hasOathtool)('reset-2fa', () => {
  it('with a recovery code in place of a lost authenticator; the code is spent', async () => {
    const recoveryCode = sam.recoveryCodes.shift()!
    const oldSecret = sam.totpSecret
    const lastStep = sam.lastStep
    const { result } = await lab.enrolThrough(sam, lab.homeOf('reset-recovery'), [
      'reset-2fa',
      '--user',
      'sam',
      '--password-stdin',
      '--recovery-code',
      recoveryCode,
    ])
    expectOk(result, 'reset-2fa --recovery-code')
    expect(result.json).toMatchObject({ event: 'totp_reset', user: 'sam' })
    expect(sam.totpSecret).not.toBe(oldSecret)
    // The steps sam's logins spent stay spent: enrolThrough counts from the enrolment's code.
    sam.lastStep = Math.max(sam.lastStep, lastStep)
    const again = await lab.runIn(
      lab.homeOf('reuse-recovery'),
      ['login', '--user', 'sam', '--password-stdin', '--recovery-code', recoveryCode],
      `${sam.password}\n`,
    )
    expectCode(again, 'ERR_AUTH_FAILED', 'the spent recovery code')
  })

  it("admin reset-2fa: sam's sessions end, and the next login enrols a new authenticator", async () => {
    const home = await samSession('before-admin-reset')
    await lab.loginDirect(root)
    const reset = await lab.run(root, ['admin', 'reset-2fa', 'sam'])
    expectOk(reset, 'admin reset-2fa sam')
    expect(reset.json).toMatchObject({ event: 'reset_2fa', user: 'sam', revokedSessions: expect.any(Number) })
    expect(reset.json!['revokedSessions']).toBeGreaterThanOrEqual(1)
    expectCode(await whoami(home), 'ERR_FORBIDDEN', "sam's session after the reset")

    // No --otp: the password is checked, then the enrol line, then the new authenticator's code.
    const oldSecret = sam.totpSecret
    const lastStep = sam.lastStep
    const { result } = await lab.enrolThrough(sam, home, ['login', '--user', 'sam', '--password-stdin'])
    sam.lastStep = Math.max(sam.lastStep, lastStep)
    expectOk(result, 'the login that enrols')
    expect(result.json).toMatchObject({ event: 'login', user: 'sam' })
    expect(sam.totpSecret).not.toBe(oldSecret)
    expectOk(await whoami(home), 'the session that login saved')
  })
})
