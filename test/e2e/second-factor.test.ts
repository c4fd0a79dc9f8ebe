import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recoveryCodesLeft } from '../../src/auth/recovery-codes.js'
import { derivePrivateKey } from '../../src/auth/srp-client.js'
import { generateTotp } from '../../src/auth/totp.js'
import { call, changePassword, confirmTotpReset, startTotpReset } from '../../src/client/calls.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticateWith, submitOtp, submitRecoveryCode, type LoginResult } from '../../src/client/login.js'
import { confirmEnrolment, startRegistration, type Enrolment } from '../../src/client/register.js'
import type { SessionRecord } from '../../src/server/sessions.js'
import { newPassword } from '../helpers/accounts.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { noteSecret } from '../helpers/secrets.js'
import { getRecovery, getUser, hasUser } from '../helpers/records.js'

// The second factor against the real server (TLS on 127.0.0.1, a store file on disk) with an
// injected clock: (1) every place that checks a TOTP code accepts one 30 s step either side of
// the server's clock and no more; (2) a login whose account changed between the SRP proof and
// the code (password changed, 2FA reset, account removed) cannot finish with the code it
// would otherwise have been let in with, neither a TOTP code nor a recovery code.

const STEP_MS = 30_000
// The middle of a step, so that "the server's step" does not depend on rounding.
let nowMs = Date.UTC(2026, 10, 25, 12, 0, 15)
const step = () => Math.floor(nowMs / STEP_MS)
const codeAt = (secret: string, s: number) => generateTotp(secret, s * STEP_MS + STEP_MS / 2)

interface Person {
  name: string
  password: string
  totpSecret: string
  recoveryCodes: string[]
  /** The last TOTP step the server accepted from this person (RFC 6238 5.2: the next must be later). */
  lastStep: number
  /** SRP's x for the current salt: derived once, as the scrypt stretch costs ~0.25 s a time. */
  x?: { salt: string; x: string }
}

let server: InProcessServer
let admin: Person

beforeAll(async () => {
  let bootstrapToken = ''
  server = await startInProcessServer({
    now: () => nowMs,
    server: {
      // Open: each test registers the people it needs without an invite.
      registration: 'open',
      // Refused codes are the point of these tests; the guard's waits and lockout are not.
      sleep: async () => {},
      guard: { lockAfter: 100 },
      onBootstrapToken: (token) => {
        noteSecret('bootstrap token', token)
        bootstrapToken = token
      },
    },
  })
  admin = await register('sf.admin', bootstrapToken)
})
afterAll(() => server?.stop())

async function connect(): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.server.port,
    trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
  })
}

function noteLogin(result: LoginResult): LoginResult {
  if (result.token) noteSecret('session token', result.token)
  return result
}

/** Registration with a code for the server's current step; with `token`, the bootstrap token. */
async function register(name: string, token?: string): Promise<Person> {
  const password = newPassword()
  noteSecret('password', password)
  const conn = await connect()
  try {
    const { secret } = await startRegistration(conn, name, password, token)
    noteSecret('TOTP secret', secret)
    const { recoveryCodes } = await confirmEnrolment(conn, await codeAt(secret, step()))
    for (const code of recoveryCodes) {
      noteSecret('recovery code', code)
      noteSecret('recovery code', code.replace('-', ''))
    }
    return { name, password, totpSecret: secret, recoveryCodes, lastStep: step() }
  } finally {
    conn.close()
  }
}

/** SRP-6a up to the server's proof (login_start, login_proof), stopping before the second factor. */
async function srpProof(conn: ServerConnection, person: Person): Promise<{ enrol?: Enrolment }> {
  return authenticateWith(conn, person.name, async ({ salt, kdf }) => {
    if (person.x?.salt !== salt) {
      person.x = { salt, x: await derivePrivateKey({ salt, username: person.name, password: person.password, kdf }) }
      noteSecret('SRP private key', person.x.x)
    }
    return person.x.x
  })
}

