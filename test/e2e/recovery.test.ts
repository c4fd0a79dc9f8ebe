import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derivePrivateKey } from '../../src/auth/srp-client.js'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import { RECOVERY_CODE_PATTERN } from '../../src/auth/recovery-codes.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticateWith, submitRecoveryCode, type LoginResult } from '../../src/client/login.js'
import { call } from '../../src/client/calls.js'
import { killAllCli, runCli, runCliToEnd } from '../helpers/cli.js'
import { makeTempDir } from '../helpers/env.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { oathtoolCode, requireTool } from '../helpers/tools.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'

// Recovery codes as the real CLI shows and takes them, against the real server process: the ten
// codes at enrolment, a code typed loosely or on the next stdin line, how many are left and the
// warning when few are, a malformed code refused before connecting, and `securelogin
// recovery-codes`. What the server decides (each code once, also across a restart; only slow
// hashes stored; renewal only after a login with a TOTP code, replacing every code; the count):
// test/conversation/recovery.test.ts.

const PASSPHRASE = 'recovery test passphrase 3d9a'
const PASSWORD = 'recovery test password 86 apples'
const hasOathtool = requireTool('oathtool')

let dir: string
let remove: () => Promise<void>
let server: ServerProcess
let clock: FileClock
let totpSecret = ''
let codes: string[] = []

const client = (extra: string[] = []) => [
  '--server',
  `127.0.0.1:${server.port}`,
  '--ca',
  join(dir, 'certs', 'server.crt'),
  '--json',
  ...extra,
]
const env = () => ({ SECURELOGIN_HOME: join(dir, 'home') })
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!)
const warning = /recovery codes? left/

async function loginWithRecovery(code: string | undefined, stdin = `${PASSWORD}\n`) {
  const flag = code === undefined ? ['--recovery-code'] : ['--recovery-code', code]
  return runCliToEnd(['login', ...client(['--user', 'bob', '--password-stdin', ...flag])], stdin, { env: env() })
}

/** bob's SRP private key: one 64 MiB password stretch for every login made in this process. */
let privateKey: Promise<string> | undefined

/**
 * A login with a recovery code made in this process over TLS, without a CLI start-up: to spend
 * codes before the CLI run under test, and to try codes the CLI printed.
 */
async function recoveryLoginDirect(code: string): Promise<LoginResult> {
  const conn = await connect()
  try {
    return await recoveryLogin(conn, code)
  } finally {
    conn.close()
  }
}

/** A TLS connection to the server, pinned to its certificate. */
async function connect(): Promise<ServerConnection> {
  const certFile = join(dir, 'certs', 'server.crt')
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.port,
    trust: { kind: 'ca', ca: await readFile(certFile), caFile: certFile },
  })
}

/** bob's password and a recovery code on `conn`: the connection is logged in after it. */
async function recoveryLogin(conn: ServerConnection, code: string): Promise<LoginResult> {
  await authenticateWith(
    conn,
    'bob',
    ({ salt, kdf }) => (privateKey ??= derivePrivateKey({ salt, username: 'bob', password: PASSWORD, kdf })),
  )
  const result = await submitRecoveryCode(conn, code)
  noteSecret('session token', result.token!)
  return result
}

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('recovery'))
  const passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  clock = new FileClock(dir)
  server = await startServerProcess(dir, passphraseFile, ['--clock-file', clock.file, '--registration', 'open'])
})

afterAll(async () => {
  await server?.stop()
  await killAllCli()
  await remove?.()
})

