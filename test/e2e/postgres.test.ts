import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import srp from 'secure-remote-password/client.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, enrolmentOf } from '../../src/client/register.js'
import { authenticateWith, submitOtp } from '../../src/client/login.js'
import { generateTotp } from '../../src/auth/totp.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword, type PasswordKdf } from '../../src/auth/password-stretch.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { storeLocation } from '../../src/cli/store-location.js'
import type { Store } from '../../src/store/index.js'
import { makeCerts, makeTempDir } from '../helpers/env.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'
import { ADMIN_URL, havePostgres, makeDatabase, type TestDatabase } from '../helpers/postgres.js'
import pg from 'pg'

// The store on PostgreSQL through the real CLI and real server processes (issue 20): the store
// commands, `store copy` both ways, `--workers`, a worker SIGKILLed under load, and the
// database going away under load. The rules across processes have their own tests
// (test/e2e/postgres-rules.test.ts); the e2e contract runs on both store kinds (vitest.config.ts).

const PASSPHRASE = 'postgres e2e passphrase, not a real one'
const PASSWORD = 'postgres e2e password 7'
noteSecret('password', PASSWORD)
const URL_PASSWORD = 'url-password-never-shown-4417'
noteSecret('URL password', URL_PASSWORD)

const run = await havePostgres()

let dir: string
let remove: () => Promise<void>
let passphraseFile: string
let certPath: string
let clock: FileClock
const databases: TestDatabase[] = []

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('postgres'))
  passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  ;({ certPath } = makeCerts(join(dir, 'certs')))
  clock = new FileClock(dir)
})
afterAll(async () => {
  await killAllCli()
  for (const db of databases) await db.drop()
  await remove?.()
})

async function database(): Promise<TestDatabase> {
  const db = await makeDatabase()
  databases.push(db)
  return db
}

const json = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)

async function storeCli(...args: string[]) {
  const result = await runCliToEnd(['store', ...args, '--json'], '')
  return { ...result, out: json(result.stdout), err: json(result.stderr) }
}

const serverArgs = (store: string, extra: string[] = []) => [
  '--store',
  store,
  '--clock-file',
  clock.file,
  '--registration',
  'open',
  ...extra,
]

async function openAt(store: string): Promise<Store> {
  const location = storeLocation(store)
  return location.open(PASSPHRASE, await location.lock(() => {}), {})
}

// Every user shares one salt, so the 64 MiB stretch runs once; x still differs per name.
const SALT = 'c3'.repeat(32)
let stretched: Promise<string> | undefined
const xOf =
  (name: string) =>
  async ({ salt, kdf }: { salt: string; kdf: PasswordKdf }) =>
    srp.derivePrivateKey(salt, name, await (stretched ??= stretchPassword(PASSWORD, salt, kdf)))

async function connect(port: number): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port,
    trust: { kind: 'ca', ca: await readFile(certPath), caFile: certPath },
    timeoutMs: 60_000,
  })
}

/** Registers `name` (the code of the clock's step); resolves with its TOTP secret once `registered` is heard. */
async function register(port: number, name: string): Promise<string> {
  const conn = await connect(port)
  try {
    const verifier = srp.deriveVerifier(await xOf(name)({ salt: SALT, kdf: DEFAULT_PASSWORD_KDF }))
    const { otpauthUri } = await conn.request(
      { type: 'register_start', username: name, salt: SALT, verifier, kdf: DEFAULT_PASSWORD_KDF },
      'enrol',
    )
    const { secret } = enrolmentOf(name, otpauthUri)
    noteSecret('TOTP secret', secret)
    await confirmEnrolment(conn, await generateTotp(secret, clock.ms))
    return secret
  } finally {
    conn.close()
  }
}

/** A full login with the code of the step after the clock's (registration used the clock's); the session id. */
async function login(port: number, name: string, secret: string): Promise<string> {
  const conn = await connect(port)
  try {
    await authenticateWith(conn, name, xOf(name))
    const welcome = await submitOtp(conn, await generateTotp(secret, clock.ms + 30_000))
    noteSecret('session token', welcome.token!)
    return welcome.sessionId!
  } finally {
    conn.close()
  }
}