/** A code for the server's current step, the clock moved on first when this person already used it. */
async function freshCode(person: Person): Promise<string> {
  if (step() <= person.lastStep) nowMs = (person.lastStep + 1) * STEP_MS + STEP_MS / 2
  person.lastStep = step()
  return codeAt(person.totpSecret, step())
}

/** A whole login (password and `code`) on a connection of its own. */
async function loginWith(person: Person, code: string): Promise<LoginResult> {
  const conn = await connect()
  try {
    await srpProof(conn, person)
    return noteLogin(await submitOtp(conn, code))
  } finally {
    conn.close()
  }
}

/** A connection logged in with password and a fresh code (what passwd and totp_reset require). */
async function logIn(person: Person): Promise<ServerConnection> {
  const conn = await connect()
  try {
    await srpProof(conn, person)
    noteLogin(await submitOtp(conn, await freshCode(person)))
    return conn
  } catch (error) {
    conn.close()
    throw error
  }
}

async function asAdmin<T>(work: (conn: ServerConnection) => Promise<T>): Promise<T> {
  const conn = await logIn(admin)
  try {
    return await work(conn)
  } finally {
    conn.close()
  }
}

/** The ids of `name`'s sessions in the store (the server writes each with its login's audit entry). */
async function sessionIds(name: string): Promise<string[]> {
  const ids: string[] = []
  for (const key of server.store.keys('session/')) {
    const record = await server.store.get<SessionRecord>(key)
    if (record?.user === name) ids.push(record.id)
  }
  return ids.sort()
}

/** The stage the server logged for `name`'s last failed login: why it refused, which the client is not told. */
function lastFailureStage(name: string): unknown {
  return server.logger.entries.filter((entry) => entry.event === 'login_failed' && entry.fields['user'] === name).at(-1)
    ?.fields['stage']
}

/**
 * How an attempt ended: its error code, or 'accepted'. A failed assertion then shows only this,
 * never the session token or recovery codes that a wrongly accepted attempt carries.
 */
async function failureCode(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt
    return 'accepted'
  } catch (error) {
    return (error as { code?: string }).code ?? 'no error code'
  }
}

/** The user a login let in (and nothing else of its answer, for the same reason). */
async function userOf(attempt: Promise<LoginResult>): Promise<string> {
  return (await attempt).user
}

interface WindowCodes {
  minus2: string
  minus1: string
  plus1: string
  plus2: string
}

/**
 * The codes for the server's step -2, -1, +1, +2. Six digits collide now and then: should a code
 * two steps away equal one the server rightly accepts (steps -1 to +1), the clock moves on a
 * step, so that a correct server can never fail a refusal check by chance.
 */
async function windowCodes(secret: string): Promise<WindowCodes> {
  for (;;) {
    const [minus2, minus1, now, plus1, plus2] = await Promise.all(
      [-2, -1, 0, 1, 2].map((d) => codeAt(secret, step() + d)),
    )
    const accepted = [minus1, now, plus1]
    if (!accepted.includes(minus2!) && !accepted.includes(plus2!))
      return { minus2: minus2!, minus1: minus1!, plus1: plus1!, plus2: plus2! }
    nowMs += STEP_MS
  }
}

/** Moves the clock until step-2 is later than any step `person` used, so a refusal of it can only be the window's. */
function clearOfUsedSteps(person: Person): void {
  while (step() - 2 <= person.lastStep) nowMs += STEP_MS
}

/** A login after an admin's reset-2fa: SRP, the new authenticator offered in server_proof, then `pick`'s code from it. */
async function enrolAtLogin(person: Person, pick: keyof WindowCodes): Promise<LoginResult> {
  const conn = await connect()
  try {
    const { enrol } = await srpProof(conn, person)
    if (!enrol) throw new Error(`no enrolment offered to ${person.name}`)
    noteSecret('TOTP secret', enrol.secret)
    const result = noteLogin(await submitOtp(conn, (await windowCodes(enrol.secret))[pick]))
    person.totpSecret = enrol.secret
    return result
  } finally {
    conn.close()
  }
}