describe.runIf(hasOathtool)('recovery codes', () => {
  it('shows ten distinct codes once, at enrolment, in the --json output', async () => {
    const run = runCli(['register', ...client(['--user', 'bob', '--password-stdin'])], { env: env() })
    run.write(PASSWORD)
    totpSecret = secretFromOtpauthUri(JSON.parse(await run.nextLine()).otpauthUri)!
    run.write(oathtoolCode(totpSecret, clock.nextStep()))
    const registered = JSON.parse(await run.nextLine())
    expect((await run.done).code).toBe(0)
    expect(registered).toMatchObject({ event: 'registered', user: 'bob' })
    codes = registered.recoveryCodes
    expect(codes).toHaveLength(10)
    expect(new Set(codes).size).toBe(10)
    for (const code of codes) expect(code).toMatch(RECOVERY_CODE_PATTERN)
    for (const code of codes) expect(server.log()).not.toContain(code)
  })

  it('--recovery-code alone reads the code from the next stdin line, after the password; no warning at four left', async () => {
    // Five spent without the CLI, so that this login leaves four and the next one three.
    for (const code of codes.slice(0, 5)) await recoveryLoginDirect(code)
    const fromStdin = await loginWithRecovery(undefined, `${PASSWORD}\n${codes[5]}\n`)
    expect(fromStdin.code).toBe(0)
    expect(lastJson(fromStdin.stdout)).toMatchObject({ event: 'login', user: 'bob', recoveryCodesLeft: 4 })
    expect(fromStdin.stderr).not.toMatch(warning)
  })

  it('logs in with a code typed loosely, says how many are left, and warns on stderr at three', async () => {
    const loose = codes[6]!.toUpperCase().replace('-', ' ')
    const result = await loginWithRecovery(loose)
    expect(result.code).toBe(0)
    expect(lastJson(result.stdout)).toMatchObject({ event: 'login', user: 'bob', recoveryCodesLeft: 3 })
    expect(result.stderr).toContain('3 recovery codes left')
  })

  it('refuses a code that is not a recovery code, and any recovery code for renewing, before connecting (exit 2)', async () => {
    const malformed = await loginWithRecovery('not-a-code')
    expect(malformed.code).toBe(2)
    expect(JSON.parse(malformed.stderr.trim())).toMatchObject({ code: 'ERR_USAGE' })
    expect(server.log()).not.toContain('not-a-code')
    const renewal = await runCliToEnd(
      ['recovery-codes', ...client(['--user', 'bob', '--password-stdin', '--recovery-code', codes[8]!])],
      `${PASSWORD}\n`,
      { env: env() },
    )
    expect(renewal.code).toBe(2)
    expect(JSON.parse(renewal.stderr.trim())).toMatchObject({ code: 'ERR_USAGE' })
  })

  it('`securelogin recovery-codes` with a TOTP code prints ten new codes, which replace the old', async () => {
    const result = await runCliToEnd(
      [
        'recovery-codes',
        ...client(['--user', 'bob', '--password-stdin', '--otp', oathtoolCode(totpSecret, clock.nextStep())]),
      ],
      `${PASSWORD}\n`,
      { env: env() },
    )
    expect(result.code).toBe(0)
    const renewed = lastJson(result.stdout)
    expect(renewed).toMatchObject({ event: 'recovery_codes', user: 'bob' })
    expect(renewed.recoveryCodes).toHaveLength(10)
    for (const code of renewed.recoveryCodes) {
      expect(code).toMatch(RECOVERY_CODE_PATTERN)
      expect(codes).not.toContain(code)
    }
    // The printed codes are the live ones: an old unused code is gone, a new one works.
    await expect(recoveryLoginDirect(codes[9]!)).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    expect(await recoveryLoginDirect(renewed.recoveryCodes[0])).toMatchObject({ recoveryCodesLeft: 9 })
    codes = renewed.recoveryCodes
  })

  it("an authenticator replaced with a recovery code is told to the owner's session at its next command, once", async () => {
    // Someone with bob's password and one recovery code replaces his authenticator.
    const conn = await connect()
    try {
      await recoveryLogin(conn, codes[1]!)
      const { otpauthUri } = await call(conn, 'totp_reset', {})
      const secret = secretFromOtpauthUri(otpauthUri)!
      noteSecret('TOTP secret', secret)
      await call(conn, 'totp_confirm', { code: oathtoolCode(secret, clock.nextStep()) })
    } finally {
      conn.close()
    }
    // bob's saved session (the last test's login) hears of it on stderr, beside whoami's answer.
    const first = await runCliToEnd(['whoami', ...client()], '', { env: env() })
    expect(first.code).toBe(0)
    expect(lastJson(first.stdout)).toMatchObject({ user: 'bob' })
    const notice = first.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line))
      .find((event) => event.event === 'notice')
    expect(notice).toMatchObject({
      event: 'notice',
      kind: 'totp_reset_with_recovery_code',
      address: '127.0.0.1',
      renewalHeldUntil: expect.any(String),
    })
    const again = await runCliToEnd(['whoami', ...client()], '', { env: env() })
    expect(again.code).toBe(0)
    expect(again.stderr).not.toContain('notice')
  })
})
