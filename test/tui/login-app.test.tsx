import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { type, until } from './typing.js'
import { LoginApp, type LoginOutcome } from '../../src/tui/LoginApp.js'
import { FakeClient, NEW_RECOVERY_CODES, RECOVERY_CODES } from './fake-client.js'

afterEach(cleanup)

async function start(client: FakeClient) {
  const done: LoginOutcome[] = []
  const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} />)
  await until(() => expect(app.lastFrame()).toContain('user name'))
  return { app, done }
}

describe('LoginApp', () => {
  it('signs in with password and code, then welcomes with role and expiry', async () => {
    const client = new FakeClient()
    client.fingerprint = undefined // already known: no prompt
    const { app, done } = await start(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toEqual({ user: 'alice', role: 'regular_user', expiresAt: '2026-11-25T00:00:00.000Z' })
    expect(app.lastFrame()).toContain('welcome alice (regular_user)')
    expect(app.lastFrame()).toContain('session expires at 2026-11-25T00:00:00.000Z')
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
    app.stdin.write('\r')
    await until(() => expect(app.lastFrame()).toContain('user name: alice'))
    // The name is kept; edit it once so the keystroke shows the field is listening, then submit.
    app.stdin.write('\u007f')
    await until(() => expect(app.lastFrame()).toMatch(/user name: alic(?!e)/))
    await type(app, 'e', 'user name: alice')
    await until(() => expect(app.lastFrame()).toContain('password'))
    await type(app, 'right password', '*'.repeat(14))
    await until(() => expect(app.lastFrame()).toContain('6-digit code'))
    await type(app, '654321')
    await until(() => expect(done).toHaveLength(1))
    expect(client.calls).toEqual(['connect', 'startLogin alice', 'startLogin alice', 'submitOtp 654321'])
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
    await until(() => expect(done).toHaveLength(1))
    expect(client.calls).toEqual(['connect', 'startLogin alice', `submitRecoveryCode ${RECOVERY_CODES[0]}`])
    expect(app.lastFrame()).toContain('recovery code used: 2 left')
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
    app.stdin.write('\u001b')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toMatchObject({ error: { code: 'ERR_AUTH_FAILED' } })
  })

  it('asks about a new server before anything else', async () => {
    const client = new FakeClient()
    const done: LoginOutcome[] = []
    const app = render(<LoginApp client={client} onDone={(r) => done.push(r)} />)
    await until(() => expect(app.lastFrame()).toContain('trust it and remember it? (y/N)'))
    app.stdin.write('y')
    await until(() => expect(app.lastFrame()).toContain('user name'))
    expect(client.trusted).toBe(true)
  })
})