describe.skipIf(!run)('the store on PostgreSQL', () => {
  it('store init, info, verify, rekey and compact work on a database, and no URL password is ever shown', async () => {
    const db = await database()
    const url = db.urlWithPassword(URL_PASSWORD)
    const shown = db.url
    const made = await storeCli('init', '--store', url, '--passphrase-file', passphraseFile, '--kdf-logn', '10')
    expect(made.code, made.stderr).toBe(0)
    expect(made.out[0]).toMatchObject({ event: 'store_created', path: shown })
    const again = await storeCli('init', '--store', url, '--passphrase-file', passphraseFile)
    expect(again.code).toBe(1)
    expect(again.err.at(-1)).toMatchObject({ code: 'ERR_STORE_IO' })

    const info = await storeCli('info', '--store', url)
    expect(info.out[0]).toMatchObject({ event: 'store_info', path: shown, kdf: { logN: 10 } })
    const verified = await storeCli('verify', '--store', url, '--passphrase-file', passphraseFile)
    expect(verified.code, verified.stderr).toBe(0)
    expect(verified.out[0]).toMatchObject({ event: 'store_verified', ok: true, audit: { ok: true } })

    const next = await writePassphraseFile(dir, 'the next postgres passphrase', 'next')
    const rekeyed = await storeCli(
      'rekey',
      '--store',
      url,
      '--passphrase-file',
      passphraseFile,
      '--new-passphrase-file',
      next,
      '--kdf-logn',
      '10',
    )
    expect(rekeyed.code, rekeyed.stderr).toBe(0)
    const old = await storeCli('verify', '--store', url, '--passphrase-file', passphraseFile)
    expect(old.code).toBe(1)
    expect(old.err.at(-1)).toMatchObject({ code: 'ERR_STORE_BAD_PASSPHRASE' })
    const compacted = await storeCli('compact', '--store', url, '--passphrase-file', next)
    expect(compacted.code, compacted.stderr).toBe(0)
    expect((await storeCli('verify', '--store', url, '--passphrase-file', next)).code).toBe(0)

    for (const result of [made, again, info, verified, rekeyed, old, compacted])
      expect(result.stdout + result.stderr).not.toContain(URL_PASSWORD)
  })

  it('--workers is refused for a store file, with what to do instead', async () => {
    const result = await runCliToEnd(
      [
        'server',
        '--port',
        '0',
        '--store',
        join(dir, 'data', 'one.store'),
        '--passphrase-file',
        passphraseFile,
        '--workers',
        '2',
        '--json',
      ],
      '',
    )
    expect(result.code).toBe(2)
    expect(json(result.stderr).at(-1)).toMatchObject({
      code: 'ERR_USAGE',
      message: expect.stringContaining('needs a PostgreSQL store'),
      hint: expect.stringContaining('postgres://'),
    })
  })

  it('store copy moves a store from a file to PostgreSQL and back: both verify, and the person logs in on each', async () => {
    const file = join(dir, 'data', 'copied-from.store')
    let server = await startServerProcess(dir, passphraseFile, serverArgs(file))
    const secret = await register(server.port, 'copy.person')
    await login(server.port, 'copy.person', secret)
    await server.stop()

    const db = await database()
    const copied = await storeCli('copy', '--from', file, '--to', db.url, '--passphrase-file', passphraseFile)
    expect(copied.code, copied.stderr).toBe(0)
    expect(copied.out[0]).toMatchObject({ event: 'store_copied', from: file, to: db.url })
    for (const store of [file, db.url]) {
      const verified = await storeCli('verify', '--store', store, '--passphrase-file', passphraseFile)
      expect(verified.code, verified.stderr).toBe(0)
      expect(verified.out[0]).toMatchObject({ ok: true, users: 1, audit: { ok: true } })
    }
    const refused = await storeCli('copy', '--from', file, '--to', db.url, '--passphrase-file', passphraseFile)
    expect(refused.err.at(-1)).toMatchObject({
      code: 'ERR_STORE_IO',
      message: expect.stringContaining('already exists'),
    })

    clock.nextStep()
    server = await startServerProcess(dir, passphraseFile, serverArgs(db.url))
    await login(server.port, 'copy.person', secret)
    await server.stop()

    const back = join(dir, 'data', 'copied-back.store')
    const returned = await storeCli('copy', '--from', db.url, '--to', back, '--passphrase-file', passphraseFile)
    expect(returned.code, returned.stderr).toBe(0)
    const verified = await storeCli('verify', '--store', back, '--passphrase-file', passphraseFile)
    expect(verified.code, verified.stderr).toBe(0)
    expect(verified.out[0]).toMatchObject({ ok: true, users: 1, audit: { ok: true } })
    clock.nextStep()
    server = await startServerProcess(dir, passphraseFile, serverArgs(back))
    await login(server.port, 'copy.person', secret)
    await server.stop()
  })

  it('a database restored from an older backup fails `store verify` against an audit anchor kept since', async () => {
    const db = await database()
    let server = await startServerProcess(dir, passphraseFile, serverArgs(db.url))
    const secret = await register(server.port, 'restore.person')
    await server.stop()
    // The backup: a copy of the database as it is now, made the way PostgreSQL copies one.
    const backup = `${db.name}_backup`
    await admin(`CREATE DATABASE ${backup} TEMPLATE ${db.name}`)
    const backupUrl = new URL(db.url)
    backupUrl.pathname = `/${backup}`
    try {
      clock.nextStep()
      server = await startServerProcess(dir, passphraseFile, serverArgs(db.url))
      await login(server.port, 'restore.person', secret)
      await server.stop()
      const now = await storeCli('verify', '--store', db.url, '--passphrase-file', passphraseFile)
      const { n, hash } = (now.out[0] as { audit: { head: { n: number; hash: string } } }).audit.head
      const anchor = `${n}:${hash}`
      const current = await storeCli(
        'verify',
        '--store',
        db.url,
        '--passphrase-file',
        passphraseFile,
        '--audit-anchor',
        anchor,
      )
      expect(current.code, current.stderr).toBe(0)
      // The backup put back in its place: every row authentic, but older than the anchor.
      const restored = await storeCli(
        'verify',
        '--store',
        backupUrl.toString(),
        '--passphrase-file',
        passphraseFile,
        '--audit-anchor',
        anchor,
      )
      expect(restored.code).toBe(1)
      expect(restored.err.at(-1)).toMatchObject({ code: 'ERR_STORE_CORRUPT' })
      expect(restored.out[0]).toMatchObject({ ok: false, audit: { ok: false } })
    } finally {
      await admin(`DROP DATABASE IF EXISTS ${backup} WITH (FORCE)`)
    }
  })

  it('--workers 3: log lines name the worker; a worker SIGKILLed under load loses nothing acknowledged and comes back', async () => {
    const db = await database()
    const server = await startServerProcess(dir, passphraseFile, serverArgs(db.url, ['--workers', '3']))
    try {
      const pids = await workerPids(server, 3)
      const acknowledged = { registered: new Map<string, string>(), sessions: new Map<string, string>() }
      let killed = false
      let failures = 0
      // Four clients register and log in, one name after another; after a few acknowledgements
      // one worker is killed with whatever it holds in flight.
      const client = async (c: number) => {
        for (let i = 0; i < 8; i++) {
          const name = `w${c}.${i}`
          try {
            const secret = await register(server.port, name)
            acknowledged.registered.set(name, secret)
            acknowledged.sessions.set(await login(server.port, name, secret), name)
          } catch (error) {
            // Only what the killed worker held may fail, and only as a lost connection.
            expect(killed).toBe(true)
            expect(error).toBeInstanceOf(SecureLoginError)
            failures += 1
          }
          if (!killed && acknowledged.sessions.size >= 6) {
            killed = true
            process.kill(pids.get(2)!, 'SIGKILL')
          }
        }
      }
      await Promise.all([1, 2, 3, 4].map(client))
      expect(killed).toBe(true)
      expect(failures).toBeLessThanOrEqual(4)

      // The first process says so, starts it again, and it serves.
      const lines = json(server.run.stdout())
      expect(lines).toContainEqual(expect.objectContaining({ event: 'worker_exited', worker: 2, signal: 'SIGKILL' }))
      await waitFor(() => json(server.run.stdout()).some((line) => line.event === 'worker_restarted'))
      // Each login is logged by the worker that made it, by number (the killed worker's last
      // lines, not yet written when it died, are lost with it).
      const logins = json(server.run.stdout()).filter((line) => line.event === 'login_ok')
      expect(logins.length).toBeGreaterThan(acknowledged.sessions.size / 2)
      for (const line of logins) expect([1, 2, 3]).toContain(line.worker)

      const store = await openAt(db.url)
      try {
        for (const name of acknowledged.registered.keys()) expect(await store.has(`user/${name}`), name).toBe(true)
        for (const id of acknowledged.sessions.keys()) expect(await store.has(`session/${id}`), id).toBe(true)
      } finally {
        await store.close()
      }
      expect(acknowledged.registered.size).toBeGreaterThanOrEqual(28)
    } finally {
      await server.stop()
    }
    const verified = await storeCli('verify', '--store', db.url, '--passphrase-file', passphraseFile)
    expect(verified.code, verified.stderr).toBe(0)
    expect(verified.out[0]).toMatchObject({ ok: true, audit: { ok: true } })
  })

  it('TLS to the database when the URL asks: verify-full against its certificate works, another certificate is refused', async () => {
    const cluster = await privateCluster({ tls: true })
    if (!cluster) return
    try {
      const url = (root: string) => `${cluster.url}?sslmode=verify-full&sslrootcert=${join(cluster.home, root)}`
      const made = await storeCli(
        'init',
        '--store',
        url('server.crt'),
        '--passphrase-file',
        passphraseFile,
        '--kdf-logn',
        '10',
      )
      expect(made.code, made.stderr).toBe(0)
      const verified = await storeCli('verify', '--store', url('server.crt'), '--passphrase-file', passphraseFile)
      expect(verified.code, verified.stderr).toBe(0)
      const refused = await storeCli('verify', '--store', url('other.crt'), '--passphrase-file', passphraseFile)
      expect(refused.code).toBe(1)
      expect(refused.err.at(-1)).toMatchObject({ code: expect.stringMatching(/^ERR_STORE_(IO|UNAVAILABLE)$/) })
    } finally {
      cluster.remove()
    }
  })

  it('PostgreSQL restarted under load (a cluster of its own): calls get ERR_STORE_UNAVAILABLE, the servers reconnect, nothing acknowledged is lost', async () => {
    const cluster = await privateCluster()
    if (!cluster) return
    try {
      await survivesOutage(cluster.url, cluster.url, 'restart', cluster.stop, cluster.start)
    } finally {
      cluster.remove()
    }
  })

  it('the database going away under load: calls get ERR_STORE_UNAVAILABLE, the servers reconnect, nothing acknowledged is lost', async () => {
    const db = await database()
    const proxy = await startProxy(5432)
    const viaProxy = new URL(db.url)
    viaProxy.port = String(proxy.port)
    try {
      await survivesOutage(viaProxy.toString(), db.url, 'relay', proxy.down, proxy.up)
    } finally {
      await proxy.close()
    }
  })
})