describe('every TOTP check accepts one 30 s step either side of the server clock, not two', () => {
  it('login_otp: refuses codes for step-2 and step+2, accepts step-1 and step+1', async () => {
    const person = await register('win.login')
    clearOfUsedSteps(person)
    const codes = await windowCodes(person.totpSecret)
    for (const code of [codes.minus2, codes.plus2]) {
      expect(await failureCode(loginWith(person, code))).toBe('ERR_AUTH_FAILED')
      expect(lastFailureStage(person.name)).toBe('otp')
    }
    expect(await userOf(loginWith(person, codes.minus1))).toBe(person.name)
    expect(await userOf(loginWith(person, codes.plus1))).toBe(person.name)
  })

  it('register_confirm: refuses codes for step-2 and step+2, accepts step-1 and step+1', async () => {
    const conn = await connect()
    try {
      const password = newPassword()
      noteSecret('password', password)
      const first = await startRegistration(conn, 'win.register.a', password)
      noteSecret('TOTP secret', first.secret)
      const codes = await windowCodes(first.secret)
      // A wrong enrolment code leaves the registration open on this connection for another try.
      for (const code of [codes.minus2, codes.plus2])
        expect(await failureCode(confirmEnrolment(conn, code))).toBe('ERR_ENROL_CODE')
      const registered = await confirmEnrolment(conn, codes.minus1)
      expect(registered.user).toBe('win.register.a')
      // A second registration on the same connection, for the step after.
      const second = await startRegistration(conn, 'win.register.b', password)
      noteSecret('TOTP secret', second.secret)
      const registeredToo = await confirmEnrolment(conn, (await windowCodes(second.secret)).plus1)
      expect(registeredToo.user).toBe('win.register.b')
      for (const code of [...registered.recoveryCodes, ...registeredToo.recoveryCodes])
        noteSecret('recovery code', code)
    } finally {
      conn.close()
    }
    expect(hasUser(server.store, 'win.register.a') && hasUser(server.store, 'win.register.b')).toBe(true)
  })

  it('totp_confirm (a logged-in user changing authenticator): refuses codes for step-2 and step+2, accepts step-1 and step+1', async () => {
    const person = await register('win.reenrol')
    const conn = await logIn(person)
    try {
      const first = await startTotpReset(conn, person.name)
      noteSecret('TOTP secret', first.secret)
      const codes = await windowCodes(first.secret)
      for (const code of [codes.minus2, codes.plus2])
        expect(await failureCode(confirmTotpReset(conn, code))).toBe('ERR_ENROL_CODE')
      await expect(confirmTotpReset(conn, codes.minus1)).resolves.toBeUndefined()
      const second = await startTotpReset(conn, person.name)
      noteSecret('TOTP secret', second.secret)
      const plus1Step = step() + 1
      await expect(confirmTotpReset(conn, (await windowCodes(second.secret)).plus1)).resolves.toBeUndefined()
      person.totpSecret = second.secret
      person.lastStep = plus1Step
    } finally {
      conn.close()
    }
    // The account now holds the second authenticator: a login with its next code gets in.
    expect(await userOf(loginWith(person, await freshCode(person)))).toBe(person.name)
  })

  it('a login enrolling after an admin reset-2fa: refuses codes for step-2 and step+2, accepts step-1 and step+1', async () => {
    const person = await register('win.enrol')
    await asAdmin((conn) => call(conn, 'reset_2fa', { user: person.name }))
    // Each attempt is offered a fresh secret; each refused attempt ends its connection.
    for (const pick of ['minus2', 'plus2'] as const) {
      expect(await failureCode(enrolAtLogin(person, pick))).toBe('ERR_AUTH_FAILED')
      expect(lastFailureStage(person.name)).toBe('enrol_code')
    }
    expect(await userOf(enrolAtLogin(person, 'minus1'))).toBe(person.name)
    expect((await getUser(server.store, person.name))?.totpReset).toBeUndefined()
    await asAdmin((conn) => call(conn, 'reset_2fa', { user: person.name }))
    expect(await userOf(enrolAtLogin(person, 'plus1'))).toBe(person.name)
    expect((await getUser(server.store, person.name))?.totpReset).toBeUndefined()
  })
})

