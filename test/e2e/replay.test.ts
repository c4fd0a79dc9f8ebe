import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { authenticate, submitOtp } from '../../src/client/login.js'
import { generateTotp } from '../../src/auth/totp.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { noteSecret } from '../helpers/secrets.js'

// RFC 6238 5.2 against the real server with an injected clock: a code is good once.

const PASSWORD = 'replay test password 4'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
let nowMs = Date.UTC(2026, 10, 25, 12, 0, 10)
let server: InProcessServer
let secret: string
beforeAll(async () => {
  server = await startInProcessServer({ now: () => nowMs, server: { registration: 'open' } })
  const conn = await connect()
  ;({ secret } = await startRegistration(conn, 'rita', PASSWORD))
  await confirmEnrolment(conn, await generateTotp(secret, nowMs))
  conn.close()
})
afterAll(() => server.stop())

async function connect(): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.server.port,
    trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
  })
}

async function login(code: string) {
  const conn = await connect()
  try {
    await authenticate(conn, 'rita', PASSWORD)
    return await submitOtp(conn, code)
  } finally {
    conn.close()
  }
}

describe('a TOTP code is accepted once', () => {
  it('refuses the code that confirmed enrolment', async () => {
    await expect(login(await generateTotp(secret, nowMs))).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
  })

  it('lets exactly one of two simultaneous logins with the same code in', async () => {
    nowMs += 30_000
    const code = await generateTotp(secret, nowMs)
    const results = await Promise.allSettled([login(code), login(code)])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(
      ['ERR_AUTH_FAILED'],
    )
    expect(server.logText()).toContain('otp_replayed')
  })

  it('accepts the next step, then refuses every step up to it', async () => {
    nowMs += 30_000
    await expect(login(await generateTotp(secret, nowMs))).resolves.toMatchObject({ user: 'rita' })
    for (const offset of [-30_000, 0])
      await expect(login(await generateTotp(secret, nowMs + offset))).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    // One step ahead (clock skew) is still fresh.
    await expect(login(await generateTotp(secret, nowMs + 30_000))).resolves.toMatchObject({ user: 'rita' })
  })
})
