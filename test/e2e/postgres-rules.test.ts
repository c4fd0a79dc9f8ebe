import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import srp from 'secure-remote-password/client.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, enrolmentOf } from '../../src/client/register.js'
import { resumeSession, submitOtp, submitRecoveryCode } from '../../src/client/login.js'
import { call } from '../../src/client/calls.js'
import { clientSession, startLogin, verifierOf } from '../helpers/conversation.js'
import { generateTotp } from '../../src/auth/totp.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword } from '../../src/auth/password-stretch.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { storeLocation } from '../../src/cli/store-location.js'
import { issueBootstrapToken, roleIndexKey } from '../../src/server/invites.js'
import type { Store } from '../../src/store/index.js'
import { makeCerts, makeTempDir } from '../helpers/env.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'
import { havePostgres, makeDatabase, type TestDatabase } from '../helpers/postgres.js'

// Every rule across processes (issue 20): three real server processes on one PostgreSQL
// database, each request of a race sent to a different process, the racing frames written in
// the same tick. Nothing that decides a rule may live in one process's memory; each test here
// fails when one does (the same rules one layer down, with three servers on one store object:
// test/conversation/shared-store.test.ts).

const ATTEMPTS = 50
const PASSPHRASE = 'three servers, one database'
const PASSWORD = 'the rules test password 9'
noteSecret('password', PASSWORD)

const run = await havePostgres()

let dir: string
let remove: () => Promise<void>
let db: TestDatabase
let clock: FileClock
let certPath: string
const servers: ServerProcess[] = []
const open = new Set<ServerConnection>()

beforeAll(async () => {
  if (!run) return
  ;({ dir, remove } = await makeTempDir('pg-rules'))
  const passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  ;({ certPath } = makeCerts(join(dir, 'certs')))
  clock = new FileClock(dir)
  db = await makeDatabase()
  // One after another: the first makes the store; each start while there is no system_admin
  // makes a new bootstrap token, so the last one's is the live one.
  for (let i = 0; i < 3; i++)
    servers.push(
      await startServerProcess(dir, passphraseFile, [
        '--store',
        db.url,
        '--clock-file',
        clock.file,
        '--registration',
        'open',
        '--bootstrap-token-file',
        join(dir, `bootstrap-${i}`),
        '--session-idle',
        '12h',
        '--session-max',
        '24h',
        '--failure-delay-ms',
        '1',
      ]),
    )
})

afterAll(async () => {
  if (process.env.DEBUG_RULES)
    for (const [i, server] of servers.entries())
      for (const line of server.log().split('\n'))
        if (/login_failed|login_refused|store_error|internal_error|set_role|role/.test(line))
          console.log(i, line.slice(0, 300))
  for (const conn of open) conn.close()
  await Promise.all(servers.map((server) => server.stop()))
  await killAllCli()
  await db?.drop()
  await remove?.()
})

// One salt for everyone: the 64 MiB stretch runs once; x still differs per name. The client's
// SRP maths runs on OpenSSL here (test/helpers/conversation.ts): the real client's (jsbn) costs
// about 0.12 s a login, and this file makes over a thousand.
const SALT = 'd4'.repeat(32)
let stretched: Promise<string> | undefined
const xs = new Map<string, string>()
async function xOf(name: string): Promise<string> {
  const x =
    xs.get(name) ??
    srp.derivePrivateKey(SALT, name, await (stretched ??= stretchPassword(PASSWORD, SALT, DEFAULT_PASSWORD_KDF)))
  xs.set(name, x)
  return x
}
const WRONG_X = 'ab'.repeat(32)

/** login_start and login_proof: the connection then awaits the second factor. */
async function authenticate(conn: ServerConnection, name: string, x?: string): Promise<void> {
  const ephemeral = startLogin()
  const { salt, B } = await conn.request({ type: 'login_start', username: name, A: ephemeral.A }, 'challenge')
  const session = clientSession({ ephemeral, salt, B, username: name, x: x ?? (await xOf(name)) })
  const { M2 } = await conn.request({ type: 'login_proof', M1: session.M1 }, 'server_proof')
  if (M2 !== session.M2) throw new Error('the server did not prove it knows the verifier')
}

async function connect(server: number): Promise<ServerConnection> {
  const conn = await ServerConnection.open({
    host: '127.0.0.1',
    port: servers[server]!.port,
    trust: { kind: 'ca', ca: await readFile(certPath), caFile: certPath },
    timeoutMs: 60_000,
  })
  open.add(conn)
  return conn
}

const done = (conn: ServerConnection) => {
  conn.close()
  open.delete(conn)
}

/** What each settled to: `ok`, or the error's code. */
const outcomes = (settled: PromiseSettledResult<unknown>[]) =>
  settled.map((s) =>
    s.status === 'fulfilled' ? 'ok' : s.reason instanceof SecureLoginError ? s.reason.code : String(s.reason),
  )

