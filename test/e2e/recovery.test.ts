import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import { RECOVERY_CODE_PATTERN } from '../../src/auth/recovery-codes.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticate, renewRecoveryCodes, submitRecoveryCode } from '../../src/client/login.js'
import { openStore } from '../../src/store/index.js'
import { killAllCli, runCli, runCliToEnd } from '../helpers/cli.js'
import { makeTempDir } from '../helpers/env.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { oathtoolCode, requireTool } from '../helpers/tools.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'
import { getRecovery, getUser } from '../helpers/records.js'

// Recovery codes through the real server process and the real CLI: ten at enrolment, each
// accepted once (also across a restart), stored only as slow hashes, and replaced all at once
// by `securelogin recovery-codes` after a login with a TOTP code.

const PASSPHRASE = 'recovery test passphrase 3d9a'
const PASSWORD = 'recovery test password 86 apples'
const hasOathtool = requireTool('oathtool')

let dir: string
let remove: () => Promise<void>
let passphraseFile: string
let server: ServerProcess
let clock: FileClock
let totpSecret = ''
let codes: string[] = []

const storePath = () => join(dir, 'data', 'securelogin.store')
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

async function loginWithRecovery(code: string | undefined, stdin = `${PASSWORD}\n`) {
  const flag = code === undefined ? ['--recovery-code'] : ['--recovery-code', code]
  return runCliToEnd(['login', ...client(['--user', 'bob', '--password-stdin', ...flag])], stdin, { env: env() })
}

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('recovery'))
  passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  clock = new FileClock(dir)
  server = await startServerProcess(dir, passphraseFile, ['--clock-file', clock.file])
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
    expect(server.log()).not.toContain(codes[0])
  })

  it('logs in with a recovery code in place of a TOTP code, typed loosely, and says how many are left', async () => {
    const loose = codes[0]!.toUpperCase().replace('-', ' ')
    const result = await loginWithRecovery(loose)
    expect(result.code).toBe(0)
    expect(lastJson(result.stdout)).toMatchObject({ event: 'login', user: 'bob', recoveryCodesLeft: 9 })
  })

  it('refuses a used code with the generic failure', async () => {
    const result = await loginWithRecovery(codes[0])
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
    })
  })

  it('refuses a code that is not a recovery code before connecting (exit 2)', async () => {
    const result = await loginWithRecovery('not-a-code')
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({ code: 'ERR_USAGE' })
    expect(server.log()).not.toContain('not-a-code')
  })

  it('keeps only slow hashes in the store, and a used code stays used across a restart', async () => {
    expect(await server.stop()).toBe(0)
    const store = await openStore(storePath(), PASSPHRASE)
    try {
      const stored = await getRecovery(store, 'bob')
      expect(stored).toMatchObject({
        kdf: { name: 'scrypt', logN: 14, r: 8, p: 1 },
        salt: expect.stringMatching(/^[0-9a-f]{32}$/),
      })
      expect(stored!.hashes).toHaveLength(10)
      expect(stored!.hashes[0]).toBeNull()
      for (const hash of stored!.hashes.slice(1)) expect(hash).toMatch(/^[0-9a-f]{64}$/)
      const user = await getUser(store, 'bob')
      // From here on the suite-wide check (test/setup/no-secrets.ts) also looks for the verifier.
      noteSecret('verifier', user!.verifier)
      const dump = JSON.stringify(stored) + JSON.stringify(user)
      for (const code of codes) {
        expect(dump).not.toContain(code)
        expect(dump).not.toContain(code.replace('-', ''))
      }
    } finally {
      await store.close()
    }
    // The file itself is sealed: no code appears in its bytes either.
    const bytes = await readFile(storePath(), 'latin1')
    for (const code of codes) expect(bytes).not.toContain(code.replace('-', ''))
    server = await startServerProcess(dir, passphraseFile, ['--clock-file', clock.file])
    expect((await loginWithRecovery(codes[0])).code).toBe(1)
    // The flag alone reads the code from the next stdin line, after the password.
    const fromStdin = await loginWithRecovery(undefined, `${PASSWORD}\n${codes[1]}\n`)
    expect(fromStdin.code).toBe(0)
    expect(lastJson(fromStdin.stdout)).toMatchObject({ recoveryCodesLeft: 8 })
  })

  it('warns on stderr when three or fewer are left', async () => {
    for (const code of codes.slice(2, 6)) expect((await loginWithRecovery(code)).code).toBe(0)
    const result = await loginWithRecovery(codes[6])
    expect(result.code).toBe(0)
    expect(lastJson(result.stdout)).toMatchObject({ recoveryCodesLeft: 3 })
    expect(result.stderr).toContain('3 recovery codes left')
  })

  it('refuses to renew the codes on a login made with a recovery code (ERR_FORBIDDEN)', async () => {
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: server.port,
      trust: {
        kind: 'ca',
        ca: await readFile(join(dir, 'certs', 'server.crt')),
        caFile: join(dir, 'certs', 'server.crt'),
      },
    })
    try {
      await authenticate(conn, 'bob', PASSWORD)
      expect(await submitRecoveryCode(conn, codes[7]!)).toMatchObject({ recoveryCodesLeft: 2 })
      await expect(renewRecoveryCodes(conn)).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
    } finally {
      conn.close()
    }
    const usage = await runCliToEnd(
      ['recovery-codes', ...client(['--user', 'bob', '--password-stdin', '--recovery-code', codes[8]!])],
      `${PASSWORD}\n`,
      { env: env() },
    )
    expect(usage.code).toBe(2)
  })

  it('`securelogin recovery-codes` with a TOTP code replaces every code', async () => {
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
    // An old unused code is gone; a new one works, once.
    expect((await loginWithRecovery(codes[9])).code).toBe(1)
    const fresh = await loginWithRecovery(renewed.recoveryCodes[0])
    expect(fresh.code).toBe(0)
    expect(lastJson(fresh.stdout)).toMatchObject({ recoveryCodesLeft: 9 })
  })
})
