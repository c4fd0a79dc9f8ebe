import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import { killAllCli, runCli, runCliToEnd } from '../helpers/cli.js'
import { makeTempDir } from '../helpers/env.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { oathtoolCode, requireTool } from '../helpers/tools.js'
import { storeFingerprint, storeKindAvailable, storeOf } from '../helpers/store-kind.js'
import { FileClock } from '../helpers/clock.js'

// The real server as a child process on a real TLS socket, the real CLI as child processes,
// the real store (a file on disk, or a PostgreSQL database: test/helpers/store-kind.ts), and
// oathtool computing every TOTP code.

const PASSPHRASE = 'e2e admin passphrase 7c1f'
const PASSWORD = 'e2e password for the first user 51'
// Once on each store kind (vitest.config.ts): skipped, with one line, without oathtool or the
// kind's server (PostgreSQL); under CI either fails instead.
const canRun = requireTool('oathtool') && (await storeKindAvailable())

let dir: string
let remove: () => Promise<void>
let passphraseFile: string
let server: ServerProcess
let home: string
let totpSecret = ''
const serverLogs: string[] = []
const clientOutputs: string[] = []

const client = (extra: string[] = []) => [
  '--server',
  `127.0.0.1:${server.port}`,
  '--ca',
  join(dir, 'certs', 'server.crt'),
  '--json',
  ...extra,
]
const env = () => ({ SECURELOGIN_HOME: home })
// Every code is for a fresh time step: the server refuses a code it accepted before.
let clock: FileClock
const now = () => clock.nextStep()

async function login(user: string, password: string, code: string, extra: string[] = []) {
  const result = await runCliToEnd(
    ['login', ...client(['--user', user, '--password-stdin', '--otp', code, ...extra])],
    `${password}\n`,
    { env: env() },
  )
  clientOutputs.push(result.stdout, result.stderr)
  return result
}

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('e2e'))
  home = join(dir, 'home')
  passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  clock = new FileClock(dir)
  server = await startServerProcess(dir, passphraseFile, ['--clock-file', clock.file, '--registration', 'open'])
})

afterEach(() => {
  serverLogs.push(server.log())
})

afterAll(async () => {
  await server?.stop()
  await killAllCli()
  await remove?.()
})