/** `send` on each connection in the same tick, then every answer. */
async function race<T>(conns: ServerConnection[], send: (conn: ServerConnection, i: number) => Promise<T>) {
  return outcomes(await Promise.allSettled(conns.map((conn, i) => send(conn, i))))
}

/** One connection on each of the three servers. */
const onEach = () => Promise.all([0, 1, 2].map(connect))

interface Person {
  name: string
  secret: string
  recoveryCodes: string[]
  /** The last TOTP step the person used. */
  step: number
}

const step = () => Math.floor(clock.ms / 30_000)

async function register(server: number, name: string, token?: string): Promise<Person> {
  const conn = await connect(server)
  try {
    const verifier = verifierOf(await xOf(name))
    const { otpauthUri } = await conn.request(
      { type: 'register_start', username: name, salt: SALT, verifier, kdf: DEFAULT_PASSWORD_KDF, token },
      'enrol',
    )
    const { secret } = enrolmentOf(name, otpauthUri)
    noteSecret('TOTP secret', secret)
    const { recoveryCodes } = await confirmEnrolment(conn, await generateTotp(secret, clock.ms))
    for (const code of recoveryCodes) noteSecret('recovery code', code)
    return { name, secret, recoveryCodes, step: step() }
  } finally {
    done(conn)
  }
}

/** A code for a step this person has not used (the server accepts one step either side). */
async function codeFor(person: Person): Promise<string> {
  if (person.step >= step() + 1) clock.nextStep()
  person.step = Math.max(person.step + 1, step())
  return generateTotp(person.secret, person.step * 30_000)
}

/** A full login on `server`; the connection stays logged in. */
async function loggedIn(server: number, person: Person): Promise<{ conn: ServerConnection; token: string }> {
  const conn = await connect(server)
  await authenticate(conn, person.name)
  const { token } = await submitOtp(conn, await codeFor(person))
  noteSecret('session token', token!)
  return { conn, token: token! }
}

/** Both halves of a registration raced: register_start on each server at once, then the codes at once. */
async function raceRegistrations(names: string[], token?: string): Promise<{ registered: string[]; person?: Person }> {
  const conns = await onEach()
  try {
    const secrets: Array<string | undefined> = []
    const started = await race(conns, async (conn, i) => {
      const name = names[i]!
      const verifier = verifierOf(await xOf(name))
      const { otpauthUri } = await conn.request(
        { type: 'register_start', username: name, salt: SALT, verifier, kdf: DEFAULT_PASSWORD_KDF, token },
        'enrol',
      )
      secrets[i] = enrolmentOf(name, otpauthUri).secret
      noteSecret('TOTP secret', secrets[i]!)
    })
    const codes = await Promise.all(secrets.map((secret) => (secret ? generateTotp(secret, clock.ms) : undefined)))
    const recovery: string[][] = []
    const confirmed = await race(conns, async (conn, i) => {
      if (started[i] !== 'ok') throw new Error(started[i])
      recovery[i] = (await confirmEnrolment(conn, codes[i]!)).recoveryCodes
    })
    const winners = confirmed.flatMap((outcome, i) => (outcome === 'ok' ? [i] : []))
    const registered = winners.map((i) => names[i]!)
    const winner = winners[0]
    return winner === undefined
      ? { registered }
      : {
          registered,
          person: { name: names[winner]!, secret: secrets[winner]!, recoveryCodes: recovery[winner]!, step: step() },
        }
  } finally {
    conns.forEach(done)
  }
}

/**
 * Failures are also counted per address (in each process, for delays only), and a full login
 * clears that count: one on each server, so the failures a test makes on purpose do not slow
 * the rest of it down by seconds.
 */
let clearer: Person | undefined
async function clearAddress(): Promise<void> {
  clearer ??= await register(0, 'address.clearer')
  for (const server of [0, 1, 2]) done((await loggedIn(server, clearer)).conn)
}

async function openStore(): Promise<Store> {
  const location = storeLocation(db.url)
  return location.open(PASSPHRASE, await location.lock(() => {}), {})
}

let root: Person
let second: Person

