import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { type, until } from './typing.js'
import { HomeApp, type HomeOutcome } from '../../src/tui/HomeApp.js'
import type { LoginResult } from '../../src/tui/types.js'
import { formatTime } from '../../src/tui/format.js'
import { groupSecret } from '../../src/tui/group-secret.js'
import { FakeClient, NEW_RECOVERY_CODES, RECOVERY_CODES, SECRET } from './fake-client.js'

afterEach(cleanup)

type App = ReturnType<typeof render>
const UP = '\u001B[A'
const DOWN = '\u001B[B'
const ESC = '\u001B'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** One key, once the screen that should take it has had time to attach its input handler. */
async function press(app: App, key: string) {
  await sleep(100)
  app.stdin.write(key)
}

async function startHome(client: FakeClient, result?: LoginResult) {
  const login = result ?? (await client.resumeSession())
  const done: HomeOutcome[] = []
  const app = render(
    <HomeApp client={client} result={login} onDone={(outcome) => done.push(outcome)} columns={120} rows={50} />,
  )
  await until(() => expect(app.lastFrame()).toContain('signed in as'))
  return { app, done, login }
}

describe('HomeApp', () => {
  it("shows who is signed in, when the session ends, and a regular user's menu without admin entries", async () => {
    const client = new FakeClient()
    const { app, login } = await startHome(client)
    const frame = app.lastFrame()!
    expect(frame).toContain('signed in as alice (regular_user) on 127.0.0.1:7443')
    expect(frame).toContain(`session ends ${formatTime(login.idleExpiresAt)} (in 30 min)`)
    for (const entry of [
      '[p] change password',
      '[t] reset 2FA',
      '[c] recovery codes',
      '[s] sessions',
      '[l] log out',
      '[q] quit',
    ])
      expect(frame).toContain(entry)
    for (const entry of ['[u] users', '[a] audit log', '[i] invite']) expect(frame).not.toContain(entry)
    expect(frame).toContain('↑/↓: move')
  })

  it('shows a notice the server left for the session: the authenticator replaced with a recovery code', async () => {
    const client = new FakeClient()
    client.pendingNotice = {
      event: 'totp_reset_with_recovery_code',
      at: '2026-12-05T10:00:00.000Z',
      address: '127.0.0.9',
      renewalHeldUntil: '2026-12-06T10:00:00.000Z',
      message: 'if it was not you, log in with a recovery code and reset your 2FA',
    }
    const { app } = await startHome(client)
    await until(() => expect(app.lastFrame()).toContain('your authenticator was replaced'))
    const frame = app.lastFrame()!
    expect(frame).toContain('from 127.0.0.9, with a recovery code')
    expect(frame).toContain(`recovery codes cannot be renewed until ${formatTime('2026-12-06T10:00:00.000Z')}`)
    expect(frame).toContain('if it was not you')
  })

  it('opens on the screen it is started at (securelogin passwd at a terminal), and Esc goes to the menu', async () => {
    const client = new FakeClient()
    const login = await client.resumeSession()
    const app = render(
      <HomeApp client={client} result={login} onDone={() => {}} columns={120} rows={50} start="password" />,
    )
    await until(() => expect(app.lastFrame()).toContain('current password'))
    expect(app.lastFrame()).not.toContain('[q] quit')
    await press(app, ESC)
    await until(() => expect(app.lastFrame()).toContain('[q] quit'))
  })

  it('shows an admin the users, audit log and invite entries too', async () => {
    const client = new FakeClient()
    client.role = 'admin'
    const { app } = await startHome(client)
    await until(() => expect(app.lastFrame()).toContain('(admin)'))
    for (const entry of ['[u] users', '[a] audit log', '[i] invite']) expect(app.lastFrame()).toContain(entry)
  })

  it('moves through the menu with arrows, opens with enter, comes back with esc, and opens directly by letter', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    expect(app.lastFrame()).toContain('❯ [p] change password')
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ [t] reset 2FA'))
    await press(app, UP)
    await until(() => expect(app.lastFrame()).toContain('❯ [p] change password'))
    await press(app, UP) // wraps to the last entry
    await until(() => expect(app.lastFrame()).toContain('❯ [q] quit'))
    await press(app, DOWN)
    await press(app, DOWN)
    await press(app, DOWN)
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ [s] sessions'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('your sessions'))
    await press(app, ESC)
    // Back home, on the entry last opened.
    await until(() => expect(app.lastFrame()).toContain('❯ [s] sessions'))
    await press(app, 'p')
    await until(() => expect(app.lastFrame()).toContain('current password:'))
    expect(app.lastFrame()).toContain('esc: back')
  })

  it('changes the password: a mismatch is refused here, success says how many other sessions ended, no password is drawn', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 'p')
    await until(() => expect(app.lastFrame()).toContain('current password:'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('new password:'))
    await type(app, 'violet tram sunrise', '*'.repeat(19))
    await until(() => expect(app.lastFrame()).toContain('new password again:'))
    await type(app, 'violet tram sunrisf', '*'.repeat(19))
    await until(() => expect(app.lastFrame()).toContain('the new passwords do not match'))
    expect(app.lastFrame()).toContain('new password:')
    expect(client.calls.some((call) => call.startsWith('changePassword'))).toBe(false)
    await type(app, 'violet tram sunrise', '*'.repeat(19))
    await until(() => expect(app.lastFrame()).toContain('new password again:'))
    await type(app, 'violet tram sunrise', '*'.repeat(19))
    await until(() => expect(app.lastFrame()).toContain('password changed; 2 other sessions revoked'))
    expect(client.calls).toContain('changePassword 654321 19')
    expect(client.loginPassword).toBe('violet tram sunrise')
    const everything = app.frames.join('\n')
    for (const secret of ['right password', 'violet tram', 'sunrisf']) expect(everything).not.toContain(secret)
  })

  it('refuses a new password the policy rejects before asking for it again', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 'p')
    await until(() => expect(app.lastFrame()).toContain('current password:'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toContain('new password:'))
    await type(app, 'alice in wonderland', '*'.repeat(19))
    await until(() => expect(app.lastFrame()).toContain('ERR_WEAK_PASSWORD'))
    expect(app.lastFrame()).toContain('new password:')
    expect(app.lastFrame()).not.toContain('new password again')
  })

  it('lists own sessions with this one marked; r revokes the selected one and o all others, each after y, n cancels', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 's')
    await until(() => expect(app.lastFrame()).toContain('bead0002'))
    let frame = app.lastFrame()!
    expect(frame).toMatch(/❯ c0ffee01.*this session/)
    expect(frame).toContain('dad00003')
    expect(frame).toContain('r: revoke selected')
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('that is this session'))
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ bead0002'))
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('revoke session bead0002 from 10.0.0.7? (y/n)'))
    await press(app, 'n')
    await until(() => expect(app.lastFrame()).not.toContain('(y/n)'))
    expect(client.calls.some((call) => call.startsWith('revokeSession'))).toBe(false)
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('(y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('revoked 1 session'))
    await until(() => expect(app.lastFrame()).not.toContain('bead0002'))
    expect(client.calls).toContain(`revokeSession ${'bead0002'.padEnd(32, '0')}`)
    await press(app, 'o')
    await until(() => expect(app.lastFrame()).toContain('revoke your 1 other session? (y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).not.toContain('dad00003'))
    frame = app.lastFrame()!
    expect(frame).toContain('revoked 1 session')
    expect(frame).toContain('this session')
    expect(client.calls).toContain('revokeOtherSessions')
  })

  it('logs out: client.logout, then ends', async () => {
    const client = new FakeClient()
    const { app, done } = await startHome(client)
    await press(app, 'l')
    await until(() => expect(done).toEqual([{ user: 'alice', loggedOut: true }]))
    expect(client.calls).toContain('logout')
  })

  it('quits without logging out: the session stays saved', async () => {
    const client = new FakeClient()
    const { app, done } = await startHome(client)
    await press(app, 'q')
    await until(() => expect(done).toEqual([{ user: 'alice', loggedOut: false }]))
    expect(client.calls).not.toContain('logout')
    expect(app.lastFrame()).toContain('the session stays saved')
  })

  it('resets 2FA: password and code, the new QR code, a wrong code retyped, then confirmed', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 't')
    await until(() => expect(app.lastFrame()).toContain('password:'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
    await type(app, '654321')
    await until(() => expect(app.lastFrame()).toMatch(/[▀█▄]{10}/))
    expect(app.lastFrame()).toContain(groupSecret(SECRET))
    await type(app, '111111')
    await until(() => expect(app.lastFrame()).toContain('ERR_ENROL_CODE'))
    await type(app, '123456')
    await until(() => expect(app.lastFrame()).toContain('new authenticator enrolled'))
    expect(client.calls.filter((call) => /Totp/.test(call))).toEqual([
      'startTotpReset 654321',
      'confirmTotpReset 111111',
      'confirmTotpReset 123456',
    ])
    expect(app.frames.join('\n')).not.toContain('right password')
  })

  it('resets 2FA with a recovery code in place of the lost authenticator', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 't')
    await until(() => expect(app.lastFrame()).toContain('password:'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
    await type(app, 'FAKE0 CAFE0', 'FAKE0CAFE0')
    await until(() => expect(app.lastFrame()).toContain('6-digit code from the new authenticator'))
    expect(client.calls).toContain(`startTotpReset ${RECOVERY_CODES[0]}`)
  })

  it('makes ten new recovery codes after y', async () => {
    const client = new FakeClient()
    const { app } = await startHome(client)
    await press(app, 'c')
    await until(() => expect(app.lastFrame()).toContain('replace all your recovery codes with ten new ones? (y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain(NEW_RECOVERY_CODES[9]))
    for (const code of NEW_RECOVERY_CODES) expect(app.lastFrame()).toContain(code)
  })

  it("shows the server's ERR_FORBIDDEN when recovery codes are asked for after a recovery-code login", async () => {
    const client = new FakeClient()
    await client.startLogin('alice', client.loginPassword)
    const { app } = await startHome(client, await client.submitRecoveryCode(RECOVERY_CODES[0]!))
    expect(app.lastFrame()).toContain('recovery code used: 2 left')
    await press(app, 'c')
    await until(() => expect(app.lastFrame()).toContain('(y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('(ERR_FORBIDDEN)'))
    expect(app.lastFrame()).toContain('new recovery codes need a login with a TOTP code')
    await press(app, ESC)
    await until(() => expect(app.lastFrame()).toContain('signed in as'))
  })
})