const CHANGES = [
  ['they changed their password', 'passwd'],
  ['an admin reset their 2FA', 'reset_2fa'],
  ['an admin removed them', 'remove'],
] as const
type Change = (typeof CHANGES)[number][1]

/** The change, made on connections other than the login's: the person's own session, or an admin's. */
async function makeChange(change: Change, person: Person): Promise<void> {
  if (change === 'passwd') {
    const conn = await logIn(person)
    try {
      const password = newPassword()
      noteSecret('password', password)
      await changePassword(conn, person.name, password)
      person.password = password
    } finally {
      conn.close()
    }
  } else await asAdmin((conn) => call(conn, change, { user: person.name }))
}

describe('a login whose account changed between the SRP proof and the code does not finish', () => {
  it('control: with only a login of theirs in between, a TOTP code sent on the first connection logs in', async () => {
    const person = await register('stale.otp.none')
    const first = await connect()
    try {
      await srpProof(first, person)
      ;(await logIn(person)).close()
      const before = await sessionIds(person.name)
      const result = noteLogin(await submitOtp(first, await freshCode(person)))
      expect(result.user).toBe(person.name)
      expect(await sessionIds(person.name)).toEqual([...before, result.sessionId].sort())
    } finally {
      first.close()
    }
  })

  it.each(CHANGES)('a TOTP code fails with ERR_AUTH_FAILED and makes no session when %s', async (_, change) => {
    const person = await register(`stale.otp.${change}`)
    const first = await connect()
    try {
      await srpProof(first, person)
      await makeChange(change, person)
      const before = await sessionIds(person.name)
      // A code for the current step of the authenticator the login began with.
      expect(await failureCode(submitOtp(first, await freshCode(person)))).toBe('ERR_AUTH_FAILED')
      expect(await sessionIds(person.name)).toEqual(before)
      expect(lastFailureStage(person.name)).toBe('account_changed')
    } finally {
      first.close()
    }
  })

  it('control: with only a login of theirs in between, a recovery code sent on the first connection logs in', async () => {
    const person = await register('stale.rc.none')
    const first = await connect()
    try {
      await srpProof(first, person)
      ;(await logIn(person)).close()
      const before = await sessionIds(person.name)
      const result = noteLogin(await submitRecoveryCode(first, person.recoveryCodes[0]!))
      expect([result.user, result.recoveryCodesLeft]).toEqual([person.name, 9])
      expect(await sessionIds(person.name)).toEqual([...before, result.sessionId].sort())
    } finally {
      first.close()
    }
  })

  it.each(CHANGES)(
    'a recovery code fails with ERR_AUTH_FAILED, makes no session and is not spent when %s',
    async (_, change) => {
      const person = await register(`stale.rc.${change}`)
      const first = await connect()
      try {
        await srpProof(first, person)
        await makeChange(change, person)
        const before = await sessionIds(person.name)
        expect(await failureCode(submitRecoveryCode(first, person.recoveryCodes[0]!))).toBe('ERR_AUTH_FAILED')
        expect(await sessionIds(person.name)).toEqual(before)
        // Refused before the code was looked at: all ten are left (a removed account has none).
        const stored = await getRecovery(server.store, person.name)
        expect(stored ? recoveryCodesLeft(stored) : 0).toBe(change === 'remove' ? 0 : 10)
      } finally {
        first.close()
      }
    },
  )
})
