import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { type, until, settle } from './typing.js'
import { RegisterApp, type RegisterResult } from '../../src/tui/RegisterApp.js'
import { QrCode } from '../../src/tui/QrCode.js'
import { groupSecret } from '../../src/tui/group-secret.js'
import { generateTotp } from '../../src/auth/totp.js'
import { RECOVERY_CODES, FakeClient, SECRET, URI } from './fake-client.js'

afterEach(cleanup)

async function startRegister(client: FakeClient, props: { columns?: number; rows?: number } = {}) {
  const done: RegisterResult[] = []
  const app = render(<RegisterApp client={client} onDone={(r) => done.push(r)} {...props} />)
  await until(() => expect(app.lastFrame()).toContain('(y/N)'))
  expect(app.lastFrame()).toContain('AA:BB:CC')
  await settle()
  app.stdin.write('y')
  await until(() => expect(app.lastFrame()).toContain('user name'))
  return { app, done }
}

async function typePasswords(app: ReturnType<typeof render>, first: string, second = first) {
  await until(() => expect(app.lastFrame()).toContain('password:'))
  await type(app, first, '*'.repeat(first.length))
  await until(() => expect(app.lastFrame()).toContain('repeat password'))
  await type(app, second, '*'.repeat(second.length))
}

describe('RegisterApp', () => {
  it('goes from trust prompt to registered, showing the QR code, the grouped secret and the URI', async () => {
    const client = new FakeClient()
    const { app, done } = await startRegister(client, { columns: 120, rows: 50 })
    await type(app, 'Alice')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('enter the 6-digit code'))
    await until(() => expect(app.lastFrame()).toMatch(/[▀█▄]/))
    const frame = app.lastFrame()!
    expect(frame).toContain(groupSecret(SECRET))
    // ink-testing-library draws 100 columns, so the URI wraps.
    expect(frame.replace(/\n/g, '')).toContain(URI)
    expect(frame).not.toContain('correct horse')
    await type(app, '123456')
    await until(() => expect(done).toEqual([{ user: 'alice' }]))
    expect(app.lastFrame()).toContain('registered alice')
    // The ten recovery codes, shown once, with what they are for.
    for (const code of RECOVERY_CODES) expect(app.lastFrame()).toContain(code)
    expect(app.lastFrame()).toContain('each works once in place of a code')
    expect(client.calls).toEqual(['connect', 'startRegistration alice 13', 'confirmEnrolment 123456'])
  })

  it('stops when the server is not trusted, without sending anything', async () => {
    const client = new FakeClient()
    const done: RegisterResult[] = []
    const app = render(<RegisterApp client={client} onDone={(r) => done.push(r)} />)
    await until(() => expect(app.lastFrame()).toContain('(y/N)'))
    await settle()
    app.stdin.write('n')
    await until(() => expect(done).toHaveLength(1))
    expect(done[0]).toMatchObject({ error: { code: 'ERR_TLS_UNTRUSTED' } })
    expect(app.lastFrame()).toContain('ERR_TLS_UNTRUSTED')
    expect(client.calls).toEqual(['connect'])
  })

  it('shows a weak password in place and asks again', async () => {
    const client = new FakeClient()
    const { app } = await startRegister(client)
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('password:'))
    await type(app, 'short', '*****')
    await until(() => expect(app.lastFrame()).toContain('ERR_WEAK_PASSWORD'))
    expect(app.lastFrame()).toContain('password:')
    expect(app.lastFrame()).not.toContain('short')
  })

  it('asks for both passwords again when they differ, as a mismatch, not a weak password', async () => {
    const client = new FakeClient()
    const { app } = await startRegister(client)
    await type(app, 'alice')
    await typePasswords(app, 'correct horse', 'correct house')
    await until(() => expect(app.lastFrame()).toContain('error: the passwords do not match (ERR_USAGE)'))
    expect(app.lastFrame()).toContain('hint: type the same password twice')
    expect(app.lastFrame()).not.toContain('ERR_WEAK_PASSWORD')
    expect(app.lastFrame()).toContain('password:')
    expect(client.calls).toEqual(['connect'])
  })

  it('refuses a bad user name in place, saying what is wrong with it', async () => {
    const client = new FakeClient()
    const { app } = await startRegister(client)
    await type(app, 'no spaces')
    await until(() => expect(app.lastFrame()).toContain('a user name cannot contain a space (ERR_INVALID_USERNAME)'))
    expect(app.lastFrame()).toContain('hint: user names are 1 to 64 characters of a-z, 0-9, dot, underscore and hyphen')
    expect(app.lastFrame()).toContain('user name')
    expect(app.lastFrame()).not.toContain('password')
  })

  it('says that user names are lower case when the name typed had capitals', async () => {
    const client = new FakeClient()
    const { app } = await startRegister(client)
    await type(app, 'Alice')
    await until(() => expect(app.lastFrame()).toContain('password:'))
    expect(app.lastFrame()).toContain('user names are lower case: registering as alice')
  })

  it('says after registering when the next code comes: the one just used is spent', async () => {
    const client = new FakeClient()
    const code = await generateTotp(SECRET, Date.now())
    client.enrolCodes = new Set([code])
    const { app, done } = await startRegister(client, { columns: 120, rows: 50 })
    await type(app, 'alice')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('enter the 6-digit code'))
    // Typed as the step turns, the code may be from the step just gone: then the next is showing.
    await type(app, code)
    await until(() => expect(done).toEqual([{ user: 'alice' }]))
    expect(app.lastFrame()).toMatch(
      /your next code appears in ([1-9]|[12][0-9]|30) s; codes are accepted once, so log in with that one|log in with the code your authenticator shows now/,
    )
  })

  it('names the user name an invite was made for, and asks only for the name again', async () => {
    const client = new FakeClient()
    client.invitedFor = 'bea'
    const { app, done } = await startRegister(client, { columns: 120, rows: 50 })
    await type(app, 'eve')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('error: this invite is for the user name bea (ERR_FORBIDDEN)'))
    // The invite's name is filled in; the password typed is kept, so Enter registers.
    expect(app.lastFrame()).toContain('user name: bea')
    expect(app.lastFrame()).toContain('the password you typed is kept')
    expect(app.lastFrame()).not.toContain('password:')
    await type(app, '', 'user name: bea')
    await until(() => expect(app.lastFrame()).toContain('enter the 6-digit code'))
    await type(app, '123456')
    await until(() => expect(done).toEqual([{ user: 'alice' }]))
    expect(client.calls).toEqual([
      'connect',
      'startRegistration eve 13',
      'startRegistration bea 13',
      'confirmEnrolment 123456',
    ])
  })

  it('asks for the password again when the kept one breaks the rules for the new name', async () => {
    const client = new FakeClient()
    client.invitedFor = 'horse'
    const { app } = await startRegister(client)
    await type(app, 'eve')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('this invite is for the user name horse'))
    await type(app, '', 'user name: horse')
    await until(() => expect(app.lastFrame()).toContain('the password contains the user name (ERR_WEAK_PASSWORD)'))
    expect(app.lastFrame()).toContain('password:')
    expect(client.calls).toEqual(['connect', 'startRegistration eve 13'])
  })

  it('lets the person retype a wrong enrolment code', async () => {
    const client = new FakeClient()
    const { app, done } = await startRegister(client, { columns: 120, rows: 50 })
    await type(app, 'alice')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('enter the 6-digit code'))
    await type(app, '111111')
    await until(() => expect(app.lastFrame()).toContain('ERR_ENROL_CODE'))
    expect(app.lastFrame()).toContain('clock')
    await type(app, '123456')
    await until(() => expect(done).toEqual([{ user: 'alice' }]))
  })

  it('asks for another name when the name is taken, keeping the password typed', async () => {
    const client = new FakeClient()
    const { app, done } = await startRegister(client, { columns: 120, rows: 50 })
    await type(app, 'taken')
    await typePasswords(app, 'correct horse')
    await until(() => expect(app.lastFrame()).toContain('ERR_USERNAME_TAKEN'))
    expect(app.lastFrame()).toContain('user name')
    expect(app.lastFrame()).toContain('the password you typed is kept')
    await type(app, 'alice')
    await until(() => expect(app.lastFrame()).toContain('enter the 6-digit code'))
    await type(app, '123456')
    await until(() => expect(done).toEqual([{ user: 'alice' }]))
    expect(client.calls).toEqual([
      'connect',
      'startRegistration taken 13',
      'startRegistration alice 13',
      'confirmEnrolment 123456',
    ])
  })
})

