import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { SecureLoginError, isErrorCode } from '../protocol/errors.js'
import { startServer } from '../server/server.js'
import type { ServerMetrics } from '../server/metrics.js'
import { issueBootstrapToken } from '../server/invites.js'
import { SigningKeys } from '../server/signing-keys.js'
import { createJsonLogger, createMemoryLogger, createTextLogger, type Logger } from '../server/logger.js'
import type { Store } from '../store/index.js'
import type { Jwks } from '../protocol/signed-tokens.js'
import { certificateReloader, loadOrCreateCertificate, onHangup } from './certs.js'
import { createLineWriter, droppedLinesReport, ignoreStderrErrors, logOutput } from './line-writer.js'
import { listenError, serverOptions, serverSettings, type ServerArgs } from './server-settings.js'
import { storeLocation, type StoreLocation } from './store-location.js'

// `securelogin server --workers N`: N processes accept on one port (Node's cluster module, with
// the listening socket shared and each worker accepting from it itself: SCHED_NONE). In Node's
// default round-robin the first process accepts and hands each connection on, and a connection
// handed to a worker as it dies is held by nobody: its client waited out its whole timeout (seen
// in test/e2e/postgres.test.ts). Shared, a dead worker's connections are closed by the kernel and
// the ones it never accepted are taken by the others. They share nothing but
// the database, which is why a file store, served by one process, is refused. The first process
// makes what must be made once (the store, the certificate, the signing keys, the bootstrap
// token), reads the passphrase once and hands it to each worker over the IPC channel: never on a
// command line or in the environment. It restarts a worker that dies.

export const MAX_WORKERS = 64
const WORKER_ENV = 'SECURELOGIN_WORKER'
/** A worker that dies is started again after this; one that keeps dying is not retried faster. */
const RESTART_MS = 1_000
const MAX_RESTART_MS = 60_000
const STOP_GRACE_MS = 15_000

/** How long the operator listener waits for the workers' metrics and health; one that is later is left out. */
const OPS_ASK_MS = 2_000

type ToWorker =
  | { type: 'start'; passphrase: string }
  | { type: 'log' }
  | { type: 'reload' }
  | { type: 'ops'; id: number }
  | { type: 'stop' }
/** A worker's metrics (prom-client's getMetricsAsJSON) and its store's health, for the operator listener. */
interface OpsReport {
  metrics: object[]
  health: string | undefined
}
type FromWorker =
  | { type: 'ready' }
  | { type: 'listening'; host: string; port: number; fingerprint: string }
  | { type: 'failed'; code: string; message: string; hint?: string }
  | ({ type: 'ops'; id: number } & OpsReport)

export function isWorkerProcess(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined
}

/** `--workers`: undefined for one process; refused for a file store. */
export function workersFromArgs(workers: number | undefined, location: StoreLocation): number | undefined {
  if (workers === undefined) return undefined
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS)
    throw new SecureLoginError('ERR_USAGE', `--workers is an integer from 1 to ${MAX_WORKERS}`)
  if (location.kind === 'file')
    throw new SecureLoginError(
      'ERR_USAGE',
      `--workers needs a PostgreSQL store: the store file ${location.shown} is served by one process`,
      {
        hint: 'give --store postgres://USER@HOST:PORT/DB (see docs/scaling.md), or leave out --workers',
      },
    )
  return workers
}

/** What the first process makes before any worker starts: the signing keys and the bootstrap token. */
export async function prepareShared(
  store: Store,
  now: () => number,
  onBootstrapToken: (token: string, expiresAt: Date) => void,
): Promise<Jwks> {
  const keys = await SigningKeys.load(store, now())
  const bootstrap = await issueBootstrapToken(store, now(), randomBytes)
  if (bootstrap) onBootstrapToken(bootstrap.token, new Date(bootstrap.expiresAt))
  return keys.jwks()
}

export interface WorkerPool {
  /** Where the workers listen (the same for all). */
  listening: { host: string; port: number; fingerprint: string }
  /** From now on the workers write their log lines (until now they kept them). */
  startLogging(logger: Logger): void
  /** SIGHUP, passed on: each worker reads the certificate and key again and logs what it did. */
  reloadCertificate(): void
  /** /metrics: the serving workers' metrics, summed (src/server/metrics.ts says how each is merged). */
  metrics(): Promise<{ contentType: string; text: string }>
  /** /readyz: undefined while a worker serves and none reports a problem with its store. */
  readiness(): Promise<string | undefined>
  stop(): Promise<void>
}

