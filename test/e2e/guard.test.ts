import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createRegistration } from '../../src/auth/srp-client.js'
import { encodeTotpSecret, generateTotp, TOTP_SECRET_BYTES } from '../../src/auth/totp.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticateWith } from '../../src/client/login.js'
import { createStore } from '../../src/store/index.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { FileClock } from '../helpers/clock.js'
import { makeTempDir } from '../helpers/env.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { addUser } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'

// Online guessing (issue 5) through the real server process and CLI: the lock is kept in the
// store, so it survives a restart of the process, it expires, and the CLI shows a locked login
// as the same generic failure as a wrong password. How failures are counted, the waits, the
// lock at the 10th, unknown names and parallel guesses: test/conversation/guard.test.ts.

const PASSWORD = 'guard test password 8'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
const PASSPHRASE = 'guard test admin passphrase'
const MINUTE = 60_000

describe('through the real CLI: the lock survives a restart and expires', () => {
  let dir: string
  let remove: () => Promise<void>
  let passphraseFile: string
  let clock: FileClock
  let server: ServerProcess | undefined
  const totpSecret = encodeTotpSecret(randomBytes(TOTP_SECRET_BYTES))
  noteSecret('TOTP secret', totpSecret)
  const start = () =>
    startServerProcess(dir, passphraseFile, [
      '--clock-file',
      clock.file,
      '--lockout-after',
      '3',
      '--failure-delay-ms',
      '1',
    ])

  beforeAll(async () => {
    ;({ dir, remove } = await makeTempDir('guard'))
    passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
    clock = new FileClock(dir)
    // hank is put in the store before the server's first start: a registration would cost the
    // server ten real-cost recovery-code hashes, and registering is not what this test is about.
    const store = await createStore(join(dir, 'data', 'securelogin.store'), PASSPHRASE, { kdf: TEST_KDF })
    try {
      await addUser(store, {
        username: 'hank',
        ...(await createRegistration('hank', PASSWORD)),
        totpSecret,
        role: 'regular_user',
        createdAt: new Date(clock.ms).toISOString(),
      })
    } finally {
      await store.close()
    }
    server = await start()
  })
  afterAll(async () => {
    await server?.stop()
    await killAllCli()
    await remove?.()
  })

  /** A login with a wrong password (a random SRP x: the server sees a wrong proof), through the client library. */
  const wrongPassword = async () => {
    const crt = join(dir, 'certs', 'server.crt')
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: server!.port,
      trust: { kind: 'ca', ca: await readFile(crt), caFile: crt },
    })
    try {
      await authenticateWith(conn, 'hank', async () => randomBytes(32).toString('hex'))
    } finally {
      conn.close()
    }
  }

  const cliLogin = async (password: string) => {
    const code = await generateTotp(totpSecret, clock.advance(30_000))
    return runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server!.port}`,
        '--ca',
        join(dir, 'certs', 'server.crt'),
        '--user',
        'hank',
        '--password-stdin',
        '--otp',
        code,
        '--json',
      ],
      `${password}\n`,
    )
  }

  it('locks hank after 3 wrong passwords, keeps him locked across a restart (process), and lets him in 15 minutes later', async () => {
    for (let i = 0; i < 3; i++)
      await expect(wrongPassword()).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
    // The log line is written before the answer, but reaches this process through another pipe.
    await vi.waitFor(() => expect(server!.log()).toContain('"event":"user_locked"'), { timeout: 30_000 })

    expect(await server!.stop()).toBe(0)
    server = undefined
    server = await start()
    // The right password and a right code, from the CLI: refused, in the words of a wrong password.
    const stillLocked = await cliLogin(PASSWORD)
    expect(stillLocked.code).toBe(1)
    expect(stillLocked.stdout).toBe('')
    expect(JSON.parse(stillLocked.stderr.trim())).toEqual({
      event: 'error',
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
      hint: "check the user name, the password, and this machine's clock; codes change every 30 s",
    })
    await vi.waitFor(() => expect(server!.log()).toContain('"reason":"locked"'), { timeout: 30_000 })

    clock.advance(15 * MINUTE)
    const back = await cliLogin(PASSWORD)
    expect(back.stderr).toBe('')
    expect(back.code).toBe(0)
    expect(JSON.parse(back.stdout)).toMatchObject({ event: 'login', user: 'hank' })
  })
})
