import { chmod, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resumeSession } from '../../src/client/login.js'
import type { CallArgs, CallOp, CallResult } from '../../src/protocol/calls.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, newPassword, type Account, type CliResult } from '../helpers/accounts.js'
import { noteSecret } from '../helpers/secrets.js'
import { requireTool } from '../helpers/tools.js'
import { storeKindAvailable } from '../helpers/store-kind.js'

// Sessions and self-service through the real server process and the real CLI (issue 6,
// "Sessions"): what the client adds to the server's sessions. The saved session (its file, a new
// login revoking the one it replaces, an ended one forgotten), --session-idle and --session-max,
// logout, `sessions` with id prefixes, `passwd`, `reset-2fa --recovery-code`, the login that
// enrols after `admin reset-2fa`. What the server decides (expiry, revoking,
// password and authenticator changes, lockout, the audit entries): test/conversation/sessions.test.ts.
//
// A CLI process costs about half a second of CPU, one that logs in about twice that. So each
// command runs through the real process (`admin revoke`: test/e2e/roles.test.ts), and its other
// inputs here (`logout` with nothing saved, `sessions --revoke-others`, a malformed or unknown
// id, `admin revoke` with an admin's prefix) go through the CLI's own main() in this process
// (cli()): the same parsing, handler, output and exit code, without the start-up. Whether a token
// still works on the server after a command (the revoked session, the others, the replaced one)
// is a session_resume in this process, as each command begins (src/client/session.ts). Sessions
// and calls that are only setup are made in this process too. `admin reset-2fa`'s output is
// test/e2e/roles.test.ts's.

// Once on each store kind (vitest.config.ts): skipped, with one line, without oathtool or the
// kind's server (PostgreSQL); under CI either fails instead.
const canRun = requireTool('oathtool') && (await storeKindAvailable())
const MINUTE = 60_000
const TOKEN = /^sls_[A-Za-z0-9_-]{43}$/

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('sessions', {
    serverArgs: ['--registration', 'open', '--session-idle', '5m', '--session-max', '20m'],
  })
  if (!canRun) return
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
  expect(result.stdout, `${what}: nothing on stdout`).toBe('')
}

/** A client home of sam's with a session saved as `securelogin login` saves it (made in this process). */
async function samSession(name: string): Promise<string> {
  const home = lab.homeOf(name)
  await lab.loginDirect(sam, { home })
  return home
}

const whoami = (home: string) => lab.runIn(home, ['whoami'])

/** The token of the session saved in `home` (noted: the CLI's own logins save tokens no helper notes). */
async function savedToken(home: string): Promise<string> {
  const token = (await lab.savedSession(home))!['token'] as string
  noteSecret('session token', token)
  return token
}

/** Whether the server still takes `token`: a session_resume in this process, as each command begins. */
async function resumes(token: string): Promise<boolean> {
  const conn = await lab.connect()
  try {
    await resumeSession(conn, token)
    return true
  } catch (error) {
    if (!(error instanceof SecureLoginError && error.code === 'ERR_FORBIDDEN')) throw error
    expect(error.message).toMatch(/session has ended/)
    return false
  } finally {
    conn.close()
  }
}

type Run = <Op extends CallOp>(op: Op, args: CallArgs<Op>) => Promise<CallResult<Op>>

/** Setup and probes as root, in this process, on a fresh login (an earlier one may have ended meanwhile). */
async function asRoot<T>(work: (run: Run) => Promise<T>): Promise<T> {
  await lab.loginDirect(root)
  return lab.asUser(root, work)
}

/** The CLI's main() in this process, as the client whose home is `home` (see the header). */
const cli = (home: string, args: string[]) => lab.runHere(home, args)

describe.runIf(canRun)('the saved session', () => {
  it('a login saves a fresh 256-bit token in a 0600 file in a 0700 directory, and revokes the session saved there before', async () => {
    const home = await samSession('a')
    const before = (await lab.savedSession(home))!
    expect(await resumes(before['token']), 'the session saved before the login').toBe(true)
    // Loosened, so that the modes checked below are the login's doing.
    await chmod(lab.sessionFile(home), 0o644)
    await chmod(dirname(lab.sessionFile(home)), 0o755)

    const login = await lab.mustLogin(sam, { home })
    const saved = (await lab.savedSession(home))!
    expect(login.json).toMatchObject({
      event: 'login',
      user: 'sam',
      role: 'regular_user',
      sessionId: saved['sessionId'],
    })
    expect(saved).toMatchObject({
      server: `127.0.0.1:${lab.port}`,
      user: 'sam',
      role: 'regular_user',
      token: expect.stringMatching(TOKEN),
      sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
    })
    // 32 random bytes behind the prefix.
    expect(Buffer.from(saved['token'].slice(4), 'base64url')).toHaveLength(32)
    expect((await stat(lab.sessionFile(home))).mode & 0o777).toBe(0o600)
    expect((await stat(dirname(lab.sessionFile(home)))).mode & 0o777).toBe(0o700)
    // A new token and session; the one it replaces is revoked on the server, not only forgotten here.
    expect(saved['token']).not.toBe(before['token'])
    expect(saved['sessionId']).not.toBe(before['sessionId'])
    expect(await resumes(before['token']), 'a copy of the replaced token').toBe(false)
  })

  it('whoami says who and until when: --session-idle 5m and --session-max 20m are the server’s times', async () => {
    // The session the login above saved.
    const home = lab.homeOf('a')
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
    // docs/cli-json.md: idleExpiresAt is the end if unused, expiresAt the absolute end.
    expect(Date.parse(session.idleExpiresAt) - Date.parse(session.lastSeenAt)).toBe(5 * MINUTE)
    expect(Date.parse(session.expiresAt) - Date.parse(session.createdAt)).toBe(20 * MINUTE)
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
    const token = await savedToken(home)
    const logout = await lab.runIn(home, ['logout'])
    expectOk(logout, 'logout')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 1 })
    expect(await lab.savedSession(home)).toBeUndefined()
    expect(await resumes(token), 'a copy of the token').toBe(false)
    const again = await cli(home, ['logout'])
    expectOk(again, 'logout with no saved session')
    expect(again.json).toMatchObject({ event: 'logout', revoked: 0 })
  })
})

