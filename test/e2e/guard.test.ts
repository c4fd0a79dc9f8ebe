import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { authenticate, submitOtp } from '../../src/client/login.js'
import { generateTotp } from '../../src/auth/totp.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { makeTempDir } from '../helpers/env.js'
import { killAllCli, runCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'
import { getGuard, userCount } from '../helpers/records.js'

// Online guessing (issue 5): delays after 3 failures, lockout after 10, the same answer always.

const PASSWORD = 'guard test password 8'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
const MINUTE = 60_000

describe('in-process, with an injected clock and sleep', () => {
  let nowMs = Date.UTC(2026, 10, 25, 12, 0, 10)
  const sleeps: number[] = []
  let server: InProcessServer
  let secret: string
  const connect = async () =>
    ServerConnection.open({
      host: '127.0.0.1',
      port: server.server.port,
      trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
    })
  const attempt = async (user: string, password: string) => {
    const conn = await connect()
    try {
      await authenticate(conn, user, password)
      nowMs += 30_000 // a fresh code each time
      return await submitOtp(conn, await generateTotp(secret, nowMs))
    } finally {
      conn.close()
    }
  }

  beforeAll(async () => {
    server = await startInProcessServer({ now: () => nowMs, server: { sleep: async (ms) => void sleeps.push(ms) } })
    const conn = await connect()
    ;({ secret } = await startRegistration(conn, 'gina', PASSWORD))
    await confirmEnrolment(conn, await generateTotp(secret, nowMs))
    conn.close()
  })
  afterAll(() => server.stop())

  it('answers every failure alike, waits from the 3rd on, doubling, and locks the name at the 10th', async () => {
    for (let i = 0; i < 10; i++)
      await expect(attempt('gina', `wrong password ${i}!`)).rejects.toMatchObject({
        code: 'ERR_AUTH_FAILED',
        message: 'authentication failed',
      })
    expect(sleeps).toEqual([0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000])
    expect(server.logText()).toContain('"event":"user_locked"')
  })

  it('refuses the right password and code while locked, with the same answer after the same wait', async () => {
    sleeps.length = 0
    await expect(attempt('gina', PASSWORD)).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
    })
    expect(sleeps).toEqual([8000])
    expect(server.logText()).toContain('"reason":"locked"')
  })

  it('lets the name in again after 15 minutes, and a success clears the count', async () => {
    nowMs += 15 * MINUTE
    await expect(attempt('gina', PASSWORD)).resolves.toMatchObject({ user: 'gina' })
    sleeps.length = 0
    await expect(attempt('gina', 'one more wrong one')).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    expect(sleeps).toEqual([0])
  })

  it('counts names with no account the same way, without storing them', async () => {
    sleeps.length = 0
    for (let i = 0; i < 4; i++)
      await expect(attempt('nobody.here', 'some password 1')).rejects.toMatchObject({
        code: 'ERR_AUTH_FAILED',
        message: 'authentication failed',
      })
    expect(sleeps.slice(0, 2)).toEqual([0, 250]) // the address already has one failure from gina
    expect(userCount(server.store)).toBe(1)
  })

  it('loses no count to parallel guesses: ten at once lock the name, and the store has all ten', async () => {
    const { secret: ivySecret } = await (async () => {
      const conn = await connect()
      const enrolment = await startRegistration(conn, 'ivy', PASSWORD)
      await confirmEnrolment(conn, await generateTotp(enrolment.secret, nowMs))
      conn.close()
      return enrolment
    })()
    expect(ivySecret).toBeTruthy()
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => attempt('ivy', `parallel wrong ${i}!`)),
    )
    expect(results.every((r) => r.status === 'rejected')).toBe(true)
    // The count's store write follows the answer (src/server/guard.ts): wait for the last one.
    // However long ten fsyncs take on a busy machine: the test's own timeout is the limit.
    await vi.waitFor(
      async () =>
        expect(await getGuard(server.store, 'ivy')).toMatchObject({ failures: 10, lockedUntil: expect.any(Number) }),
      { timeout: 50_000, interval: 20 },
    )
    expect(server.logger.entries).toContainEqual(
      expect.objectContaining({ event: 'user_locked', fields: expect.objectContaining({ user: 'ivy', failures: 10 }) }),
    )
  })
})

describe('through the real CLI: the lock survives a restart and expires', () => {
  let dir: string
  let remove: () => Promise<void>
  let passphraseFile: string
  let clock: FileClock
  let server: ServerProcess
  let totpSecret = ''
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
    passphraseFile = await writePassphraseFile(dir, 'guard test admin passphrase')
    clock = new FileClock(dir)
    server = await start()
    const run = runCli([
      'register',
      '--server',
      `127.0.0.1:${server.port}`,
      '--ca',
      join(dir, 'certs', 'server.crt'),
      '--user',
      'hank',
      '--password-stdin',
      '--json',
    ])
    run.write(PASSWORD)
    totpSecret = new URL(JSON.parse(await run.nextLine()).otpauthUri).searchParams.get('secret')!
    run.write(await generateTotp(totpSecret, clock.ms))
    expect(JSON.parse(await run.nextLine())).toEqual({
      event: 'registered',
      user: 'hank',
      recoveryCodes: expect.any(Array),
    })
    await run.done
  })
  afterAll(async () => {
    await server?.stop()
    await killAllCli()
    await remove?.()
  })

  const cliLogin = async (password: string) => {
    const code = await generateTotp(totpSecret, clock.advance(30_000))
    return runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server.port}`,
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

  it('locks hank after 3 wrong passwords, keeps him locked across a restart, and lets him in 15 minutes later', async () => {
    for (let i = 0; i < 3; i++) {
      const wrong = await cliLogin(`not hank's password ${i}`)
      expect(wrong.code).toBe(1)
      expect(JSON.parse(wrong.stderr.trim())).toMatchObject({
        code: 'ERR_AUTH_FAILED',
        message: 'authentication failed',
      })
    }
    const locked = await cliLogin(PASSWORD)
    expect(JSON.parse(locked.stderr.trim())).toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
    })
    expect(server.log()).toContain('"event":"user_locked"')

    expect(await server.stop()).toBe(0)
    server = await start()
    const stillLocked = await cliLogin(PASSWORD)
    expect(stillLocked.code).toBe(1)
    expect(server.log()).toContain('"reason":"locked"')

    clock.advance(15 * MINUTE)
    const back = await cliLogin(PASSWORD)
    expect(back.stderr).toBe('')
    expect(JSON.parse(back.stdout)).toMatchObject({ event: 'login', user: 'hank' })
  })
})
