import { Worker } from 'node:worker_threads'
import type { KdfRunner } from '../auth/recovery-codes.js'
import { scryptMemory, type ScryptCost } from '../base/scrypt.js'

// The server's own key derivation (recovery-code hashes: scrypt, 16 MiB and about 65 ms a call)
// runs on one thread of its own at the lowest CPU priority (nice 19), one call at a time.
// On the libuv thread pool, ten hashes at once took both cores of a two-core machine and a
// login's p99 rose fourteen times (bench/login.mjs, "half+recovery"); one at a time on the pool
// still took a core from the logins and the TLS handshakes. At nice 19 the scheduler gives that
// thread only the time nothing else wants, so a renewal waits for the logins rather than the
// other way round. (On Linux a thread's nice value is its own: setpriority(2) on a worker thread
// leaves the event loop's thread at its nice value. Where the call is refused, the thread runs at
// the process's priority and the slot still takes one call at a time.)

/** The worker's code, plain CommonJS so that it runs the same from src/ (tests) and dist/. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { scryptSync } = require('node:crypto')
let niced = false
try { require('node:os').setPriority(workerData.nice); niced = workerData.nice === 19 } catch {}
parentPort.on('message', ({ id, input, salt, N, r, p, keyBytes, maxmem }) => {
  const secret = new Uint8Array(input)
  try {
    const key = scryptSync(secret, new Uint8Array(salt), keyBytes, { N, r, p, maxmem })
    const out = new Uint8Array(key)
    key.fill(0)
    parentPort.postMessage({ id, key: out.buffer, niced }, [out.buffer])
  } catch (error) {
    parentPort.postMessage({ id, error: String((error && error.message) || error), niced })
  } finally {
    secret.fill(0)
  }
})
`

export interface KdfSlot {
  /** One scrypt call, queued behind the others: scryptAsync's answer, from the slot's thread. */
  run: KdfRunner
  /** Whether the slot's thread is running at nice 19; undefined before its first answer. */
  readonly niced: boolean | undefined
  /** Calls waiting, with the one on the thread (a metric read at scrape time). */
  readonly queued: number
  /** Stops the thread; calls still waiting are refused. */
  close(): Promise<void>
}

interface Waiting {
  resolve(key: Buffer): void
  reject(error: Error): void
}

/** The thread's nice value: 19 in service. The test suite runs it at the process's own (0). */
export const KDF_NICE = 19

/** One call waiting for the thread: copies of its inputs, moved to the thread when its turn comes. */
interface Job extends Waiting {
  secret: Uint8Array<ArrayBuffer>
  salt: Uint8Array<ArrayBuffer>
  cost: ScryptCost
  /** performance.now() when it was queued. */
  queuedAt: number
}

/**
 * `onWait`: told how long each call waited for the thread (ms), from its queueing to its start
 * there (the KDF wait metric).
 */
export function createKdfSlot(opts: { nice?: number; onWait?: (ms: number) => void } = {}): KdfSlot {
  const nice = opts.nice ?? KDF_NICE
  let worker: Worker | undefined
  let niced: boolean | undefined
  let nextId = 0
  /** The call on the thread (one at a time, so that an urgent call waits for one call at most). */
  const waiting = new Map<number, Waiting>()
  // Two lanes: a login's check of a recovery code goes before the hashes of new codes, however
  // many registrations have queued theirs.
  const urgent: Job[] = []
  const background: Job[] = []

  const failAll = (error: Error) => {
    for (const entry of [...waiting.values(), ...urgent.splice(0), ...background.splice(0)]) entry.reject(error)
    waiting.clear()
  }
  const start = (): Worker => {
    const thread = new Worker(WORKER_SOURCE, { eval: true, name: 'securelogin-kdf', workerData: { nice } })
    thread.on('message', (reply: { id: number; key?: ArrayBuffer; error?: string; niced: boolean }) => {
      niced = reply.niced
      const entry = waiting.get(reply.id)
      waiting.delete(reply.id)
      if (reply.key) entry?.resolve(Buffer.from(reply.key))
      else entry?.reject(new Error(`scrypt failed: ${reply.error}`))
      next()
    })
    thread.on('error', (error) => failAll(error))
    thread.on('exit', () => {
      if (worker === thread) worker = undefined
      failAll(new Error('the KDF thread stopped'))
    })
    return thread
  }
  const next = () => {
    if (waiting.size > 0) return
    const job = urgent.shift() ?? background.shift()
    if (!job) {
      worker?.unref()
      return
    }
    worker ??= start()
    worker.ref()
    const id = nextId++
    waiting.set(id, job)
    opts.onWait?.(performance.now() - job.queuedAt)
    const { cost } = job
    worker.postMessage(
      {
        id,
        input: job.secret.buffer,
        salt: job.salt.buffer,
        N: 2 ** cost.logN,
        r: cost.r,
        p: cost.p,
        keyBytes: 32,
        maxmem: 2 * scryptMemory(cost),
      },
      [job.secret.buffer, job.salt.buffer],
    )
  }

  return {
    get niced() {
      return niced
    },
    get queued() {
      return waiting.size + urgent.length + background.length
    },
    run(input: Buffer, salt: Buffer, cost: ScryptCost, opts: { urgent?: boolean } = {}): Promise<Buffer> {
      // Copies with buffers of their own, moved to the thread (not cloned: a Buffer may sit in
      // Node's shared pool, and a clone would copy the whole pool).
      const secret = new Uint8Array(input)
      const saltCopy = new Uint8Array(salt)
      const reply = new Promise<Buffer>((resolve, reject) =>
        (opts.urgent ? urgent : background).push({
          resolve,
          reject,
          secret,
          salt: saltCopy,
          cost,
          queuedAt: performance.now(),
        }),
      )
      next()
      return reply
    },
    async close() {
      const thread = worker
      worker = undefined
      failAll(new Error('the server is closing'))
      await thread?.terminate()
    },
  }
}
