import { execFile, execFileSync } from 'node:child_process'
import { chmod, copyFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derivePrivateKey } from '../../src/auth/srp-client.js'
import { call } from '../../src/client/calls.js'
import type { ServerConnection } from '../../src/client/connection.js'
import { authenticateWith, submitOtp } from '../../src/client/login.js'
import { Lab, type Account } from '../helpers/accounts.js'
import { killAllCli, runCliToEnd, type CliRun } from '../helpers/cli.js'
import { GEN_CERT, makeTempDir } from '../helpers/env.js'
import { havePostgres, makeDatabase, type TestDatabase } from '../helpers/postgres.js'
import { noteSecret } from '../helpers/secrets.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { requireTool } from '../helpers/tools.js'

// The certificate swapped under a running server (SIGHUP, src/cli/certs.ts): new connections
// see the new one, as openssl s_client sees it, and a session opened before goes on over its
// connection; a pair that fails the start's checks (a key not the certificate's, a key others
// can read) is refused and the previous pair stays. `--print-fingerprint` agrees with both
// openssl and the server. With --workers, the first process passes SIGHUP on to each worker.

const canRun = requireTool('openssl') && requireTool('oathtool')

/** A new pair in `dir` (scripts/gen-cert.sh --force), its key noted as a secret; its fingerprint. */
async function newPair(dir: string): Promise<string> {
  const out = execFileSync('bash', [GEN_CERT, '--force', '--out', dir], { encoding: 'utf8' })
  const key = await readFile(join(dir, 'server.key'), 'utf8')
  for (const line of key.split('\n')) if (!line.startsWith('-----')) noteSecret('private key', line)
  return /^sha256 (\S+)$/m.exec(out)![1]!
}

/** The fingerprint of the certificate a TLS 1.3 handshake with 127.0.0.1:PORT shows, by openssl. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-servername', 'localhost'],
      { timeout: 15_000, encoding: 'utf8' },
      (_error, stdout) => {
        try {
          const x509 = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], {
            input: stdout,
            encoding: 'utf8',
          })
          resolve(x509.trim().split('=')[1]!)
        } catch (error) {
          reject(error)
        }
      },
    )
    child.stdin!.end()
  })
}

/** `securelogin server --print-fingerprint --certs DIR` (with --json: its one line). */
async function printed(dir: string, json = false) {
  const result = await runCliToEnd(['server', '--print-fingerprint', '--certs', dir, ...(json ? ['--json'] : [])], '')
  return { ...result, out: result.stdout.trim() }
}

/** The next log line of one of these events (the lines between are the server's other news). */
async function nextEvent(run: CliRun, events: string[]): Promise<Record<string, any>> {
  for (;;) {
    const line = JSON.parse(await run.nextLine(20_000))
    if (events.includes(line.event)) return line
  }
}
const RELOAD = ['certificate_reloaded', 'certificate_reload_refused']