describe('QrCode', () => {
  it('draws the code when the terminal is wide enough', async () => {
    const app = render(<QrCode uri={URI} secret={SECRET} columns={120} rows={50} />)
    await until(() => expect(app.lastFrame()).toMatch(/[▀█▄]{10}/))
  })

  it('says how wide the terminal must be when it is too narrow, and still shows the secret and URI', async () => {
    const app = render(<QrCode uri={URI} secret={SECRET} columns={40} rows={50} />)
    await until(() => expect(app.lastFrame()).toMatch(/terminal too narrow for the QR code: need \d+ columns, have 40/))
    const frame = app.lastFrame()!
    expect(frame).not.toMatch(/[▀█▄]/)
    expect(frame).toContain(groupSecret(SECRET))
    expect(frame.replace(/\n/g, '')).toContain(URI)
  })

  it('says how tall the terminal must be when it is too short', async () => {
    const app = render(<QrCode uri={URI} secret={SECRET} columns={120} rows={20} />)
    await until(() => expect(app.lastFrame()).toMatch(/terminal too short for the QR code: need \d+ rows, have 20/))
  })
})

describe('groupSecret', () => {
  it.each([
    ['ABCDEFGH', 'ABCD EFGH'],
    ['ABCDEFGHIJ', 'ABCD EFGH IJ'],
    ['', ''],
  ])('%j -> %j', (input, expected) => {
    expect(groupSecret(input)).toBe(expected)
  })
})