describe.skipIf(!run)('three server processes on one database', () => {
  it(`the bootstrap token is spent once: ${ATTEMPTS} tokens, each used by three registrations, one per server, at once`, async () => {
    // A store has a bootstrap token only while it has no system_admin, and a server makes one
    // at its start: between attempts the test takes the winner's account out of the store and
    // makes the next token itself, as a server starting on such a store would.
    let token = (await readFile(join(dir, 'bootstrap-2'), 'utf8')).trim()
    const store = await openStore()
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        noteSecret('bootstrap token', token)
        const { registered, person } = await raceRegistrations([`boot.${i}.a`, `boot.${i}.b`, `boot.${i}.c`], token)
        expect(registered, `attempt ${i}`).toHaveLength(1)
        root = person!
        if (i === ATTEMPTS - 1) break
        await store.commit([
          { key: `user/${root.name}`, delete: true },
          { key: roleIndexKey('system_admin', root.name), delete: true },
        ])
        token = (await issueBootstrapToken(store, clock.ms, randomBytes))!.token
        clock.advance(60_000)
      }
    } finally {
      await store.close()
    }
    const { conn } = await loggedIn(0, root)
    const { role } = await call(conn, 'whoami', {})
    expect(role).toBe('system_admin')
    done(conn)
  })

  it(`a name registers once: ${ATTEMPTS} names, each registered on three servers at once`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const name = `name.${i}`
      const { registered } = await raceRegistrations([name, name, name])
      expect(registered, `attempt ${i}`).toHaveLength(1)
      // Refusals spend the address's budget (30 a minute, per process): time moves on instead.
      clock.advance(60_000)
    }
  })

  it(`an invite is spent once: ${ATTEMPTS} invites, each used by three registrations at once`, async () => {
    const { conn } = await loggedIn(0, root)
    const invites: string[] = []
    for (let i = 0; i < ATTEMPTS; i++) {
      const { token } = await call(conn, 'invite', { role: 'admin', ttlSeconds: 86_400 })
      noteSecret('invite', token)
      invites.push(token)
    }
    done(conn)
    for (let i = 0; i < ATTEMPTS; i++) {
      const { registered } = await raceRegistrations([`inv.${i}.a`, `inv.${i}.b`, `inv.${i}.c`], invites[i])
      expect(registered, `attempt ${i}`).toHaveLength(1)
      clock.advance(60_000)
    }
  })

  const people: Person[] = []

  it(`a TOTP code is accepted once in all: ${ATTEMPTS} codes, each sent to three servers at once`, async () => {
    for (let i = 0; i < ATTEMPTS; i++) people.push(await register(i % 3, `otp.${i}`))
    for (const [i, person] of people.entries()) {
      const conns = await onEach()
      await Promise.all(conns.map((conn) => authenticate(conn, person.name)))
      const code = await codeFor(person)
      const answers = await race(conns, (conn) => submitOtp(conn, code))
      conns.forEach(done)
      expect(answers.sort(), `attempt ${i}`).toEqual(['ERR_AUTH_FAILED', 'ERR_AUTH_FAILED', 'ok'])
      if (i % 2 === 1) await clearAddress()
    }
  })

  it(`a recovery code is accepted once in all: ${ATTEMPTS} codes, each sent to three servers at once`, async () => {
    for (const [i, person] of people.entries()) {
      const conns = await onEach()
      await Promise.all(conns.map((conn) => authenticate(conn, person.name)))
      const code = person.recoveryCodes[0]!
      const answers = await race(conns, (conn) => submitRecoveryCode(conn, code))
      conns.forEach(done)
      expect(answers.sort(), `attempt ${i}`).toEqual(['ERR_AUTH_FAILED', 'ERR_AUTH_FAILED', 'ok'])
      if (i % 2 === 1) await clearAddress()
    }
  })

  it(`failed logins are one count: ${ATTEMPTS} names, nine wrong passwords at once over three servers, then a tenth, lock the name on all`, async () => {
    const store = await openStore()
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        const person = await register(i % 3, `guess.${i}`)
        const conns = await Promise.all(Array.from({ length: 9 }, (_, k) => connect(k % 3)))
        // Each at the proof, then every wrong proof in the same tick.
        const sessions = await Promise.all(
          conns.map(async (conn) => {
            const ephemeral = startLogin()
            const start = { type: 'login_start' as const, username: person.name, A: ephemeral.A }
            const { salt, B } = await conn.request(start, 'challenge')
            return clientSession({ ephemeral, salt, B, username: person.name, x: WRONG_X })
          }),
        )
        const answers = await race(conns, (conn, k) =>
          conn.request({ type: 'login_proof', M1: sessions[k]!.M1 }, 'server_proof'),
        )
        conns.forEach(done)
        expect(answers, `attempt ${i}`).toEqual(Array(9).fill('ERR_AUTH_FAILED'))
        // Not one of the nine lost, whichever process counted it.
        expect(await store.get(`guard/${person.name}`), `attempt ${i}`).toMatchObject({
          failures: 9,
          lockedUntil: null,
        })
        const tenth = await connect(i % 3)
        await expect(authenticate(tenth, person.name, WRONG_X)).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
        done(tenth)
        // Locked: the right password and a fresh code are refused by another server.
        const conn = await connect((i + 1) % 3)
        const login = authenticate(conn, person.name).then(async () => submitOtp(conn, await codeFor(person)))
        await expect(login, `attempt ${i}`).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
        done(conn)
        // Four or five failures a server an attempt: past a few attempts the waits are seconds.
        if (i % 2 === 1) await clearAddress()
      }
    } finally {
      await store.close()
    }
  })

  it(`a session logged out on one server is refused by the others at their next call (${ATTEMPTS} sessions)`, async () => {
    const person = await register(0, 'sessions.person')
    for (let i = 0; i < ATTEMPTS; i++) {
      const { conn, token } = await loggedIn(i % 3, person)
      const others = await Promise.all([1, 2].map((k) => connect((i + k) % 3)))
      for (const other of others) await resumeSession(other, token)
      await call(conn, 'logout', {})
      done(conn)
      for (const other of others) {
        await expect(call(other, 'whoami', {}), `attempt ${i}`).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
        done(other)
      }
    }
  })

  it('a session that expired is refused by every server', async () => {
    const person = await register(1, 'expiring.person')
    const { conn, token } = await loggedIn(1, person)
    const others = await Promise.all([0, 2].map(connect))
    for (const other of others) await resumeSession(other, token)
    clock.advance(13 * 3_600_000) // past the 12 h idle limit
    for (const c of [conn, ...others]) {
      await expect(call(c, 'whoami', {})).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
      done(c)
    }
    // Sessions of the people above are 12 h idle now too: they log in afresh where needed.
  })

  it(`an admin demoted on one server is refused an admin call on the others at once (${ATTEMPTS} demotions)`, async () => {
    const admin = await register(2, 'demoted.admin')
    // An admin call that reads one record (listing every account would read them all).
    const target = await register(0, 'unlocked.person')
    const adminCall = (conn: ServerConnection) => call(conn, 'unlock', { user: target.name })
    for (let i = 0; i < ATTEMPTS; i++) {
      const boss = await loggedIn(i % 3, root)
      await call(boss.conn, 'set_role', { user: admin.name, role: 'admin' })
      // One after another: a second code must come after the first (RFC 6238 5.2).
      const held: ServerConnection[] = []
      for (const k of [1, 2]) held.push((await loggedIn((i + k) % 3, admin)).conn)
      for (const conn of held) expect(await adminCall(conn)).toMatchObject({ user: target.name })
      await call(boss.conn, 'set_role', { user: admin.name, role: 'regular_user' })
      done(boss.conn)
      for (const conn of held) {
        await expect(adminCall(conn), `attempt ${i}`).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
        done(conn)
      }
      clock.advance(60_000)
    }
  })

  it(`the last system_admin stays: ${ATTEMPTS} pairs of demotions, each system_admin demoting the other on another server at once`, async () => {
    second = await register(1, 'second.root')
    for (let i = 0; i < ATTEMPTS; i++) {
      const a = await loggedIn(i % 3, root)
      if (!(await isSystemAdmin(second))) await call(a.conn, 'set_role', { user: second.name, role: 'system_admin' })
      const b = await loggedIn((i + 1) % 3, second)
      const answers = await race([a.conn, b.conn], (conn, k) =>
        call(conn, 'set_role', { user: k === 0 ? second.name : root.name, role: 'regular_user' }),
      )
      done(a.conn)
      done(b.conn)
      expect([...answers].sort(), `attempt ${i}`).toEqual(['ERR_FORBIDDEN', 'ok'])
      const left = [(await isSystemAdmin(root)) && root, (await isSystemAdmin(second)) && second].filter(Boolean)
      expect(left, `attempt ${i}`).toHaveLength(1)
      // Whoever is left makes the root a system_admin again for the next attempt.
      if (left[0] === second) {
        const back = await loggedIn(i % 3, second)
        await call(back.conn, 'set_role', { user: root.name, role: 'system_admin' })
        done(back.conn)
      }
      // The refusal spent one of the address's refusals (30 a minute): time moves on instead.
      clock.advance(60_000)
    }
  })

  it('after all of it, written by three processes at once, the audit log is one hash chain', async () => {
    const result = await runCliToEnd(
      ['store', 'verify', '--store', db.url, '--passphrase-file', join(dir, 'passphrase'), '--json'],
      '',
    )
    expect(result.code, result.stderr).toBe(0)
    const report = JSON.parse(result.stdout) as { ok: boolean; audit: { ok: boolean; entries: number } }
    expect(report.ok).toBe(true)
    expect(report.audit.ok).toBe(true)
    // Every registration, login and role change above has its entry.
    expect(report.audit.entries).toBeGreaterThan(ATTEMPTS * 8)
  })
})

async function isSystemAdmin(person: Person): Promise<boolean> {
  const store = await openStore()
  try {
    return (await store.get<{ role: string }>(`user/${person.name}`))?.role === 'system_admin'
  } finally {
    await store.close()
  }
}
