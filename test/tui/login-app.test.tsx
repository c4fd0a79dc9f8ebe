import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { renderInTerminal, type, until, settle } from './typing.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { LoginApp, type LoginOutcome } from '../../src/tui/LoginApp.js'
import { formatTime } from '../../src/tui/format.js'
import { groupSecret } from '../../src/tui/group-secret.js'
import { FakeClient, NEW_RECOVERY_CODES, RECOVERY_CODES, SECRET, URI } from './fake-client.js'

afterEach(cleanup)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** One key, once the screen that should take it has had time to attach its input handler. */
async function press(app: ReturnType<typeof render>, key: string) {
  await sleep(100)
  app.stdin.write(key)
}

async function start(client: FakeClient) {
  const done: LoginOutcome[] = []
  const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} />)
  await until(() => expect(app.lastFrame()).toContain('user name'))
  return { app, done }
}

describe('LoginApp', () => {
  it('signs in with password and code, then opens home with user, role and expiry until the person quits', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined // already known: no prompt
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('signed in as alice (regular_user) on 127.0.0.1:7443'))
    // The idle expiry (30 min) is the earlier one: local time and minutes left.
    expect(app.lastFrame()).toContain(`session ends ${formatTime(client.loginResult!.idleExpiresAt)} (in 30 min)`)
    expect(done).toEqual([])
    await press(app, 'q')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toEqual(client.loginResult)
    expect(client.calls).not.toContain('logout')
  })

  it('after an admin reset the 2FA, shows the new QR code and finishes the login with a code from the new authenticator', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    client.resetEnrolment = { user: 'alice', otpauthUri: URI, secret: SECRET }
    const done: LoginOutcome[] = []
    const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} columns={120} rows={50} />)
    await until(() => expect(app.lastFrame()).toContain('user name'))
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('an administrator reset your 2FA'))
    await until(() => expect(app.lastFrame()).toMatch(/[▀█▄]{10}/))
    expect(app.lastFrame()).toContain(groupSecret(SECRET))
    expect(app.lastFrame()).toContain('6-digit code from the new authenticator')
    await type(app, client.newOtp)
    await until(() => expect(app.lastFrame()).toContain('signed in as alice'))
    expect(client.calls).toContain(`submitOtp ${client.newOtp}`)
    expect(client.resetEnrolment).toBeUndefined()
  })

  it('logs out from home: client.logout, then onDone with the login result', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('log out'))
    await press(app, 'l')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toEqual(client.loginResult)
    expect(client.calls).toContain('logout')
  })

  it('shows a failure as the generic message with its hint, then lets the person try again', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'wrong password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('error: authentication failed (ERR_AUTH_FAILED)'))
    expect(app.lastFrame()).toContain("hint: check the user name, the password, and this machine's clock")
    expect(app.lastFrame()).toContain('enter: try again')
    expect(app.lastFrame()).not.toContain('wrong password')
    await settle()
    app.stdin.write('\r')
    await until(() => expect(app.lastFrame()).toContain('user name: alice'))
    // The name is kept; edit it once so the keystroke shows the field is listening, then submit.
    await settle()
    app.stdin.write('\u007f')
    await until(() => expect(app.lastFrame()).toMatch(/user name: alic(?!e)/))
    await type(app, 'e', 'user name: alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('signed in as alice'))
    expect(done).toEqual([])
    expect(client.calls.filter((call) => call !== 'whoami')).toEqual([
      'connect',
      'startLogin alice',
      'startLogin alice',
      'submitOtp 654321',
    ])
  })

  it('takes a recovery code in the code field, typed loosely, and says how many are left', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
    await type(app, 'FAKE0 CAFE0', 'FAKE0CAFE0')
    await until(() => expect(app.lastFrame()).toContain('recovery code used: 2 left'))
    expect(client.calls.filter((call) => call !== 'whoami')).toEqual([
      'connect',
      'startLogin alice',
      `submitRecoveryCode ${RECOVERY_CODES[0]}`,
    ])
    expect(done).toEqual([])
  })

  it('with renewRecoveryCodes, logs in with a TOTP code and shows ten new codes', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const done: LoginOutcome[] = []
    const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} renewRecoveryCodes />)
    await until(() => expect(app.lastFrame()).toContain('user name'))
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    expect(app.lastFrame()).not.toContain('recovery code)')
    await type(app, '654321')
    await until(() => expect(done).toHaveLength(1))
    expect(client.calls).toEqual(['connect', 'startLogin alice', 'submitOtp 654321', 'renewRecoveryCodes'])
    for (const code of NEW_RECOVERY_CODES) expect(app.lastFrame()).toContain(code)
  })

  it('gives up on escape after a failure', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'wrong password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('ERR_AUTH_FAILED'))
    await settle()
    app.stdin.write('\u001b')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toMatchObject({ error: { code: 'ERR_AUTH_FAILED' } })
  })

  it('checks the user name at the name step, saying what is wrong, before asking for the password', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app } = await start(client)
    await type(app, 'bad name')
    await until(() => expect(app.lastFrame()).toContain('a user name cannot contain a space (ERR_INVALID_USERNAME)'))
    expect(app.lastFrame()).toContain('hint: user names are 1 to 64 characters of a-z, 0-9, dot, underscore and hyphen')
    expect(app.lastFrame()).toContain('user name: bad name')
    expect(app.lastFrame()).not.toContain('password')
    expect(client.calls).toEqual(['connect'])
  })

  it('asks only for the code again after a wrong one: the password is not typed twice', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '111111')
    await until(() => expect(app.lastFrame()).toContain('error: authentication failed (ERR_AUTH_FAILED)'))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    const frame = app.lastFrame()!
    expect(frame).toContain('hint: the password was right, the code was not')
    expect(frame).not.toContain('password:')
    expect(frame).not.toContain('user name')
    // The field is empty and listening: the right code goes straight in.
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('signed in as alice'))
    expect(done).toEqual([])
    expect(client.calls.filter((call) => call !== 'whoami')).toEqual([
      'connect',
      'startLogin alice',
      'submitOtp 111111',
      'startLoginAgain',
      'submitOtp 654321',
    ])
  })

  it('says a code works once when the one typed was already used, and does not blame the clock', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    client.usedCodes.add(client.otp)
    const { app } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, client.otp)
    await until(() => expect(app.lastFrame()).toMatch(/a code works once: wait for the next one \(in \d+ s\)/))
    expect(app.lastFrame()).not.toContain('clock')
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
  })

  it('after a wrong recovery code, asks for a code again in place', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
    await type(app, 'zzzzz-zzzzz')
    await until(() => expect(app.lastFrame()).toContain('that recovery code is wrong or already used'))
    await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
    await type(app, RECOVERY_CODES[0]!)
    await until(() => expect(app.lastFrame()).toContain('recovery code used: 2 left'))
    expect(client.calls.filter((call) => call.startsWith('start'))).toEqual(['startLogin alice', 'startLoginAgain'])
  })

  it('goes back to the name when the password no longer proves (locked meanwhile)', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    client.lockOnRetry = true
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '111111')
    await until(() => expect(app.lastFrame()).toContain('enter: try again'))
    expect(app.lastFrame()).toContain("hint: check the user name, the password, and this machine's clock")
    await settle()
    app.stdin.write('\r')
    await until(() => expect(app.lastFrame()).toContain('user name: alice'))
    expect(done).toEqual([])
  })

  it('after an admin reset, a wrong code from the new authenticator shows the new QR code of the next try', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    client.resetEnrolment = { user: 'alice', otpauthUri: URI, secret: SECRET }
    const app = render(<LoginApp client={client} onDone={() => {}} columns={120} rows={50} />)
    await until(() => expect(app.lastFrame()).toContain('user name'))
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain(groupSecret(SECRET)))
    await type(app, '999999')
    await until(() => expect(app.lastFrame()).toContain('each try makes a new secret'))
    await until(() => expect(app.lastFrame()).toContain(groupSecret(client.resetEnrolment!.secret)))
    expect(client.resetEnrolment!.secret).not.toBe(SECRET)
    expect(app.lastFrame()).not.toContain('password:')
    await type(app, client.newOtp)
    await until(() => expect(app.lastFrame()).toContain('signed in as alice'))
  })

  it('asks about a new server before anything else', async () => {
    const client = new FakeClient()
    const done: LoginOutcome[] = []
    const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} />)
    await until(() => expect(app.lastFrame()).toContain('trust it and remember it? (y/N)'))
    await settle()
    app.stdin.write('y')
    await until(() => expect(app.lastFrame()).toContain('user name'))
    expect(client.trusted).toBe(true)
  })
})

