import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it, vi } from 'vitest'
// @ts-expect-error the package ships no types for its group parameters
import params from 'secure-remote-password/lib/params.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { authenticate, submitOtp } from '../../src/client/login.js'
import { generateTotp } from '../../src/auth/totp.js'
import { encodeFrame } from '../../src/protocol/frame.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { RawClient } from '../helpers/raw-client.js'
import { noteSecret } from '../helpers/secrets.js'

// Issue 5, "Protocol and connection limits", performed against the real server on a real socket.

const PASSWORD = 'limits test password 9'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
let server: InProcessServer | undefined
const sockets: Socket[] = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await server?.stop()
  server = undefined
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function connection(s: InProcessServer): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: s.server.port,
    trust: { kind: 'ca', ca: await readFile(s.certPath), caFile: s.certPath },
    timeoutMs: 10_000,
  })
}

async function registerAndLogin(s: InProcessServer, name: string): Promise<void> {
  const reg = await connection(s)
  const { secret } = await startRegistration(reg, name, PASSWORD)
  await confirmEnrolment(reg, await generateTotp(secret, Date.now()))
  reg.close()
  const conn = await connection(s)
  await authenticate(conn, name, PASSWORD)
  // The next step's code: enrolment used this step's, and a code is accepted once.
  await expect(submitOtp(conn, await generateTotp(secret, Date.now() + 30_000))).resolves.toMatchObject({ user: name })
  conn.close()
}

/** A TCP connection that never starts TLS: the slow-loris of a TLS server. */
function idleTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => resolve(socket))
    socket.on('error', reject)
    sockets.push(socket)
  })
}

/** Resolves 'refused' when the server drops the connection before a TLS handshake completes. */
function tlsAttempt(port: number): Promise<'ok' | 'refused'> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' })
    sockets.push(socket)
    socket.once('secureConnect', () => resolve('ok'))
    socket.once('error', () => resolve('refused'))
    socket.once('close', () => resolve('refused'))
  })
}

describe('connection limits', () => {
  it('refuses connections from one address over its cap, cleanly, and frees the slot when one closes', async () => {
    server = await startInProcessServer({ server: { maxConnectionsPerAddress: 4 } })
    const held = await Promise.all(Array.from({ length: 4 }, () => idleTcp(server!.server.port)))
    expect(await tlsAttempt(server.server.port)).toBe('refused')
    expect(server.logText()).toContain('too many connections from this address')
    held[0]!.destroy()
    // The server frees the slot when it sees the close, which takes as long as it takes: ask
    // again until a handshake completes (each refused try is dropped at once, never held).
    await vi.waitFor(async () => expect(await tlsAttempt(server!.server.port)).toBe('ok'), {
      timeout: 30_000,
      interval: 20,
    })
  })

  it('holds slow connections up to the total cap, refuses more, and frees them at the handshake deadline', async () => {
    server = await startInProcessServer({
      server: { maxConnections: 6, handshakeTimeoutMs: 1_000, registration: 'open' },
    })
    const slow = await Promise.all(Array.from({ length: 6 }, () => idleTcp(server!.server.port)))
    expect(await tlsAttempt(server.server.port)).toBe('refused')
    // Each slow connection is dropped by the server at the deadline, not by us.
    const closed = slow.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())))
    await Promise.all(closed)
    await registerAndLogin(server, 'after.slow')
  })
})

describe('SRP checks on the wire', () => {
  it('rejects A = 0 and A = N (A mod N == 0) at login_start with the generic failure (RFC 5054 2.5.4)', async () => {
    // With A % N == 0 the premaster secret S is 0 whatever the password, so anyone could make
    // the M1. The server refuses such an A before any lookup (the answer is the same for every
    // name), and finishServerLogin refuses it again behind that (srp.S).
    server = await startInProcessServer({ server: { registration: 'open' } })
    await registerAndLogin(server, 'victim')
    const N = params.N.toHex().padStart(512, '0')
    for (const A of ['0'.repeat(512), N]) {
      const raw = await RawClient.open(server.server.port)
      expect(await raw.request({ type: 'login_start', username: 'victim', A })).toEqual({
        type: 'error',
        code: 'ERR_AUTH_FAILED',
        message: 'authentication failed',
        hint: expect.any(String),
      })
      await raw.closed
    }
  })
})