/** Starts `count` workers and resolves once every one listens; a worker that fails to start stops them all. */
export async function startWorkers(
  count: number,
  passphrase: string,
  log: { json: boolean; write: (line: string) => void },
): Promise<WorkerPool> {
  let stopping = false
  let logger: Logger | undefined
  const early = createMemoryLogger()
  const say: Logger = { log: (...entry) => (logger ?? early).log(...entry) }
  const live = new Map<number, Worker>()
  /** The workers that listen, by id: those the operator listener asks. */
  const serving = new Map<number, Worker>()
  /** Questions of the operator listener waiting for the workers' answers, by id. */
  const asks = new Map<number, (worker: number, report: OpsReport) => void>()
  let nextAsk = 0
  cluster.schedulingPolicy = cluster.SCHED_NONE

  const fork = (id: number): Promise<FromWorker & { type: 'listening' }> => {
    const worker = cluster.fork({ [WORKER_ENV]: String(id) })
    live.set(id, worker)
    return new Promise((resolve, reject) => {
      let started = false
      worker.on('message', (message: FromWorker) => {
        // Asked for once the worker listens for it: a message sent before is lost.
        if (message.type === 'ready') send(worker, { type: 'start', passphrase })
        else if (message.type === 'ops') asks.get(message.id)?.(id, message)
        else if (message.type === 'listening') {
          started = true
          serving.set(id, worker)
          // Its pid, for an operator (or a test) who wants to signal one worker.
          say.log('info', 'worker_listening', { worker: id, pid: worker.process.pid })
          if (logger) send(worker, { type: 'log' })
          resolve(message)
        } else if (message.type === 'failed') {
          const code = isErrorCode(message.code) ? message.code : 'ERR_INTERNAL'
          reject(new SecureLoginError(code, message.message, message.hint === undefined ? {} : { hint: message.hint }))
        }
      })
      worker.on('exit', (code, signal) => {
        if (live.get(id) === worker) live.delete(id)
        if (serving.get(id) === worker) serving.delete(id)
        if (!started) {
          reject(new SecureLoginError('ERR_INTERNAL', `worker ${id} exited before it listened (${signal ?? code})`))
          return
        }
        if (stopping) return
        say.log('warn', 'worker_exited', { worker: id, code: code ?? undefined, signal: signal ?? undefined })
        // The others go on serving; this one comes back in a moment.
        restart(id, RESTART_MS)
      })
    })
  }

  // A worker that cannot start again (its database unreachable, say) is tried again later,
  // each wait twice the last, up to a minute: the others serve meanwhile.
  const restart = (id: number, afterMs: number) => {
    setTimeout(() => {
      if (stopping) return
      fork(id).then(
        () => say.log('info', 'worker_restarted', { worker: id }),
        (error: Error) => {
          say.log('error', 'worker_restart_failed', { worker: id, error: error.message, retryInMs: afterMs * 2 })
          restart(id, Math.min(afterMs * 2, MAX_RESTART_MS))
        },
      )
    }, afterMs).unref()
  }

  const stop = async () => {
    stopping = true
    const exits = [...live.values()].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve()
          worker.once('exit', () => resolve())
          send(worker, { type: 'stop' })
          setTimeout(() => worker.process.kill('SIGKILL'), STOP_GRACE_MS).unref()
        }),
    )
    await Promise.all(exits)
  }

  /** Every serving worker's report, from those that answer within OPS_ASK_MS, by worker id. */
  const ask = async (): Promise<Map<number, OpsReport>> => {
    const id = nextAsk++
    const reports = new Map<number, OpsReport>()
    const asked = [...serving.entries()].filter(([, worker]) => worker.isConnected())
    if (asked.length === 0) return reports
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, OPS_ASK_MS)
      asks.set(id, (worker, { metrics, health }) => {
        reports.set(worker, { metrics, health })
        if (reports.size < asked.length) return
        clearTimeout(timer)
        resolve()
      })
      for (const [, worker] of asked) send(worker, { type: 'ops', id })
    })
    asks.delete(id)
    return reports
  }

  let first: FromWorker & { type: 'listening' }
  try {
    const started = await Promise.all(Array.from({ length: count }, (_, i) => fork(i + 1)))
    first = started[0]!
  } catch (error) {
    await stop()
    throw error
  }
  const format = log.json ? createJsonLogger(log.write) : createTextLogger(log.write)
  return {
    listening: { host: first.host, port: first.port, fingerprint: first.fingerprint },
    startLogging(main) {
      logger = main
      for (const entry of early.entries) format.log(entry.level, entry.event, entry.fields, entry.text)
      for (const worker of live.values()) send(worker, { type: 'log' })
    },
    reloadCertificate() {
      for (const worker of live.values()) send(worker, { type: 'reload' })
    },
    async metrics() {
      const reports = await ask()
      const { AggregatorRegistry } = await import('prom-client')
      const merged = AggregatorRegistry.aggregate([...reports.values()].map((report) => report.metrics))
      return { contentType: merged.contentType, text: await merged.metrics() }
    },
    async readiness() {
      if (serving.size === 0) return 'no worker is listening'
      const reports = await ask()
      if (reports.size === 0) return 'no worker answered'
      for (const [worker, { health }] of [...reports].sort(([a], [b]) => a - b))
        if (health !== undefined) return `worker ${worker}: ${health}`
      return undefined
    },
    stop,
  }
}