/**
 * Two workers on `store`: four people registered, then, while the database is down, a
 * registration and a login of each at once (every one ERR_STORE_UNAVAILABLE with its hint), then
 * the same server processes (no restart of theirs: the pools reconnect by themselves) register
 * and log everyone in, and every acknowledged account and session is in the database.
 */
async function survivesOutage(store: string, direct: string, prefix: string, down: () => void, up: () => void) {
  const server = await startServerProcess(dir, passphraseFile, serverArgs(store, ['--workers', '2']))
  try {
    clock.nextStep()
    const before = new Map<string, string>()
    for (let i = 0; i < 4; i++) before.set(`${prefix}.${i}`, await register(server.port, `${prefix}.${i}`))
    down()
    const during = await Promise.all(
      [
        register(server.port, `${prefix}.during`),
        ...[...before].map(([name, secret]) => login(server.port, name, secret)),
      ].map((attempt) =>
        attempt.then(
          () => undefined,
          (error: unknown) => error,
        ),
      ),
    )
    for (const error of during) {
      expect(error).toBeInstanceOf(SecureLoginError)
      expect(error).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE', hint: expect.stringContaining('retry') })
    }
    up()
    const after = await waitFor(async () => register(server.port, `${prefix}.after`).catch(() => undefined))
    const sessions = [await login(server.port, `${prefix}.after`, after)]
    for (const [name, secret] of before) sessions.push(await login(server.port, name, secret))
    const opened = await openAt(direct)
    try {
      for (const name of [...before.keys(), `${prefix}.after`]) expect(await opened.has(`user/${name}`)).toBe(true)
      for (const id of sessions) expect(await opened.has(`session/${id}`)).toBe(true)
    } finally {
      await opened.close()
    }
    expect(server.log()).not.toContain(URL_PASSWORD)
  } finally {
    await server.stop()
  }
}