describe('pipelined messages', () => {
  it('answers messages sent in one write one at a time, in order, and a race for one name frees it', async () => {
    server = await startInProcessServer({ server: { registration: 'open' } })
    const raw = await RawClient.open(server.server.port)
    // Two answers, then a message out of order: the connection ends after exactly three frames.
    raw.socket.write(
      Buffer.concat([
        encodeFrame({ type: 'jwks_get' }),
        encodeFrame({ type: 'jwks_get' }),
        encodeFrame({ type: 'login_proof', M1: 'a'.repeat(64) }),
        encodeFrame({ type: 'jwks_get' }),
      ]),
    )
    await raw.closed
    expect(
      raw.received.map((frame) => (frame as { type: string; code?: string }).code ?? (frame as { type: string }).type),
    ).toEqual(['jwks', 'jwks', 'ERR_PROTOCOL'])

    // Two registrations of one name in one write: the first holds the name while its code is
    // awaited, the second is out of order and ends the connection, and the end frees the name.
    const register = {
      type: 'register_start',
      username: 'piper',
      salt: 'ab'.repeat(32),
      verifier: '0c'.repeat(256),
      kdf: { name: 'scrypt', logN: 16, r: 8, p: 1 },
    }
    const racer = await RawClient.open(server.server.port)
    racer.socket.write(Buffer.concat([encodeFrame(register), encodeFrame(register)]))
    await racer.closed
    expect(
      racer.received.map(
        (frame) => (frame as { type: string; code?: string }).code ?? (frame as { type: string }).type,
      ),
    ).toEqual(['enrol', 'ERR_PROTOCOL'])
    const again = await RawClient.open(server.server.port)
    expect(await again.request(register)).toMatchObject({ type: 'enrol' })
    again.close()
  })
})

describe('fuzzing', () => {
  it('survives 10,000 malformed, truncated, oversized and out-of-order frames and raw bytes, then serves a login, memory bounded', async () => {
    server = await startInProcessServer({ server: { maxConnectionsPerAddress: 1024, registration: 'open' } })
    const port = server.server.port
    let seed = 7
    const rand = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)))
    const kinds: Array<() => Buffer[]> = [
      () => [Buffer.concat([u32(10), junk(10)])], // not JSON
      () => [Buffer.concat([u32(64 * 1024 + 1 + rand(1000)), junk(100)])], // oversized length
      () => [Buffer.concat([u32(50), junk(rand(49))])], // truncated, then the client goes away
      () => [encodeFrame({ type: 'login_proof', M1: 'a'.repeat(64) })], // out of order
      () => [encodeFrame({ type: 'login_otp', code: '123456' })], // out of order
      () => [encodeFrame({ type: 'register_confirm', code: '000000' })], // out of order
      () => [encodeFrame({ type: 'login_start', username: 'x'.repeat(65), A: '1' })], // schema
      () => [encodeFrame({ type: 'nope', extra: junk(20).toString('hex') })], // unknown type
      () => [encodeFrame([1, 2, 3])], // not an object
      () => [encodeFrame({ type: 'login_start', username: 'victim', A: 'g'.repeat(512) })], // not hex
      () => [encodeFrame('"string"'), encodeFrame(null)],
      () => [Buffer.from([0, 0]), Buffer.from([0, 5]), Buffer.from('{"a":')], // split and bad
    ]
    const rssBefore = process.memoryUsage().rss
    let sent = 0
    const CONNECTIONS = 2_000
    const FRAMES_PER_CONNECTION = 5
    const one = async (i: number) => {
      const raw = await RawClient.open(port)
      // Several frames per connection, back to back: the first bad one ends it; the rest must be ignored safely.
      for (let f = 0; f < FRAMES_PER_CONNECTION; f++)
        for (const chunk of kinds[(i + f) % kinds.length]!()) raw.socket.write(chunk)
      sent += FRAMES_PER_CONNECTION
      await Promise.race([raw.closed, sleep(3_000)])
      raw.close()
    }
    for (let i = 0; i < CONNECTIONS; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => one(i + k)))
    // Raw bytes that are not TLS at all.
    for (let i = 0; i < 100; i++) {
      const socket = await idleTcp(port)
      socket.write(junk(1 + rand(2000)))
      socket.end()
    }
    expect(sent).toBeGreaterThanOrEqual(10_000)
    await registerAndLogin(server, 'after.fuzz')
    const grownMb = (process.memoryUsage().rss - rssBefore) / 1e6
    console.log(
      `fuzz: ${sent} bad frames over ${CONNECTIONS} TLS connections and 100 raw sockets; then a login; RSS grew ${grownMb.toFixed(1)} MB (server and client share this process)`,
    )
    expect(grownMb).toBeLessThan(300)
    expect(server.logText()).toContain('protocol_error')
  }, 120_000)
})

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n, 0)
  return b
}