describe.runIf(canRun)('SIGHUP: the certificate read again', () => {
  let lab: Lab
  let ada: Account
  let certs: string

  beforeAll(async () => {
    lab = await Lab.start('cert-reload')
    certs = join(lab.dir, 'certs')
    ada = await lab.registerDirect('adacert', { invite: await lab.bootstrapToken() })
  })
  afterAll(async () => {
    await killAllCli()
    await lab?.close()
  })

  /** A login kept open: a session over a connection made with the first certificate. */
  async function heldSession(): Promise<ServerConnection> {
    const conn = await lab.connect()
    await authenticateWith(conn, ada.name, ({ salt, kdf }) =>
      derivePrivateKey({ salt, username: ada.name, password: ada.password, kdf }),
    )
    const { token } = await submitOtp(conn, lab.codeFor(ada))
    noteSecret('session token', token!)
    return conn
  }

  it('--print-fingerprint prints what the server and openssl show, without a passphrase; a missing file fails', async () => {
    const text = await printed(certs)
    expect(text.code).toBe(0)
    expect(text.out).toBe(lab.server.fingerprint)
    expect(await servedFingerprint(lab.port)).toBe(lab.server.fingerprint)
    const json = await printed(certs, true)
    expect(JSON.parse(json.out)).toMatchObject({
      event: 'certificate_fingerprint',
      path: join(certs, 'server.crt'),
      fingerprint: lab.server.fingerprint,
    })
    const missing = await printed(join(lab.dir, 'nowhere'), true)
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('')
    expect(JSON.parse(missing.stderr.trim().split('\n').at(-1)!)).toMatchObject({
      event: 'error',
      code: 'ERR_CONFIG',
      message: `${join(lab.dir, 'nowhere', 'server.crt')} does not exist`,
    })
  })

  it('a new pair: new connections see it; the session opened before goes on; a bad pair is refused and the good one stays', async () => {
    const first = lab.server.fingerprint
    const conn = await heldSession()
    try {
      expect((await call(conn, 'whoami', {})).user).toBe(ada.name)

      const second = await newPair(certs)
      expect(second).not.toBe(first)
      lab.server.run.kill('SIGHUP')
      expect(await nextEvent(lab.server.run, RELOAD)).toMatchObject({
        event: 'certificate_reloaded',
        level: 'info',
        path: join(certs, 'server.crt'),
        fingerprint: second,
        previous: first,
      })
      expect(await servedFingerprint(lab.port)).toBe(second)
      expect((await printed(certs)).out).toBe(second)
      // The session's connection still has the first certificate's TLS session, and answers.
      expect((await call(conn, 'whoami', {})).user).toBe(ada.name)
      // A client pinned to the new certificate file connects.
      const fresh = await lab.connect()
      fresh.close()

      // The certificate of this pair with the key of another: refused, and the second stays.
      const other = join(lab.dir, 'other-pair')
      await newPair(other)
      await copyFile(join(other, 'server.key'), join(certs, 'server.key'))
      await chmod(join(certs, 'server.key'), 0o600)
      lab.server.run.kill('SIGHUP')
      const refused = await nextEvent(lab.server.run, RELOAD)
      expect(refused).toMatchObject({
        event: 'certificate_reload_refused',
        level: 'warn',
        fingerprint: second,
        reason: `${join(certs, 'server.key')} is not the key of ${join(certs, 'server.crt')}`,
      })
      expect(await servedFingerprint(lab.port)).toBe(second)

      // A key others can read: refused too, before it is used.
      await chmod(join(certs, 'server.key'), 0o644)
      lab.server.run.kill('SIGHUP')
      expect((await nextEvent(lab.server.run, RELOAD)).reason).toBe(
        `private key ${join(certs, 'server.key')} is readable by others (mode 0644)`,
      )
      expect(await servedFingerprint(lab.port)).toBe(second)
      expect((await call(conn, 'whoami', {})).user).toBe(ada.name)
      expect(lab.server.run.child.exitCode).toBeNull()
    } finally {
      conn.close()
    }
  })
})

describe.runIf(canRun && (await havePostgres()))('SIGHUP with --workers', () => {
  let dir: string
  let remove: () => Promise<void>
  let db: TestDatabase
  let server: ServerProcess | undefined

  beforeAll(async () => {
    ;({ dir, remove } = await makeTempDir('cert-reload-workers'))
    db = await makeDatabase()
  })
  afterAll(async () => {
    await server?.stop()
    await killAllCli()
    await db?.drop()
    await remove?.()
  })

  it('the first process passes it on: each worker reloads, and every new connection sees the new pair', async () => {
    const passphraseFile = await writePassphraseFile(dir, 'cert reload workers passphrase')
    server = await startServerProcess(dir, passphraseFile, ['--store', db.url, '--workers', '2'])
    const first = server.fingerprint
    const second = await newPair(join(dir, 'certs'))
    server.run.kill('SIGHUP')
    const reloaded = [await nextEvent(server.run, RELOAD), await nextEvent(server.run, RELOAD)]
    expect(reloaded.map((line) => line.worker).sort()).toEqual([1, 2])
    for (const line of reloaded) expect(line).toMatchObject({ event: 'certificate_reloaded', fingerprint: second })
    expect(second).not.toBe(first)
    // Whichever worker accepts it.
    for (let i = 0; i < 6; i++) expect(await servedFingerprint(server.port)).toBe(second)
    expect(await server.stop()).toBe(0)
  })
})