/**
 * A PostgreSQL cluster of this test's own (initdb in a temporary directory, on a free port), so
 * that it can be stopped and started for real while the other test files go on using the
 * machine's. As root, its programs run as the `postgres` user (initdb refuses root).
 */
async function privateCluster(
  opts: { tls?: boolean } = {},
): Promise<{ url: string; home: string; stop(): void; start(): void; remove(): void } | undefined> {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort() : []
  const bin = versions.length > 0 ? join('/usr/lib/postgresql', versions.at(-1)!, 'bin') : undefined
  if (!bin || !existsSync(join(bin, 'initdb'))) {
    if (process.env.CI) throw new Error("PostgreSQL's initdb is not installed (CI installs postgresql: see .ci/run)")
    console.warn("skipping: PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin)")
    return undefined
  }
  const home = mkdtempSync(join(tmpdir(), 'securelogin-pg-'))
  const asRoot = process.getuid?.() === 0
  if (asRoot) execFileSync('chown', ['postgres', home])
  const run = (args: string[]) =>
    asRoot
      ? execFileSync('su', ['postgres', '-c', args.map((a) => `'${a}'`).join(' ')], { stdio: 'ignore' })
      : execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' })
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const data = join(home, 'data')
  run([join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres'])
  let options = `-p ${port} -k ${home} -c listen_addresses=127.0.0.1`
  if (opts.tls) {
    // A certificate for 127.0.0.1, which a client with sslmode=verify-full checks by name.
    for (const [name, subject] of [
      ['server', '127.0.0.1'],
      ['other', 'another database'],
    ] as const)
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-keyout',
          join(home, `${name}.key`),
          '-out',
          join(home, `${name}.crt`),
          '-subj',
          `/CN=${subject}`,
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      )
    if (asRoot) execFileSync('chown', ['postgres', join(home, 'server.key'), join(home, 'server.crt')])
    options += ` -c ssl=on -c ssl_cert_file=${join(home, 'server.crt')} -c ssl_key_file=${join(home, 'server.key')}`
  }
  const start = () => run([join(bin, 'pg_ctl'), '-D', data, '-o', options, '-l', join(home, 'log'), '-w', 'start'])
  const stop = () => run([join(bin, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', 'stop'])
  start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    home,
    start,
    stop,
    remove() {
      try {
        stop()
      } catch {
        // already stopped
      }
      rmSync(home, { recursive: true, force: true })
    },
  }
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

async function workerPids(server: ServerProcess, count: number): Promise<Map<number, number>> {
  const pids = new Map<number, number>()
  await waitFor(() => {
    for (const line of json(server.run.stdout()))
      if (line.event === 'worker_listening') pids.set(Number(line.worker), Number(line.pid))
    return pids.size === count
  })
  return pids
}

async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error('waited in vain')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * A TCP relay in front of the database: `down` cuts every connection and refuses new ones,
 * what the servers see of a PostgreSQL restart, without restarting the cluster other test
 * files are using at the same moment.
 */
async function startProxy(target: number) {
  const sockets = new Set<Socket>()
  let listening = true
  const server: Server = createServer((socket) => {
    if (!listening) {
      socket.destroy()
      return
    }
    const upstream = createConnection(target)
    for (const s of [socket, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    socket.pipe(upstream).pipe(socket)
    socket.on('close', () => upstream.destroy())
    upstream.on('close', () => socket.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    down() {
      listening = false
      for (const socket of sockets) socket.destroy()
    },
    up() {
      listening = true
    },
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
