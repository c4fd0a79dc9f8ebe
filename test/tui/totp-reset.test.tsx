import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { type, until } from './typing.js'
import { TotpReset } from '../../src/tui/TotpReset.js'
import { FakeClient, RECOVERY_CODES } from './fake-client.js'

afterEach(cleanup)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const ESC = '\u001b'

async function toQr(client: FakeClient, code: string) {
  let back = 0
  const app = render(<TotpReset client={client} onBack={() => (back += 1)} columns={120} rows={50} />)
  await until(() => expect(app.lastFrame()).toContain('password:'))
  await type(app, 'right password', '*'.repeat(14))
  await until(() => expect(app.lastFrame()).toContain('(or a recovery code)'))
  expect(app.lastFrame()).toContain('a recovery code is spent here, even if you leave before the new one is set up')
  await type(app, code)
  await until(() => expect(app.lastFrame()).toContain('6-digit code from the new authenticator'))
  return { app, backs: () => back }
}

describe('TotpReset: Esc on the new QR code', () => {
  it('after a recovery code, asks first and says the code stays spent; n goes back to the QR code', async () => {
    const client = new FakeClient()
    const { app, backs } = await toQr(client, RECOVERY_CODES[0]!)
    expect(app.lastFrame()).toContain('recovery code used: 9 left; it stays spent whether or not you finish here')
    await sleep(100)
    app.stdin.write(ESC)
    await until(() => expect(app.lastFrame()).toContain('leave without the new authenticator?'))
    expect(app.lastFrame()).toContain('the recovery code you used stays spent')
    expect(app.lastFrame()).toContain('your old authenticator keeps working')
    expect(backs()).toBe(0)
    await sleep(100)
    app.stdin.write('n')
    await until(() => expect(app.lastFrame()).toContain('6-digit code from the new authenticator'))
    expect(backs()).toBe(0)
    await sleep(100)
    app.stdin.write(ESC)
    await until(() => expect(app.lastFrame()).toContain('leave without the new authenticator?'))
    await sleep(100)
    app.stdin.write('y')
    await until(() => expect(backs()).toBe(1))
    expect(client.calls.filter((call) => call.startsWith('confirmTotpReset'))).toEqual([])
  })

  it('after a TOTP code, asks first and says the old authenticator keeps working', async () => {
    const client = new FakeClient()
    const { app, backs } = await toQr(client, client.otp)
    expect(app.lastFrame()).not.toContain('recovery code used')
    await sleep(100)
    app.stdin.write(ESC)
    await until(() => expect(app.lastFrame()).toContain('leave without the new authenticator?'))
    expect(app.lastFrame()).toContain("your old authenticator keeps working; this QR code's entry will not")
    await sleep(100)
    app.stdin.write('y')
    await until(() => expect(backs()).toBe(1))
  })

  it('leaves at once on Esc before anything is spent', async () => {
    const client = new FakeClient()
    let back = 0
    const app = render(<TotpReset client={client} onBack={() => (back += 1)} />)
    await until(() => expect(app.lastFrame()).toContain('password:'))
    await sleep(100)
    app.stdin.write(ESC)
    await until(() => expect(back).toBe(1))
    expect(client.calls).toEqual([])
  })
})