describe.runIf(canRun)('sessions: list, and revoke by a prefix of the id', () => {
  it("lists sam's sessions, this one marked; revokes one by a prefix, then all others; an admin by a prefix", async () => {
    lab.clock.advance(21 * MINUTE) // every earlier session has ended
    const [f, g, h] = [await samSession('f'), await samSession('g'), await samSession('h')]
    const ids = await Promise.all([f, g, h].map(async (home) => (await lab.savedSession(home))!['sessionId'] as string))
    const [tf, tg, th] = [await savedToken(f), await savedToken(g), await savedToken(h)]

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
    expect(await resumes(tg), 'the revoked session').toBe(false)
    expect(await resumes(th), 'a session that was not named').toBe(true)

    // The command's other inputs, and `admin revoke` (run through the process by test/e2e/roles.test.ts)
    // with an admin's prefix, through main() in this process (see the header).
    const others = await cli(f, ['sessions', '--revoke-others'])
    expectOk(others, 'sessions --revoke-others')
    expect(others.json).toMatchObject({ event: 'revoked', revoked: 1 })
    expect(await resumes(th), 'an other session').toBe(false)

    expectCode(await cli(f, ['sessions', '--revoke', 'xyz']), 'ERR_USAGE', 'a malformed id')
    expectCode(await cli(f, ['sessions', '--revoke', '000000']), 'ERR_NOT_FOUND', 'an id that names no session')

    await lab.loginDirect(root)
    const admin = await cli(root.home, ['admin', 'revoke', ids[0]!.slice(0, 10)])
    expectOk(admin, 'admin revoke PREFIX')
    expect(admin.json).toMatchObject({ event: 'revoked', revoked: 1 })
    expect(await resumes(tf), 'the session the admin revoked').toBe(false)
  })
})

describe.runIf(canRun)('passwd', () => {
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
    expect(await resumes(await savedToken(home)), 'the session after the refusals').toBe(true)
  })

  it('logs in with the current password and a code, sets the new one, saves its session and ends every other', async () => {
    const [i, j] = [await samSession('passwd-i'), await samSession('passwd-j')]
    const [ti, tj] = [await savedToken(i), await savedToken(j)]
    const live = (await lab.asUser(j, (run) => run('sessions', {}))).sessions.length
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
    expect(await resumes(tj), 'another session after passwd').toBe(false)
    expect(await resumes(ti), 'the session passwd replaced').toBe(false)
    const saved = await savedToken(i)
    expect(saved).not.toBe(ti)
    expect(await resumes(saved), 'the session passwd saved').toBe(true)
  })
})

describe.runIf(canRun)('reset-2fa', () => {
  it('with a recovery code in place of a lost authenticator; the code is spent', async () => {
    const codesLeft = async () =>
      (await asRoot((run) => run('users', {}))).users.find((u) => u.user === 'sam')!.recoveryCodesLeft
    const left = await codesLeft()
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
    // The server spent that code (that a spent code is refused: test/conversation/sessions.test.ts).
    expect(await codesLeft()).toBe(left - 1)
  })

  it("admin reset-2fa: sam's sessions end, and the next login enrols a new authenticator", async () => {
    // The session the reset-2fa above saved. The reset is made in this process: the command's
    // output is test/e2e/roles.test.ts's.
    const home = lab.homeOf('reset-recovery')
    const before = await savedToken(home)
    expect(await resumes(before), "sam's session before the reset").toBe(true)
    const reset = await asRoot((run) => run('reset_2fa', { user: 'sam' }))
    expect(reset).toMatchObject({ user: 'sam' })
    expect(reset.revokedSessions).toBeGreaterThanOrEqual(1)
    expect(await resumes(before), "sam's session after the reset").toBe(false)

    // No --otp: the password is checked, then the enrol line, then the new authenticator's code.
    const oldSecret = sam.totpSecret
    const lastStep = sam.lastStep
    const { result } = await lab.enrolThrough(sam, home, ['login', '--user', 'sam', '--password-stdin'])
    sam.lastStep = Math.max(sam.lastStep, lastStep)
    expectOk(result, 'the login that enrols')
    expect(result.json).toMatchObject({ event: 'login', user: 'sam' })
    expect(sam.totpSecret).not.toBe(oldSecret)
    const saved = await savedToken(home)
    expect(saved).not.toBe(before)
    expect(await resumes(saved), 'the session that login saved').toBe(true)
  })
})
