import { readFile, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import srpClient from 'secure-remote-password/client.js'
import { openStore } from '../../src/store/index.js'
import { startServer } from '../../src/server/server.js'
import { createMemoryLogger } from '../../src/server/logger.js'
import { TEST_PASSPHRASE, type InProcessServer, type startInProcessServer } from './in-process-server.js'
import { RawClient } from './raw-client.js'
import { noteOutput } from './secrets.js'

// What user enumeration tests need beyond the shared helpers: a restart on the same store, the
// exact bytes of each frame, and a generic "shape" of a frame to compare a real user's with a decoy's.

type ServerOpts = NonNullable<Parameters<typeof startInProcessServer>[0]>['server']

/**
 * Closes the server and its store, then opens the same store file (same passphrase, certificate
 * and directory) behind a new server: what a restart of `securelogin server` does. The old
 * handle must not be used (or stopped) afterwards; stop() on the new one removes the directory.
 */
export async function restartInProcessServer(old: InProcessServer, server: ServerOpts = {}): Promise<InProcessServer> {
  const path = old.store.path
  await old.server.close()
  // old.stop() would note its log for the suite-wide secrets check (and remove the directory).
  noteOutput(`in-process server on port ${old.server.port}`, 'log', old.logText())
  await old.store.close()
  const store = await openStore(path, TEST_PASSPHRASE)
  const logger = createMemoryLogger()
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    cert: await readFile(old.certPath),
    key: await readFile(join(dirname(old.certPath), 'server.key')),
    store,
    logger,
    ...server,
  })
  return {
    server: running,
    store,
    logger,
    dir: old.dir,
    certPath: old.certPath,
    logText: () => logger.entries.map((e) => JSON.stringify(e)).join('\n'),
    async stop() {
      await running.close()
      noteOutput(
        `in-process server on port ${running.port} (restarted)`,
        'log',
        logger.entries.map((e) => JSON.stringify(e)).join('\n'),
      )
      await store.close()
      await rm(old.dir, { recursive: true, force: true })
    },
  }
}

/** The shape of a JSON value: its type, and for strings their length and alphabet; objects keep key order. */
export type Shape =
  | { kind: 'string'; length: number; alphabet: 'hex' | 'text' }
  | { kind: 'number'; integer: boolean }
  | { kind: 'boolean' }
  | { kind: 'null' }
  | { kind: 'array'; items: Shape[] }
  | { kind: 'object'; keys: string[]; values: Record<string, Shape> }

export function shapeOf(value: unknown): Shape {
  if (value === null) return { kind: 'null' }
  if (typeof value === 'string')
    return { kind: 'string', length: value.length, alphabet: /^[0-9a-f]+$/.test(value) ? 'hex' : 'text' }
  if (typeof value === 'number') return { kind: 'number', integer: Number.isInteger(value) }
  if (typeof value === 'boolean') return { kind: 'boolean' }
  if (Array.isArray(value)) return { kind: 'array', items: value.map(shapeOf) }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
    return {
      kind: 'object',
      keys: entries.map(([key]) => key),
      values: Object.fromEntries(entries.map(([key, v]) => [key, shapeOf(v)])),
    }
  }
  throw new TypeError(`not a JSON value: ${typeof value}`)
}

/** Every byte a client socket receives, cut into frames at the 4-byte length prefixes (frame.ts). */
export class WireRecorder {
  readonly #chunks: Buffer[] = []

  constructor(raw: RawClient) {
    raw.socket.on('data', (chunk: Buffer) => this.#chunks.push(Buffer.from(chunk)))
  }

  frames(): Buffer[] {
    const bytes = Buffer.concat(this.#chunks)
    const frames: Buffer[] = []
    let at = 0
    while (at + 4 <= bytes.length) {
      const end = at + 4 + bytes.readUInt32BE(at)
      if (end > bytes.length) break
      frames.push(bytes.subarray(at, end))
      at = end
    }
    if (at !== bytes.length) throw new Error(`${bytes.length - at} bytes after the last whole frame`)
    return frames
  }
}

/** A failed login ends the conversation at once (conversation.ts); this bounds the wait for it. */
const CLOSE_WAIT_MS = 5_000

/** How a connection ended, as the client saw it. */
export interface Ending {
  /** The socket closed within CLOSE_WAIT_MS of the answer to M1. */
  closed: boolean
  /** The server half-closed (FIN) before the socket closed. */
  gotEnd: boolean
  /** Socket error codes seen (ECONNRESET for an abrupt close). */
  errors: string[]
  hadError: boolean
  frames: number
}

export interface ProofAttempt {
  challenge: Record<string, unknown>
  challengeBytes: Buffer
  error: unknown
  errorBytes: Buffer
  ending: Ending
}

/**
 * login_start, then login_proof with an M1 computed by the secure-remote-password client from
 * `password` (unstretched: enough to be wrong), then waits for the close. Raw frames throughout.
 */
export async function attemptProof(port: number, username: string, password: string): Promise<ProofAttempt> {
  const raw = await RawClient.open(port)
  const wire = new WireRecorder(raw)
  const errors: string[] = []
  let gotEnd = false
  let hadError = false
  raw.socket.on('end', () => (gotEnd = true))
  raw.socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message))
  raw.socket.on('close', (withError: boolean) => (hadError = withError))
  try {
    const ephemeral = srpClient.generateEphemeral()
    const challenge = await raw.request({ type: 'login_start', username, A: ephemeral.public })
    if (challenge?.type !== 'challenge') throw new Error(`login_start was answered with ${JSON.stringify(challenge)}`)
    const x = srpClient.derivePrivateKey(challenge.salt, username, password)
    const { proof: M1 } = srpClient.deriveSession(ephemeral.secret, challenge.B, challenge.salt, username, x)
    const error = await raw.request({ type: 'login_proof', M1 })
    const closed = await Promise.race([
      raw.closed.then(() => true),
      new Promise<false>((resolve) => setTimeout(resolve, CLOSE_WAIT_MS, false)),
    ])
    const frames = wire.frames()
    return {
      challenge,
      challengeBytes: frames[0]!,
      error,
      errorBytes: frames[1]!,
      ending: { closed, gotEnd, errors, hadError, frames: frames.length },
    }
  } finally {
    raw.close()
  }
}
