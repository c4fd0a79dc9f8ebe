import { readFile } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect, createSecureContext, type TLSSocket } from 'node:tls'
import srp from 'secure-remote-password/client.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { DEFAULT_PASSWORD_KDF } from '../../src/auth/password-stretch.js'
import { derivePrivateKey } from '../../src/auth/srp-client.js'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import { authenticateWith, submitOtp } from '../../src/client/login.js'
import { confirmEnrolment } from '../../src/client/register.js'
import { main } from '../../src/cli/main.js'
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js'
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from '../../src/server/server.js'
import { Lab, newPassword } from '../helpers/accounts.js'
import { killAllCli } from '../helpers/cli.js'
import { newSalt } from '../helpers/conversation.js'
import { noteSecret } from '../helpers/secrets.js'

// Every connection slot held by trickling peers: 64 connections from each of 16
// loopback addresses, the server's whole capacity, against the real server process with its
// deadlines shortened by the hidden --connection-limits flag. Half trickle one frame a byte at a
// time (the frame deadline ends them), half ask something every 500 ms (the lifetime of a
// connection that is not logged in ends them). While they hold every slot a new client is
// refused; the deadlines end all of them; then a new client registers and logs in.

const FRAME_MS = 1_000
const LIFETIME_MS = 6_000
/** What a loaded machine may add to a deadline before the server has closed the connection. */
const MARGIN_MS = 4_000
const ADDRESSES = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 1}`)
const PER_ADDRESS = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
const HALF = PER_ADDRESS / 2
/** Handshakes in flight at once: under the listen backlog, so that no SYN is dropped and retried. */
const OPENING_AT_ONCE = 64
const JWKS_GET = encodeFrame({ type: 'jwks_get' })

type Outcome = { socket: TLSSocket; at: number } | { refused: string }
type Dial = (address: string) => Promise<Outcome>

/**
 * Opens TLS connections to the server from chosen loopback addresses (tls.connect has no
 * localAddress: the TCP socket is made first). Each settles: handshake done, or refused (error,
 * close or no handshake in 10 s) and destroyed. The first handshake checks the pinned
 * certificate; the rest resume its TLS session, which spares the client's check of the
 * certificate, about a fifth of its CPU per connection, so that opening a thousand of them
 * on a busy machine stays well within the lifetime that ends them.
 */
function dialer(port: number, ca: Buffer): Dial {
  const trust = createSecureContext({ ca, minVersion: 'TLSv1.3' })
  let ticket: Buffer | undefined
  return (address) =>
    new Promise((resolve) => {
      const tcp = netConnect({ host: '127.0.0.1', port, localAddress: address })
      tcp.on('error', () => {})
      const socket = tlsConnect({
        socket: tcp,
        secureContext: trust,
        servername: 'localhost',
        minVersion: 'TLSv1.3',
        ...(ticket ? { session: ticket } : {}),
      })
      socket.on('error', () => {})
      socket.once('session', (session: Buffer) => (ticket = session))
      let settled = false
      const settle = (outcome: Outcome) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if ('refused' in outcome) {
          socket.destroy()
          tcp.destroy()
        }
        resolve(outcome)
      }
      const timer = setTimeout(() => settle({ refused: 'no handshake within 10 s' }), 10_000)
      socket.once('secureConnect', () => settle({ socket, at: Date.now() }))
      socket.once('error', (error: NodeJS.ErrnoException) => settle({ refused: error.code ?? error.message }))
      socket.once('close', () => settle({ refused: 'closed' }))
    })
}

/** One attempt to connect: 'accepted' (and closed at once) or how it was refused. */
async function attempt(dial: Dial, address: string): Promise<string> {
  const outcome = await dial(address)
  if ('refused' in outcome) return outcome.refused
  outcome.socket.destroy()
  return 'accepted'
}

/** Resolves when `work` does or after `ms`, whichever is first; the timer does not outlive it. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  } finally {
    clearTimeout(timer)
  }
}

type Kind = 'frame' | 'lifetime'

/** One slot-holding connection and what it saw. */
class Held {
  readonly received: unknown[] = []
  readonly closed: Promise<void>
  firstByteAt: number | undefined
  closedAt: number | undefined
  #sent = 0
  readonly #decoder = new FrameDecoder()

  constructor(
    readonly kind: Kind,
    readonly address: string,
    readonly socket: TLSSocket,
    /** When its handshake completed here, about when the server took it as a connection. */
    readonly openedAt: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.received.push(...this.#decoder.push(chunk)))
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = Date.now()
        resolve()
      }),
    )
  }

  get open(): boolean {
    return this.closedAt === undefined && !this.socket.destroyed && this.socket.writable
  }

  /** The next byte of an endless run of jwks_get frames: one frame takes 23 bytes, 6.9 s at 300 ms. */
  trickle(): void {
    if (!this.open) return
    this.firstByteAt ??= Date.now()
    const at = this.#sent++ % JWKS_GET.length
    this.socket.write(JWKS_GET.subarray(at, at + 1))
  }

  ask(): void {
    if (this.open) this.socket.write(JWKS_GET)
  }
}

/**
 * Opens `count` connections from each address into `held`, a bounded number of handshakes at a
 * time; the first refusal stops the opening (what is already open stays in `held`, to be closed).
 */
async function openEach(held: Held[], kind: Kind, addresses: string[], count: number, dial: Dial): Promise<void> {
  const jobs = addresses.flatMap((address) => Array.from({ length: count }, () => address))
  let next = 0
  const worker = async () => {
    while (next < jobs.length) {
      const address = jobs[next++]!
      const outcome = await dial(address)
      if ('socket' in outcome) held.push(new Held(kind, address, outcome.socket, outcome.at))
      else {
        next = jobs.length
        throw new Error(`a ${kind} connection from ${address} was refused: ${outcome.refused}`)
      }
    }
  }
  await Promise.all(Array.from({ length: OPENING_AT_ONCE }, worker))
}

/** The server's JSON log lines of one event. */
const logged = (log: string, event: string): Array<Record<string, any>> =>
  log
    .split('\n')
    .filter((line) => line.includes(`"event":"${event}"`))
    .map((line) => JSON.parse(line) as Record<string, any>)

const serverArgs = (lifetimeMs: number) => [
  '--connection-limits',
  `frameMs=${FRAME_MS},lifetimeMs=${lifetimeMs}`,
  '--registration',
  'open',
]

describe('every connection slot held by trickling peers (the server process, short deadlines)', () => {
  let lab: Lab
  let dial: Dial
  const held: Held[] = []
  const timers: NodeJS.Timeout[] = []

  beforeAll(async () => {
    lab = await Lab.start('trickle', { serverArgs: serverArgs(LIFETIME_MS) })
    dial = dialer(lab.port, await readFile(lab.certPath))
  })
  afterAll(async () => {
    for (const timer of timers) clearInterval(timer)
    for (const connection of held) connection.socket.destroy()
    await lab?.close()
    await killAllCli()
  })

  it('--connection-limits takes known deadlines from 100 ms up to their defaults, else ERR_USAGE', async () => {
    const refusals = ['frameMs=0', 'frameMs=10001', 'lifetimeMs=1.5', 'maxConnections=10', 'frameMs=500,frameMs=600']
    for (const value of refusals) {
      let stderr = ''
      const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true))
      const saved = process.exitCode
      try {
        // Refused before the passphrase is read or the store is touched.
        await main([
          'server',
          ...['--store', `${lab.dir}/unused/store`, '--passphrase-file', lab.passphraseFile],
          ...['--connection-limits', value, '--json'],
        ])
        expect({ value, code: process.exitCode }).toEqual({ value, code: 2 })
      } finally {
        err.mockRestore()
        process.exitCode = saved
      }
      expect(JSON.parse(stderr.trim().split('\n').at(-1)!)).toMatchObject({
        event: 'error',
        code: 'ERR_USAGE',
        message: expect.stringMatching(/^--connection-limits: /),
      })
    }
  })

  /**
   * Opens every slot: the lifetime half first, each asking for the keys every 500 ms from its
   * accept; then the frame half, which sends nothing until every slot is held (so that its frames
   * begin, and their deadline runs, within the lifetime of all of them), trying a 65th connection
   * from 127.0.0.1 once its 64 are open. 'outran' when this machine took so long to open them
   * that a lifetime could end before the 1,025th is tried or before the frames' deadline: a slow
   * client, not something the server did wrong (the test then tries once more, with a longer
   * lifetime).
   */
  async function holdEverySlot(lifetimeMs: number): Promise<{ openingMs: number; sixtyFifth: string } | 'outran'> {
    const openingStarted = Date.now()
    timers.push(setInterval(() => held.forEach((c) => c.kind === 'lifetime' && c.ask()), 500))
    await openEach(held, 'lifetime', ADDRESSES, HALF, dial)
    await openEach(held, 'frame', ADDRESSES.slice(0, 1), HALF, dial)

    // Every slot must still be held when the 65th and the 1,025th are tried, and the frames'
    // deadline must come before the frame half's lifetime does; a second's slack for each.
    const since = (kind?: Kind) =>
      Date.now() - Math.min(...held.filter((c) => c.kind === (kind ?? c.kind)).map((c) => c.openedAt))
    if (since() > lifetimeMs - 1_000) return 'outran'

    // The per-address cap: a 65th connection from 127.0.0.1 is dropped at its TCP accept, logged.
    const sixtyFifth = await attempt(dial, ADDRESSES[0]!)
    expect(sixtyFifth).not.toBe('accepted')
    await vi.waitFor(
      () =>
        expect(logged(lab.server.log(), 'connection_refused')).toEqual([
          expect.objectContaining({ address: '127.0.0.1', limit: PER_ADDRESS }),
        ]),
      { timeout: 5_000 },
    )

    await openEach(held, 'frame', ADDRESSES.slice(1), HALF, dial)
    const openingMs = Date.now() - openingStarted
    expect(held).toHaveLength(DEFAULT_MAX_CONNECTIONS)
    if (since() > lifetimeMs - 1_000 || since('frame') > lifetimeMs - FRAME_MS - 1_000) return 'outran'
    expect(held.filter((c) => !c.open).length, `connections closed within ${since()} ms of the first accept`).toBe(0)
    return { openingMs, sixtyFifth }
  }

  it('1,024 trickling connections from 16 addresses hold every slot, the deadlines end them all, then a new client logs in', async () => {
    // The newcomer's password is stretched now: what is measured below is the server, not scrypt.
    const name = 'newcomer'
    const password = newPassword()
    noteSecret('password', password)
    const salt = newSalt()
    const x = await derivePrivateKey({ salt, username: name, password, kdf: DEFAULT_PASSWORD_KDF })
    const verifier = srp.deriveVerifier(x)

    let lifetimeMs = LIFETIME_MS
    let holding = await holdEverySlot(lifetimeMs)
    let retried = ''
    if (holding === 'outran') {
      // Once more, with a lifetime the opening fits in twice over (a busy machine: one more server start).
      const openedIn = Date.now() - Math.min(...held.map((c) => c.openedAt))
      for (const timer of timers.splice(0)) clearInterval(timer)
      for (const connection of held.splice(0)) connection.socket.destroy()
      lifetimeMs = Math.min(30_000, Math.ceil((2 * openedIn + FRAME_MS + 2_000) / 1_000) * 1_000)
      retried = ` (a first try took ${openedIn} ms to open them: this one ran with a lifetime of ${lifetimeMs} ms)`
      await lab.stopServer()
      await lab.startServer(serverArgs(lifetimeMs))
      holding = await holdEverySlot(lifetimeMs)
      expect(holding, `opening took longer than half the lifetime of ${lifetimeMs} ms`).not.toBe('outran')
    }
    const { openingMs, sixtyFifth } = holding as Exclude<typeof holding, 'outran'>

    // The total cap: from a 17th address (under its own cap) Node drops the socket at its accept,
    // before the server's per-address count sees it; the server logs the drop.
    const refusedAt = Date.now()
    const newcomer = await attempt(dial, '127.0.0.17')
    const refusedMs = Date.now() - refusedAt
    expect(newcomer).not.toBe('accepted')
    expect(held.filter((c) => !c.open).length, 'connections closed before the 1,025th was refused').toBe(0)
    await vi.waitFor(
      () =>
        expect(logged(lab.server.log(), 'connection_refused')).toEqual([
          expect.objectContaining({ address: '127.0.0.1', limit: PER_ADDRESS }),
          expect.objectContaining({
            address: '127.0.0.17',
            reason: 'too many connections',
            limit: DEFAULT_MAX_CONNECTIONS,
          }),
        ]),
      { timeout: 5_000 },
    )

    // The frame half begins its frames: one byte now, then one every 300 ms.
    const trickleStarted = Date.now()
    held.forEach((c) => c.kind === 'frame' && c.trickle())
    timers.push(setInterval(() => held.forEach((c) => c.kind === 'frame' && c.trickle()), 300))

    const lastOpened = Math.max(...held.map((c) => c.openedAt))
    const bound = Math.max(trickleStarted + FRAME_MS, lastOpened + lifetimeMs) + MARGIN_MS - Date.now()
    await within(Promise.all(held.map((c) => c.closed)), bound)
    for (const timer of timers.splice(0)) clearInterval(timer)
    expect(held.filter((c) => c.closedAt === undefined).length, 'connections the deadlines did not end').toBe(0)
    const firstOpened = Math.min(...held.map((c) => c.openedAt))
    const lastClosed = Math.max(...held.map((c) => c.closedAt!))

    // Each ended by its own deadline, no earlier, within the margin, with the reason.
    const frames = held.filter((c) => c.kind === 'frame')
    const lives = held.filter((c) => c.kind === 'lifetime')
    const frameTook = frames.map((c) => c.closedAt! - c.firstByteAt!)
    const lifeTook = lives.map((c) => c.closedAt! - c.openedAt)
    const outside = (took: number[], limit: number) => took.filter((ms) => ms < limit - 100 || ms >= limit + MARGIN_MS)
    expect(outside(frameTook, FRAME_MS), 'frame half: ms from the first byte to the close').toEqual([])
    expect(outside(lifeTook, lifetimeMs), 'lifetime half: ms from the accept to the close').toEqual([])
    for (const c of frames)
      expect(c.received).toEqual([{ type: 'error', code: 'ERR_TIMEOUT', message: 'a frame took too long' }])
    for (const c of lives) {
      expect(c.received.slice(0, -1).every((m) => (m as { type: string }).type === 'jwks')).toBe(true)
      expect(c.received.at(-1)).toEqual({
        type: 'error',
        code: 'ERR_TIMEOUT',
        message: 'a connection that is not logged in took too long',
      })
    }
    // The server logged each end with what took too long (its log lines may trail the closes).
    await vi.waitFor(
      () => {
        const deadlines = logged(lab.server.log(), 'connection_deadline')
        expect(deadlines.filter((d) => d['what'] === 'a frame')).toHaveLength(frames.length)
        expect(deadlines.filter((d) => d['what'] === 'a connection that is not logged in')).toHaveLength(lives.length)
        expect(new Set(deadlines.map((d) => d['address']))).toEqual(new Set(ADDRESSES))
      },
      { timeout: 5_000 },
    )

    // Then the slots are free: the 17th address is accepted, and a new client registers and logs in.
    expect(await attempt(dial, '127.0.0.17')).toBe('accepted')
    const loginStarted = Date.now()
    const conn = await lab.connect()
    let secret: string
    let step: number
    try {
      const enrol = await conn.request(
        { type: 'register_start', username: name, salt, verifier, kdf: DEFAULT_PASSWORD_KDF },
        'enrol',
      )
      secret = secretFromOtpauthUri(enrol.otpauthUri)!
      noteSecret('TOTP secret', secret)
      const code = lab.nextCode(secret, -1)
      step = code.step
      const { recoveryCodes } = await confirmEnrolment(conn, code.code)
      for (const recoveryCode of recoveryCodes) noteSecret('recovery code', recoveryCode)
    } finally {
      conn.close()
    }
    const login = await lab.connect()
    try {
      await authenticateWith(login, name, async () => x)
      const welcome = await submitOtp(login, lab.nextCode(secret, step).code)
      noteSecret('session token', welcome.token!)
      expect(welcome).toMatchObject({ user: name, role: 'regular_user' })
    } finally {
      login.close()
    }
    const loginMs = Date.now() - loginStarted

    console.log(
      `hostile-trickle: ${held.length} connections opened in ${openingMs} ms${retried}; the 1,025th refused in ` +
        `${refusedMs} ms (${newcomer}), the 65th from one address too (${sixtyFifth}); ` +
        `all closed ${lastClosed - firstOpened} ms after the first accept, ${lastClosed - trickleStarted} ms ` +
        `after the frames began (frame: ${Math.min(...frameTook)}-${Math.max(...frameTook)} ms after its ` +
        `first byte; lifetime: ${Math.min(...lifeTook)}-${Math.max(...lifeTook)} ms after its accept); ` +
        `then a registration and a login in ${loginMs} ms`,
    )
  })
})