function send(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send(message)
}

/** One worker: waits for the passphrase, opens the store, listens on the shared port, serves until told to stop. */
export async function runWorker(args: ServerArgs): Promise<void> {
  const id = Number(process.env[WORKER_ENV])
  ignoreStderrErrors()
  const lines = createLineWriter(logOutput(), { droppedLine: droppedLinesReport(args.json, id), who: `worker ${id}` })
  const base: Logger = args.json
    ? createJsonLogger((line) => lines.write(line))
    : createTextLogger((line) => lines.write(line))
  // Every line names its worker; until the first process has written `listening`, lines wait.
  const early = createMemoryLogger()
  let sink: Logger = early
  const logger: Logger = {
    log: (level, event, fields = {}, text) =>
      sink.log(level, event, { worker: id, ...fields }, text === undefined ? undefined : `worker ${id}: ${text}`),
  }
  const messages = new EventTarget()
  process.on('message', (message: ToWorker) =>
    messages.dispatchEvent(new CustomEvent(message.type, { detail: message })),
  )
  const next = (type: ToWorker['type']) =>
    new Promise<ToWorker>((resolve) =>
      messages.addEventListener(type, (event) => resolve((event as CustomEvent<ToWorker>).detail), { once: true }),
    )
  let stopAsked = false
  messages.addEventListener('stop', () => (stopAsked = true))
  // A SIGHUP reaches a worker from the first process, or directly (a hangup reaches the whole
  // group): either way the worker reads the pair again, once it serves.
  const hangups = onHangup()
  messages.addEventListener('reload', hangups.hangup)
  messages.addEventListener('log', () => {
    for (const entry of early.entries) base.log(entry.level, entry.event, entry.fields, entry.text)
    sink = base
  })

  const starting = next('start')
  process.send?.({ type: 'ready' } satisfies FromWorker)
  const start = (await starting) as ToWorker & { type: 'start' }
  if (stopAsked) process.exit(0)
  let store: Store | undefined
  let server: Awaited<ReturnType<typeof startServer>> | undefined
  let metrics: ServerMetrics | undefined
  try {
    const settings = serverSettings(args)
    const location = storeLocation(args.store)
    const lock = await location.lock(() => {})
    store = await location.open(start.passphrase, lock, {
      onReport: (event, fields) => logger.log('info', event, fields as never),
    })
    const { cert, key } = await loadOrCreateCertificate(args.certs)
    // With --ops-listen each worker counts its own; the first process asks for them (below).
    // (prom-client is loaded only then: about 50 ms of every start otherwise.)
    if (settings.ops) metrics = new (await import('../server/metrics.js')).ServerMetrics({ process: true })
    const options = {
      ...serverOptions(args, settings),
      logLinesDropped: lines.dropped,
      ...(metrics ? { metrics } : {}),
    }
    server = await startServer({ ...options, cert, key, store, logger }).catch(listenError(args))
  } catch (error) {
    const failure = error instanceof SecureLoginError ? error : new SecureLoginError('ERR_INTERNAL', String(error))
    process.send?.({
      type: 'failed',
      code: failure.code,
      message: failure.message,
      ...(failure.hint === undefined ? {} : { hint: failure.hint }),
    } satisfies FromWorker)
    await store?.close()
    process.exit(1)
  }
  hangups.serving(certificateReloader(args.certs, logger, server))
  const serverStore = store
  messages.addEventListener('ops', (event) => {
    const { id } = (event as CustomEvent<ToWorker & { type: 'ops' }>).detail
    void Promise.all([metrics?.registry.getMetricsAsJSON() ?? [], serverStore.health()]).then(([json, health]) =>
      process.send?.({ type: 'ops', id, metrics: json, health } satisfies FromWorker),
    )
  })
  process.send?.({
    type: 'listening',
    host: server.host,
    port: server.port,
    fingerprint: server.fingerprint,
  } satisfies FromWorker)

  // Told to stop by the first process, or signalled directly (Ctrl-C reaches the whole group),
  // or orphaned: the first process is gone.
  await new Promise<void>((resolve) => {
    if (stopAsked) return resolve()
    void next('stop').then(() => resolve())
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
    process.once('disconnect', () => resolve())
  })
  await server.close()
  await store.close()
  logger.log('info', 'worker_stopped', {})
  lines.end()
  process.exit(0)
}
