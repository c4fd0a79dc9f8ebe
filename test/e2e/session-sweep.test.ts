import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { authenticate, resumeSession, submitOtp } from '../../src/client/login.js'
import { call } from '../../src/client/calls.js'
import { generateTotp } from '../../src/auth/totp.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { noteSecret } from '../helpers/secrets.js'

// Ended sessions (src/server/sessions.ts): a revoke counts only the sessions that were still
// live, and a session nobody presents again after it ended is deleted by the server's sweep.

const PASSWORD = 'sweep test password 4'
noteSecret('password', PASSWORD)
const MINUTE = 60_000

let nowMs = Date.UTC(2026, 11, 1, 12, 0, 15)
let server: InProcessServer | undefined
let secret: string

const connect = async () =>
  ServerConnection.open({
    host: '127.0.0.1',
    port: server!.server.port,
    trust: { kind: 'ca', ca: await readFile(server!.certPath), caFile: server!.certPath },
  })

/** An in-process server (5 min idle timeout) with rita registered. */
async function start(sessionSweepMs: number): Promise<void> {
  server = await startInProcessServer({
    now: () => nowMs,
    server: { sessionSweepMs, sessions: { idleMs: 5 * MINUTE, absoluteMs: 60 * MINUTE }, registration: 'open' },
  })
  const conn = await connect()
  ;({ secret } = await startRegistration(conn, 'rita', PASSWORD))
  noteSecret('TOTP secret', secret)
  await confirmEnrolment(conn, await generateTotp(secret, nowMs))
  conn.close()
}

async function login() {
  const conn = await connect()
  try {
    await authenticate(conn, 'rita', PASSWORD)
    nowMs += 30_000 // a fresh code each time (RFC 6238 5.2)
    const result = await submitOtp(conn, await generateTotp(secret, nowMs))
    noteSecret('session token', result.token!)
    return result
  } finally {
    conn.close()
  }
}

const sessionKeys = async () => (await server!.store.keys('session/')).length

afterEach(async () => {
  await server?.stop()
  server = undefined
})

describe('ended sessions', () => {
  it('a revoke of the others counts only live ones (no sweep has run)', async () => {
    await start(60 * MINUTE)
    await login()
    nowMs += 6 * MINUTE // that one has ended, but is still in the store
    await login()
    const current = await login()
    expect(await sessionKeys()).toBe(3)
    const conn = await connect()
    try {
      await resumeSession(conn, current.token!)
      expect(await call(conn, 'revoke', { others: true })).toEqual({ revoked: 1 })
    } finally {
      conn.close()
    }
  })

  it('the sweep deletes a session nobody presented after it ended', async () => {
    await start(50)
    await login()
    await login()
    expect(await sessionKeys()).toBe(2)
    nowMs += 6 * MINUTE
    await vi.waitFor(async () => expect(await sessionKeys()).toBe(0), { timeout: 30_000 })
    expect(server!.logger.entries).toContainEqual(
      expect.objectContaining({ event: 'sessions_swept', fields: { count: 2 } }),
    )
  })
})
