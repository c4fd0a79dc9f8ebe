import { readFile } from 'node:fs/promises'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { encodeFrame } from '../../src/protocol/frame.js'
import { DEFAULT_LIMITS } from '../../src/server/context.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { RawClient } from '../helpers/raw-client.js'
import { makeTempDir } from '../helpers/env.js'
import { killAllCli } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'

// One hostile client must not take the server down (issue 16): what one connection may hold and
// for how long, against the real server on a real TLS socket. The deadlines with short limits
// in this process; the memory bound with the defaults, in a server process whose RSS is read.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const JWKS_GET = encodeFrame({ type: 'jwks_get' })

describe('deadlines that trickling cannot extend (short limits, in process)', () => {
  let server: InProcessServer | undefined
  afterEach(async () => {
    await server?.stop()
    server = undefined
  })

  it('a frame must be whole within frameMs of its first byte, however steadily its bytes come', async () => {
    server = await startInProcessServer({ limits: { frameMs: 800, idleMs: 60_000 } })
    const client = await RawClient.open(server.server.port)
    const started = Date.now()
    const frame = JWKS_GET
    // One byte every 100 ms: each restarts the idle timer, none completes the frame in time.
    let sent = 0
    const trickle = setInterval(() => {
      if (sent < frame.length - 1 && !client.socket.destroyed) client.socket.write(frame.subarray(sent, ++sent))
    }, 100)
    try {
      await client.closed
    } finally {
      clearInterval(trickle)
    }
    const lasted = Date.now() - started
    expect(sent).toBeLessThan(frame.length - 1)
    expect(lasted).toBeGreaterThanOrEqual(800)
    expect(client.received).toEqual([
      expect.objectContaining({ type: 'error', code: 'ERR_TIMEOUT', message: 'a frame took too long' }),
    ])
  })

  it('a connection that is not logged in ends at lifetimeMs, though it asks something every 100 ms', async () => {
    server = await startInProcessServer({ limits: { lifetimeMs: 1_000, idleMs: 60_000 } })
    const client = await RawClient.open(server.server.port)
    const started = Date.now()
    const asking = setInterval(() => client.socket.destroyed || client.socket.write(JWKS_GET), 100)
    try {
      await client.closed
    } finally {
      clearInterval(asking)
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
    const answers = client.received as Array<{ type: string; code?: string; message?: string }>
    // Answered meanwhile, then ended with the reason.
    expect(answers.filter((a) => a.type === 'jwks').length).toBeGreaterThan(3)
    expect(answers.at(-1)).toMatchObject({
      type: 'error',
      code: 'ERR_TIMEOUT',
      message: 'a connection that is not logged in took too long',
    })
  })

  it('a connection with nothing to say for idleMs is closed with the reason', async () => {
    server = await startInProcessServer({ limits: { idleMs: 500 } })
    const client = await RawClient.open(server.server.port)
    expect(await client.request({ type: 'jwks_get' })).toMatchObject({ type: 'jwks' })
    const asked = Date.now()
    await client.closed
    expect(Date.now() - asked).toBeGreaterThanOrEqual(450)
    expect(client.received.at(-1)).toMatchObject({
      type: 'error',
      code: 'ERR_TIMEOUT',
      message: 'connection idle for too long',
    })
  })

  it('a peer that pipelines and never reads is ended, and takes no more than its caps meanwhile', async () => {
    server = await startInProcessServer({ limits: { drainMs: 500 } })
    const socket: TLSSocket = await new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server!.server.port, rejectUnauthorized: false })
      s.once('secureConnect', () => resolve(s))
      s.once('error', reject)
    })
    socket.on('error', () => {})
    socket.pause() // never reads an answer
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    // 8 MB of requests in one go: far more answers than the kernel's buffers and the caps hold.
    socket.write(Buffer.alloc(350_000 * JWKS_GET.length, JWKS_GET))
    await closed
    // The output cap ended it at once, or the drain deadline did; nothing else.
    const ends = server.logger.entries.filter((e) => e.event.startsWith('connection_'))
    expect(ends).toEqual([
      expect.objectContaining(
        ends[0]?.event === 'connection_output_cap'
          ? { event: 'connection_output_cap', fields: expect.objectContaining({ address: '127.0.0.1' }) }
          : { event: 'connection_deadline', fields: { address: '127.0.0.1', what: 'reading the answers' } },
      ),
    ])
  })
})

describe('one never-reading client against the server process (defaults)', () => {
  let dir: string
  let remove: () => Promise<void>
  let server: ServerProcess
  beforeAll(async () => {
    ;({ dir, remove } = await makeTempDir('hostile'))
    server = await startServerProcess(dir, await writePassphraseFile(dir, 'hostile test passphrase'))
  })
  afterAll(async () => {
    await server?.stop()
    await killAllCli()
    await remove?.()
  })

  const rss = async () => {
    const status = await readFile(`/proc/${server.run.child.pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
  }

  it('30 MB of pipelined jwks_get: the RSS moves by under 50 MB, the client is ended, others are answered', async () => {
    const certFile = join(dir, 'certs', 'server.crt')
    const ca = await readFile(certFile)
    // Warm: one honest request, so that what is measured is the attack, not the first answer.
    const honest = await RawClient.open(server.port)
    expect(await honest.request({ type: 'jwks_get' })).toMatchObject({ type: 'jwks' })
    honest.close()
    const before = await rss()
    let peak = before
    const sampling = setInterval(() => void rss().then((bytes) => (peak = Math.max(peak, bytes))), 50)
    try {
      const socket: TLSSocket = await new Promise((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' })
        s.once('secureConnect', () => resolve(s))
        s.once('error', reject)
      })
      socket.on('error', () => {})
      socket.pause()
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
      const frames = Math.ceil((30 * 1024 * 1024) / JWKS_GET.length)
      socket.write(Buffer.alloc(frames * JWKS_GET.length, JWKS_GET))
      // Meanwhile another client is answered.
      const other = await RawClient.open(server.port)
      expect(await other.request({ type: 'jwks_get' })).toMatchObject({ type: 'jwks' })
      other.close()
      await closed
      await sleep(200)
    } finally {
      clearInterval(sampling)
    }
    const moved = peak - before
    console.log(`hostile: 30 MB of jwks_get, never read: server RSS ${before} -> peak ${peak} (+${moved} bytes)`)
    expect(moved).toBeLessThan(50 * 1024 * 1024)
    await vi.waitFor(
      () => expect(server.log()).toMatch(/"event":"connection_output_cap"|"what":"reading the answers"/),
      { timeout: DEFAULT_LIMITS.drainMs + 5_000 },
    )
  })
})
