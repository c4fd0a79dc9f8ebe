import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateTotp } from '../../src/auth/totp.js'
import { call } from '../../src/client/calls.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticate, submitOtp } from '../../src/client/login.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { RawClient } from '../helpers/raw-client.js'
import { noteSecret } from '../helpers/secrets.js'

// One token, one spelling, on the wire: a signed token whose base64url parts are respelled
// (the unused low bits of a last character set, so the bytes are the same) is ERR_TOKEN_INVALID
// in `token_check`, and a respelled session token resumes nothing (bearer tokens are looked up
// by the hash of their exact text). verifyToken() part by part: test/unit/verify-token.test.ts.

const PASSWORD = 'token spelling test password 7'
noteSecret('password', PASSWORD)
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

let nowMs = Date.UTC(2026, 10, 25, 12, 0, 10)
let server: InProcessServer
let signed: string
let session: string

/** Every other last character that decodes to the same bytes (RFC 4648 3.5: the unused bits set). */
function respellLast(part: string): string[] {
  const unused = { 2: 4, 3: 2 }[part.length % 4] ?? 0
  const last = ALPHABET.indexOf(part.at(-1)!)
  return Array.from({ length: (1 << unused) - 1 }, (_, n) => part.slice(0, -1) + ALPHABET[last | (n + 1)])
}

async function connect(): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.server.port,
    trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
  })
}

/** One message on a fresh connection, and the first frame back. */
async function ask(message: unknown): Promise<any> {
  const client = await RawClient.open(server.server.port)
  try {
    return await client.request(message)
  } finally {
    client.close()
  }
}

beforeAll(async () => {
  server = await startInProcessServer({ now: () => nowMs, server: { registration: 'open' } })
  const conn = await connect()
  try {
    const { secret } = await startRegistration(conn, 'tess', PASSWORD)
    await confirmEnrolment(conn, await generateTotp(secret, nowMs))
    nowMs += 30_000 // the enrolment code is spent: the login takes the next one
    await authenticate(conn, 'tess', PASSWORD)
    const welcome = await submitOtp(conn, await generateTotp(secret, nowMs))
    session = welcome.token!
    noteSecret('session token', session)
    ;({ token: signed } = await call(conn, 'token', { audience: 'billing' }))
    noteSecret('signed token', signed)
  } finally {
    conn.close()
  }
}, 60_000)

afterAll(() => server?.stop())

describe('token_check on the real server', () => {
  it('vouches for the token as issued and for no respelling of any of its parts', async () => {
    expect(await ask({ type: 'token_check', token: signed, audience: 'billing' })).toEqual({
      type: 'token_checked',
      active: true,
    })
    const parts = signed.split('.')
    const respelled = parts.flatMap((part, i) =>
      respellLast(part).map((other) => parts.map((p, j) => (j === i ? other : p)).join('.')),
    )
    // The signature (64 bytes, 86 characters) alone has 15 other spellings.
    expect(respelled.length).toBeGreaterThanOrEqual(15)
    for (const token of respelled) {
      expect(Buffer.from(token.split('.')[2]!, 'base64url')).toEqual(Buffer.from(parts[2]!, 'base64url'))
      expect(await ask({ type: 'token_check', token, audience: 'billing' }), token.slice(-6)).toEqual({
        type: 'token_checked',
        active: false,
        code: 'ERR_TOKEN_INVALID',
      })
    }
  })

  it('resumes the session with its token as issued, and with no respelling of it', async () => {
    expect(await ask({ type: 'session_resume', token: session })).toMatchObject({ type: 'welcome', user: 'tess' })
    const body = session.slice(4)
    const others = respellLast(body)
    // 32 bytes are 43 characters: the last carries 2 unused bits.
    expect(others).toHaveLength(3)
    for (const other of others) {
      expect(await ask({ type: 'session_resume', token: `sls_${other}` })).toMatchObject({ type: 'error' })
    }
  })
})