const ENTER_ALTERNATE = '\u001b[?1049h'
const LEAVE_ALTERNATE = '\u001b[?1049l'

describe('LoginApp at the edges of a run', () => {
  const FINGERPRINT = Array.from({ length: 32 }, (_, i) =>
    ((i * 37 + 11) % 256).toString(16).toUpperCase().padStart(2, '0'),
  ).join(':')
  const SPINNER = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/

  async function toHome(app: ReturnType<typeof render>) {
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
  }

  it('says the server went away, and to start over, when the connection closes at the code prompt', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    client.submitOtp = async () => {
      throw new SecureLoginError('ERR_CONNECT', `connection to ${client.server} closed`)
    }
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toMatchObject({ error: { code: 'ERR_CONNECT' } })
    const screen = app.lastFrame()!.replace(/\s+/g, ' ')
    expect(screen).toContain('error: connection to 127.0.0.1:7443 closed (ERR_CONNECT)')
    expect(screen).toContain(
      'hint: the server went away (stopped or restarted?) or the network dropped: once it is back, start over',
    )
  })

  it('ends a logout with a plain line, not a spinner frozen mid-turn', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const { app, done } = await start(client)
    await toHome(app)
    await until(() => expect(app.lastFrame()).toContain('log out'))
    await sleep(100)
    app.stdin.write('l')
    await until(() => expect(done).toHaveLength(1))
    await until(() => expect(app.lastFrame()).toContain('logged out'))
    expect(app.lastFrame()).not.toMatch(SPINNER)
    expect(app.lastFrame()).not.toContain('logging out')
  })

  it('prints the fingerprint in whole bytes at 80 columns: two lines of 16', async () => {
    const client = new FakeClient()
    client.fingerprint = FINGERPRINT
    const term = renderInTerminal(<LoginApp client={client} onDone={() => {}} />, { columns: 80, debug: true })
    await until(() => expect(term.lastFrame()).toContain('(y/N)'))
    const bytes = FINGERPRINT.split(':')
    const lines = term.lastFrame().split('\n')
    expect(lines).toContain(`  ${bytes.slice(0, 16).join(':')}:`)
    expect(lines).toContain(`  ${bytes.slice(16).join(':')}`)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80)
    term.instance.unmount()
  })

  it('answers no when the trust prompt goes away on Ctrl-C, so the connection asking closes', async () => {
    const client = new FakeClient()
    client.fingerprint = FINGERPRINT
    const term = renderInTerminal(<LoginApp client={client} onDone={() => {}} />)
    await until(() => expect(term.output()).toContain('(y/N)'))
    await sleep(100)
    term.stdin.write('\u0003')
    await term.instance.waitUntilExit()
    await until(() => expect(client.trusted).toBe(false))
    expect(client.closed).toBeGreaterThan(0)
  })

  // Login is a prompt and stays inline; home is full-screen and gives the terminal back.
  it('opens home on the alternate screen and leaves it on quit, the last line drawn in the shell', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const done: LoginOutcome[] = []
    const term = renderInTerminal(<LoginApp client={client} onDone={(r) => done.push(r)} />)
    const app = { stdin: term.stdin, lastFrame: term.output } as unknown as ReturnType<typeof render>
    await until(() => expect(term.output()).toContain('user name'))
    await toHome(app)
    await until(() => expect(term.output()).toContain(ENTER_ALTERNATE))
    const before = term.output().split(ENTER_ALTERNATE)[0]!
    expect(before).toContain('6-digit code')
    await until(() => expect(term.output().split(ENTER_ALTERNATE).at(-1)).toContain('log out'))
    await sleep(100)
    term.stdin.write('q')
    await until(() => expect(done).toHaveLength(1))
    term.instance.unmount()
    const out = term.output()
    expect(out.lastIndexOf(LEAVE_ALTERNATE)).toBeGreaterThan(out.lastIndexOf(ENTER_ALTERNATE))
    expect(out.slice(out.lastIndexOf(LEAVE_ALTERNATE))).toContain('bye: the session stays saved')
  })

  it('gives the terminal back on Ctrl-C at home', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined
    const term = renderInTerminal(<LoginApp client={client} onDone={() => {}} />)
    const app = { stdin: term.stdin, lastFrame: term.output } as unknown as ReturnType<typeof render>
    await until(() => expect(term.output()).toContain('user name'))
    await toHome(app)
    await until(() => expect(term.output().split(ENTER_ALTERNATE).at(-1)).toContain('log out'))
    await sleep(100)
    term.stdin.write('\u0003')
    await term.instance.waitUntilExit()
    const out = term.output()
    expect(out.lastIndexOf(LEAVE_ALTERNATE)).toBeGreaterThan(out.lastIndexOf(ENTER_ALTERNATE))
  })
})