describe.runIf(canRun)('register and log in through the real CLI', () => {
  it('made its certificate and store on first run, and says where it listens', async () => {
    const crt = await readFile(join(dir, 'certs', 'server.crt'), 'utf8')
    expect(crt).toContain('BEGIN CERTIFICATE')
    expect(server.port).toBeGreaterThan(0)
    expect(server.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  })

  it('registers alice with a code computed by oathtool', async () => {
    const run = runCli(['register', ...client(['--user', 'Alice', '--password-stdin'])], { env: env() })
    run.write(PASSWORD)
    const enrol = JSON.parse(await run.nextLine())
    expect(enrol.event).toBe('enrol')
    expect(enrol.otpauthUri).toMatch(
      /^otpauth:\/\/totp\/securelogin:alice\?secret=[A-Z2-7]{32}&issuer=securelogin&algorithm=SHA1&digits=6&period=30$/,
    )
    totpSecret = secretFromOtpauthUri(enrol.otpauthUri)!
    run.write(oathtoolCode(totpSecret, now()))
    expect(JSON.parse(await run.nextLine())).toEqual({
      event: 'registered',
      user: 'alice',
      recoveryCodes: expect.any(Array),
    })
    const result = await run.done
    clientOutputs.push(result.stdout, result.stderr)
    expect(result.code).toBe(0)
  })

  it('refuses a common password, or one containing the name, in the client: the server hears nothing', async () => {
    for (const password of ['baseball1', 'Carol-the-great 2026']) {
      const result = await runCliToEnd(
        ['register', ...client(['--user', 'carol', '--password-stdin'])],
        `${password}\n`,
        { env: env() },
      )
      expect(result.code).toBe(1)
      expect(JSON.parse(result.stderr.trim())).toMatchObject({ event: 'error', code: 'ERR_WEAK_PASSWORD' })
      expect(result.stderr).not.toContain(password)
    }
    expect(server.log()).not.toContain('"user":"carol"')
  })

  it('refuses a second registration of the same name with ERR_USERNAME_TAKEN', async () => {
    const result = await runCliToEnd(
      ['register', ...client(['--user', 'alice', '--password-stdin'])],
      `another password 9\n`,
      { env: env() },
    )
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({ event: 'error', code: 'ERR_USERNAME_TAKEN' })
  })

  it('logs alice in with password and oathtool code', async () => {
    const result = await login('alice', PASSWORD, oathtoolCode(totpSecret, now()))
    expect(result.code).toBe(0)
    const event = JSON.parse(result.stdout.trim())
    expect(event).toMatchObject({ event: 'login', user: 'alice', role: 'regular_user' })
    expect(Date.parse(event.expiresAt)).toBeGreaterThan(Date.now())
  })

  it('reads the code from the next stdin line when --otp is absent', async () => {
    const result = await runCliToEnd(
      ['login', ...client(['--user', 'alice', '--password-stdin'])],
      `${PASSWORD}\n${oathtoolCode(totpSecret, now())}\n`,
      { env: env() },
    )
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ event: 'login', user: 'alice' })
  })

  it.each([
    ['a wrong password', 'alice', 'not the password', true],
    ['a wrong code', 'alice', PASSWORD, false],
    ['an unknown user', 'mallory', PASSWORD, true],
  ])('fails %s with ERR_AUTH_FAILED and the same words', async (_name, user, password, rightCode) => {
    const code = rightCode ? oathtoolCode(totpSecret, now()) : oathtoolCode(totpSecret, now() + 3600)
    const result = await login(user, password, code)
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(JSON.parse(result.stderr.trim())).toEqual({
      event: 'error',
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
      hint: "check the user name, the password, and this machine's clock; codes change every 30 s",
    })
  })

  it('prints errors for people without --json', async () => {
    const result = await runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server.port}`,
        '--ca',
        join(dir, 'certs', 'server.crt'),
        '--user',
        'alice',
        '--password-stdin',
        '--otp',
        '000000',
      ],
      'wrong password here\n',
      { env: env() },
    )
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      "securelogin: error: authentication failed (ERR_AUTH_FAILED)\nsecurelogin: hint: check the user name, the password, and this machine's clock; codes change every 30 s\n",
    )
  })

  it('refuses an unknown server without --ca (ERR_TLS_UNTRUSTED, hint names the ways in)', async () => {
    // A client that never met this server (the home above remembers it: its logins gave --ca).
    const stranger = join(dir, 'home-unknown')
    await mkdir(stranger, { recursive: true })
    const result = await runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server.port}`,
        '--user',
        'alice',
        '--password-stdin',
        '--otp',
        '000000',
        '--json',
      ],
      `${PASSWORD}\n`,
      { env: { SECURELOGIN_HOME: stranger } },
    )
    expect(result.code).toBe(1)
    const error = JSON.parse(result.stderr.trim())
    expect(error).toMatchObject({ code: 'ERR_TLS_UNTRUSTED' })
    expect(error.hint).toContain('servers trust')
    expect(error.hint).toContain('--ca')
    expect(error.hint).toContain('--accept-fingerprint')
  })

  it('trusts on first use with --accept-fingerprint, then remembers the server', async () => {
    const newcomer = join(dir, 'home-tofu')
    await mkdir(newcomer, { recursive: true })
    const env = () => ({ SECURELOGIN_HOME: newcomer })
    const base = ['--server', `127.0.0.1:${server.port}`, '--user', 'alice', '--password-stdin', '--json']
    const wrong = await runCliToEnd(
      ['login', ...base, '--otp', '000000', '--accept-fingerprint', 'AB'.repeat(32)],
      `${PASSWORD}\n`,
      { env: env() },
    )
    expect(JSON.parse(wrong.stderr.trim())).toMatchObject({ code: 'ERR_TLS_UNTRUSTED' })
    const first = await runCliToEnd(
      ['login', ...base, '--otp', oathtoolCode(totpSecret, now()), '--accept-fingerprint', server.fingerprint],
      `${PASSWORD}\n`,
      { env: env() },
    )
    expect(first.code).toBe(0)
    const known = await readFile(join(newcomer, 'known_servers'), 'utf8')
    expect(known).toContain(`127.0.0.1:${server.port} ${server.fingerprint}`)
    const again = await runCliToEnd(['login', ...base, '--otp', oathtoolCode(totpSecret, now())], `${PASSWORD}\n`, {
      env: env(),
    })
    expect(again.code).toBe(0)
  })

  it('refuses a changed certificate as ssh does (ERR_TLS_CHANGED)', async () => {
    const otherHome = join(dir, 'home-changed')
    await mkdir(otherHome, { recursive: true })
    await writeFile(join(otherHome, 'known_servers'), `127.0.0.1:${server.port} ${'AB:'.repeat(31)}AB\n`)
    const result = await runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server.port}`,
        '--user',
        'alice',
        '--password-stdin',
        '--otp',
        '000000',
        '--json',
      ],
      `${PASSWORD}\n`,
      { env: { SECURELOGIN_HOME: otherHome } },
    )
    expect(result.code).toBe(1)
    const error = JSON.parse(result.stderr.trim())
    expect(error.code).toBe('ERR_TLS_CHANGED')
    expect(error.hint).toContain(`servers forget 127.0.0.1:${server.port}`)
  })

  it('gives a usage error (exit 2) for a script without --password-stdin', async () => {
    const result = await runCliToEnd(['login', ...client(['--user', 'alice'])], '', { env: env() })
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({ code: 'ERR_USAGE' })
  })

  it('never accepts a code twice, nor an older one; stops on SIGTERM with exit 0, restarts with the same passphrase, and alice still logs in, but not with a code used before (RFC 6238 5.2)', async () => {
    const code = oathtoolCode(totpSecret, now())
    expect((await login('alice', PASSWORD, code)).code).toBe(0)
    const again = await login('alice', PASSWORD, code)
    expect(again.code).toBe(1)
    expect(JSON.parse(again.stderr.trim())).toMatchObject({ code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
    // One step back is inside the window of clock skew, but older than the code just used.
    expect((await login('alice', PASSWORD, oathtoolCode(totpSecret, clock.seconds - 30))).code).toBe(1)
    expect(await server.stop()).toBe(0)
    serverLogs.push(server.log())
    server = await startServerProcess(dir, passphraseFile, ['--clock-file', clock.file, '--registration', 'open'])
    expect((await login('alice', PASSWORD, code)).code).toBe(1)
    expect(server.log()).toContain('"stage":"otp_replayed"')
    const result = await login('alice', PASSWORD, oathtoolCode(totpSecret, now()))
    expect(result.code).toBe(0)
  })

  it('refuses a wrong passphrase, exits non-zero, and leaves the store unchanged (the file byte for byte, every row of a database)', async () => {
    expect(await server.stop()).toBe(0)
    serverLogs.push(server.log())
    const before = await storeFingerprint(dir)
    const wrongFile = await writePassphraseFile(dir, 'not the passphrase', 'wrong-passphrase')
    const result = await runCliToEnd(
      ['server', '--port', '0', '--store', storeOf(dir), '--certs', join(dir, 'certs'), '--passphrase-file', wrongFile],
      '',
    )
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('securelogin: error: wrong passphrase or damaged store (ERR_STORE_BAD_PASSPHRASE)')
    expect(await storeFingerprint(dir)).toBe(before)
  })

  it('refuses to start with no terminal and no passphrase file (ERR_USAGE, exit 2)', async () => {
    const result = await runCliToEnd(
      ['server', '--port', '0', '--store', storeOf(dir), '--certs', join(dir, 'certs')],
      '',
    )
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('(ERR_USAGE)')
    expect(result.stderr).toContain('securelogin: hint: pass --passphrase-file')
  })

  it('logged nothing secret: no password, passphrase, TOTP secret or verifier in the server log', async () => {
    const serverLog = [...serverLogs, server.log()].join('\n')
    expect(serverLog).toContain('"event":"registered"')
    expect(serverLog).toContain('"event":"login_failed"')
    for (const secret of [PASSWORD, PASSPHRASE, totpSecret]) expect(serverLog).not.toContain(secret)
    // A verifier is 512 hex digits; no run of hex that long belongs in a log.
    expect(serverLog).not.toMatch(/[0-9a-fA-F]{128}/)
    // The client prints the enrolment URI (that is its job) but never the password or passphrase.
    const clientOutput = clientOutputs.join('\n')
    for (const secret of [PASSWORD, PASSPHRASE]) expect(clientOutput).not.toContain(secret)
  })
})
