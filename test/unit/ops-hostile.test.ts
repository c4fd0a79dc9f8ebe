import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { OPS_MAX_CONNECTIONS, startOpsListener, type OpsListener } from '../../src/server/ops.js'
import { createMemoryLogger } from '../../src/server/logger.js'
import { opsRequest } from '../helpers/ops.js'

// The operator listener (src/server/ops.ts) against hostile peers, on a real socket on
// 127.0.0.1: every limit it promises (docs/operations.md) holds, and while a peer abuses it the
// checks of others are still answered. Bounded loops, loopback addresses only.

let ops: OpsListener | undefined
const sockets: Socket[] = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await ops?.close()
  ops = undefined
})

async function listen(): Promise<OpsListener> {
  ops = await startOpsListener({
    host: '127.0.0.1',
    port: 0,
    logger: createMemoryLogger(),
    readiness: async () => undefined,
    // A large answer, as a real scrape is: one never read fills the socket's buffers.
    metrics: async () => ({ contentType: 'text/plain', text: `${'x_total 1\n'.repeat(20_000)}` }),
  })
  return ops
}

/** A raw TCP connection from `localAddress`, kept for afterEach to destroy. */
function open(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress })
    sockets.push(socket)
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Resolves when the peer closes the connection (or resets it). */
const closed = (socket: Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) return resolve()
    socket.once('close', () => resolve())
    socket.on('error', () => {})
  })

describe('the operator listener against hostile peers', () => {
  it(`holds at most ${OPS_MAX_CONNECTIONS} connections, from however many addresses, and serves again once they go`, async () => {
    const { port } = await listen()
    // Idle connections from 127.0.0.2 .. 127.0.0.41: past the cap each is dropped at its accept.
    const held = await Promise.all(
      Array.from({ length: OPS_MAX_CONNECTIONS + 8 }, (_, i) => open(port, `127.0.0.${2 + i}`)),
    )
    let dropped = 0
    for (const socket of held) void closed(socket).then(() => dropped++)
    await expect.poll(() => dropped, { timeout: 4000 }).toBe(8)
    // The other 32 are held (an idle one is ended only at the 5 s request deadline).
    expect(held.filter((socket) => !socket.destroyed)).toHaveLength(OPS_MAX_CONNECTIONS)
    for (const socket of held) socket.destroy()
    await Promise.all(held.map(closed))
    await expect.poll(async () => (await opsRequest(port, '/healthz').catch(() => undefined))?.status).toBe(200)
  })

  it('ends a request whose headers pass 8 KiB, and answers the next peer', async () => {
    const { port } = await listen()
    const socket = await open(port)
    let answer = ''
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')))
    socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9 * 1024)}\r\n\r\n`)
    await closed(socket)
    // Node answers 431 or just closes; either way no 200 for it.
    expect(answer).not.toContain('200 OK')
    expect(await opsRequest(port, '/healthz')).toMatchObject({ status: 200 })
  })

  it('closes a peer that trickles its headers past the request deadline, serving others meanwhile', async () => {
    const { port } = await listen()
    const socket = await open(port)
    const gone = closed(socket)
    let bytes = 0
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n')
    // One header byte every 200 ms, for at most 10 s: the listener's deadline (5 s) ends it first.
    let done = false
    void gone.then(() => (done = true))
    for (let i = 0; i < 50 && !done; i++) {
      if (i === 3) expect(await opsRequest(port, '/healthz')).toMatchObject({ status: 200 })
      socket.write('X')
      bytes++
      await new Promise((r) => setTimeout(r, 200))
    }
    expect(done).toBe(true)
    expect(bytes).toBeLessThan(50)
  }, 20_000)

  it('keeps answering others while one peer pipelines scrapes and never reads them', async () => {
    const { port } = await listen()
    const socket = await open(port)
    socket.pause()
    socket.on('error', () => {})
    // 200 pipelined scrapes of 200 kB each (40 MB of answers), none read.
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200))
    for (let i = 0; i < 5; i++) expect(await opsRequest(port, '/healthz')).toMatchObject({ status: 200 })
    expect(await opsRequest(port, '/metrics')).toMatchObject({ status: 200 })
  })
})
