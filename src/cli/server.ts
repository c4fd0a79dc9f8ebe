import { constants } from 'node:fs'
import { invokedAs } from '../base/invoked.js'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import {
  refuseOrphanState,
  refuseSharedDirectory,
  type KdfParams,
  type RollbackMode,
  type Store,
} from '../store/index.js'
import { startServer, type RunningServer } from '../server/server.js'
import { fileClock, listenError, serverOptions, serverSettings, type ServerArgs } from './server-settings.js'
import { storeLocation, type StoreLocation } from './store-location.js'
import { isWorkerProcess, prepareShared, runWorker, startWorkers, workersFromArgs, type WorkerPool } from './workers.js'
import { createJsonLogger, createTextLogger, createMemoryLogger, type Logger } from '../server/logger.js'
import { SecureLoginError } from '../protocol/errors.js'
import { isCredential, readPassphrase, serverPassphraseFile } from './passphrase.js'
import {
  certificateFingerprint,
  certificateReloader,
  loadOrCreateCertificate,
  onHangup,
  readCertificatePair,
} from './certs.js'
import { createLineWriter, droppedLinesReport, ignoreStderrErrors, logOutput, writeStderr } from './line-writer.js'
import { StageTimes } from '../server/stage-times.js'
import type { Jwks } from '../protocol/signed-tokens.js'
import type { ServerMetrics } from '../server/metrics.js'
import type { OpsListener } from '../server/ops.js'

/** `securelogin server`: unlock (or create) the store, load (or make) the certificate, listen. */
export async function runServer(args: ServerArgs & { printFingerprint?: boolean }): Promise<void> {
  if (args.printFingerprint) return printFingerprint(args)
  // Under systemd the passphrase may be the unit's credential; the workers check the same file.
  args = { ...args, passphraseFile: serverPassphraseFile(args.passphraseFile) }
  if (isWorkerProcess()) return runWorker(args)
  // Neither a log nor a stderr that cannot be written stops the server (line-writer.ts), nor
  // a SIGHUP: it reads the certificate and key again, for new connections (a worker reads its own).
  ignoreStderrErrors()
  const hangups = onHangup()
  const lines = createLineWriter(logOutput(), { droppedLine: droppedLinesReport(args.json) })
  const write = (line: string) => lines.write(line)
  const logger: Logger = args.json ? createJsonLogger(write) : createTextLogger(write)
  // Reports made before the server listens go to the log after its first line ("listening").
  const early = createMemoryLogger()
  // What start-up made (the store, the certificate) is told in the order it happens: on stderr
  // before `listening` for a person, after it in JSON, whose first line is `listening`.
  const made = (event: string, path: string, text: string) => {
    if (args.json) early.log('info', event, { path }, text)
    else writeStderr(`securelogin: ${text}\n`)
  }
  const settings = serverSettings(args)
  const location = storeLocation(args.store)
  const workers = workersFromArgs(args.workers, location)

  // The store's own directory is checked by acquireLock; a token file elsewhere, here.
  const tokenFile = bootstrapTokenPath(args, location)
  if (tokenFile !== undefined && (location.path === undefined || dirname(tokenFile) !== dirname(location.path))) {
    await mkdir(dirname(tokenFile), { recursive: true, mode: 0o700 })
    await refuseSharedDirectory(dirname(tokenFile), 'bootstrap token directory')
  }
  // With --ops-listen, the metrics (one process; each worker has its own). prom-client is loaded
  // only then: about 50 ms of every start otherwise.
  const metrics: ServerMetrics | undefined =
    settings.ops && workers === undefined
      ? new (await import('../server/metrics.js')).ServerMetrics({ process: true })
      : undefined
  // Store reports (a torn tail cut off, a stale lock taken over, a compaction) go to the log.
  let sink: Logger = early
  const onReport = (event: string, fields: Record<string, unknown>) => {
    if (event === 'store_compacted') metrics?.compacted(Number(fields['ms']))
    else if (event === 'store_compaction_failed') metrics?.compacted(undefined)
    sink.log(WARNINGS.has(event) ? 'warn' : 'info', event, fields as never)
  }
  const { store, isNew, forWorkers } = await openServerStore(args, location, settings.kdf, onReport)
  if (isNew) made('store_created', location.shown, `created store ${location.shown}`)

  let server: RunningServer | undefined
  let pool: WorkerPool | undefined
  let stages: StageTimes | undefined
  let ops: OpsListener | undefined
  try {
    const { cert, key, created } = await loadOrCreateCertificate(args.certs)
    if (created)
      made(
        'certificate_created',
        join(args.certs, 'server.crt'),
        `created certificate ${join(args.certs, 'server.crt')}`,
      )
    const bootstrap: Array<[string, Date]> = []
    const onBootstrapToken = (token: string, expiresAt: Date) => bootstrap.push([token, expiresAt])
    let jwks: Jwks
    if (workers === undefined) {
      stages = args.stageTimes ? new StageTimes() : undefined
      server = await startServer({
        ...serverOptions(args, settings),
        cert,
        key,
        store,
        logger,
        ...(stages ? { stages } : {}),
        onBootstrapToken,
        logLinesDropped: lines.dropped,
        ...(metrics ? { metrics } : {}),
      }).catch(listenError(args))
      jwks = server.jwks
    } else {
      // The workers serve; this process makes what must be made once (the bootstrap token,
      // the signing keys), then hands the passphrase to each worker over its IPC channel.
      jwks = await prepareShared(store, args.clockFile ? fileClock(args.clockFile) : Date.now, onBootstrapToken)
      await store.close()
      pool = await startWorkers(workers, forWorkers!, { json: args.json, write })
    }
    if (settings.ops) {
      const serving = server
      const { startOpsListener } = await import('../server/ops.js')
      ops = await startOpsListener({
        ...settings.ops,
        cert,
        key,
        logger,
        metrics: serving ? () => metrics!.text() : () => pool!.metrics(),
        readiness: serving ? () => store.health() : () => pool!.readiness(),
      })
    }
    const jwksPath = await writeJwks(args.certs, jwks)
    early.log(
      'info',
      'jwks_written',
      { path: jwksPath, keys: jwks.keys.length, kid: jwks.keys[0]!.kid },
      `wrote the token-signing public keys to ${jwksPath} (current key ${jwks.keys[0]!.kid})`,
    )
    for (const [token, expiresAt] of bootstrap) await showBootstrapToken(token, expiresAt, args, location, early)
    if (bootstrap.length === 0) await removeSpentBootstrapFile(args, location, early)
  } catch (error) {
    await ops?.close()
    await server?.close()
    await pool?.stop()
    await store.close()
    throw error
  }

  // The login benchmark reads where the time went: SIGUSR2 logs the totals so far (set before
  // `listening`, which is when the benchmark may send it; unhandled, SIGUSR2 would end the process).
  const reportStages = () => stages && logger.log('info', 'stage_times', stages.report())
  if (stages) process.on('SIGUSR2', reportStages)
  hangups.serving(
    server
      ? certificateReloader(args.certs, logger, withOps(server, ops))
      : () => {
          pool!.reloadCertificate()
          // The workers say what they did; an HTTPS operator listener here follows a good pair.
          if (ops?.tls)
            void readCertificatePair(args.certs).then(
              (pair) => ops.setCertificate(pair.cert, pair.key),
              () => {},
            )
        },
  )
  const listening = server ?? pool!.listening
  logger.log(
    'info',
    'listening',
    {
      host: listening.host,
      port: listening.port,
      fingerprint: listening.fingerprint,
      srpEngine: args.srpEngine ?? 'openssl',
      ...(workers === undefined ? {} : { workers }),
    },
    `listening on ${listening.host}:${listening.port} (sha256 ${listening.fingerprint})` +
      (workers === undefined ? '' : ` with ${workers} worker processes`),
  )
  if (ops)
    logger.log(
      'info',
      'ops_listening',
      { host: ops.host, port: ops.port, tls: ops.tls },
      `operator listener on ${ops.tls ? 'https' : 'http'}://${ops.host}:${ops.port} (/healthz, /readyz, /metrics)`,
    )
  for (const entry of early.entries) logger.log(entry.level, entry.event, entry.fields, entry.text)
  sink = logger
  pool?.startLogging(logger)

  await waitForSignal()
  // From now on /readyz says "stopping", so a load balancer sends no one new while what is in
  // flight finishes; the listener stays up until the store is closed.
  ops?.stopping()
  if (stages) process.off('SIGUSR2', reportStages)
  logger.log('info', 'stopping', {}, 'stopping: finishing what is in flight')
  await server?.close()
  await pool?.stop()
  await store.close()
  await ops?.close()
  logger.log('info', 'stopped', {}, 'stopped')
  lines.end()
}

/** The server, whose certificate the operator listener (HTTPS) follows when a reload succeeds. */
function withOps(server: RunningServer, ops: OpsListener | undefined) {
  return {
    get fingerprint() {
      return server.fingerprint
    },
    setCertificate(cert: Buffer, key: Buffer) {
      const fingerprint = server.setCertificate(cert, key)
      ops?.setCertificate(cert, key)
      return fingerprint
    },
  }
}

/** `--print-fingerprint`: what `listening` would show for the certificate in --certs, then exit. */
async function printFingerprint(args: ServerArgs): Promise<void> {
  const { path, fingerprint } = await certificateFingerprint(args.certs)
  if (!args.json) return void process.stdout.write(`${fingerprint}\n`)
  createJsonLogger((line) => process.stdout.write(`${line}\n`)).log('info', 'certificate_fingerprint', {
    path,
    fingerprint,
  })
}

/**
 * Takes the lock (a file store), asks for the passphrase, opens or makes the store. A store
 * in use is refused before anyone types a passphrase, and a deleted one is not silently replaced.
 */
async function openServerStore(
  args: ServerArgs,
  location: StoreLocation,
  kdf: KdfParams,
  onReport: (event: string, fields: Record<string, unknown>) => void,
): Promise<{ store: Store; isNew: boolean; forWorkers: string | undefined }> {
  const lock = await location.lock(onReport)
  const isNew = !(await location.exists().catch(async (error: unknown) => {
    await lock.release()
    throw error
  }))
  // A store older than its state file says is refused, unless a restore is accepted on purpose.
  const rollback: RollbackMode = args.acceptRollback ? 'accept' : 'refuse'
  try {
    if (isNew && rollback === 'refuse' && location.path !== undefined) await refuseOrphanState(location.path, rollback)
    const passphrase = await readPassphrase({ file: args.passphraseFile, isNew, storePath: location.shown })
    const opts = { onReport, ...(location.kind === 'file' ? { rollback } : {}) }
    const store = isNew
      ? await location.create(passphrase, lock, { ...opts, kdf })
      : await location.open(passphrase, lock, opts)
    // Kept only to hand to the workers, which each open the store themselves.
    return { store, isNew, forWorkers: args.workers === undefined ? undefined : passphrase }
  } catch (error) {
    await lock.release()
    throw passphraseHint(error, args.passphraseFile)
  }
}

/** The process ends with this error: trying again means starting the server again. */
function passphraseHint(error: unknown, file: string | undefined): unknown {
  if (!(error instanceof SecureLoginError) || error.code !== 'ERR_STORE_BAD_PASSPHRASE') return error
  return new SecureLoginError(error.code, error.message, {
    hint:
      file === undefined
        ? 'the store is unchanged; start the server again and type the right passphrase'
        : isCredential(file)
          ? // systemd's copy is remade at each start: the file to fix is the unit's LoadCredential= source.
            "the store is unchanged; put the right passphrase in the file the unit's LoadCredential=passphrase:... " +
            'names (deploy/securelogin.service: /etc/securelogin/passphrase), then start the service again'
          : `the store is unchanged; put the right passphrase in ${file}, then start the server again`,
    cause: error,
  })
}

/**
 * The bootstrap token is a secret: it goes to the person at the terminal (stderr), or to
 * --bootstrap-token-file, or, with no terminal, to a 0600 file beside the store; never to the log.
 */
async function showBootstrapToken(
  token: string,
  expiresAt: Date,
  args: ServerArgs,
  location: StoreLocation,
  log: Logger,
): Promise<void> {
  const file = bootstrapTokenPath(args, location)
  if (file === undefined) {
    writeStderr(
      `\nno system_admin yet: the first to register with this token becomes one (single use, expires ` +
        `${expiresAt.toISOString()}):\n\n  ${token}\n\n  ${invokedAs()} register --bootstrap-token ${token}\n\n`,
    )
    return
  }
  await replaceFile(file, `${token}\n`)
  log.log(
    'info',
    'bootstrap_token_written',
    { path: file, expiresAt: expiresAt.toISOString() },
    `no system_admin yet: the bootstrap token (single use, expires ${expiresAt.toISOString()}) is in ${file}; to ` +
      `become the first system_admin: ${invokedAs()} register --bootstrap-token "$(cat ${file})"`,
  )
}

/**
 * Where the bootstrap token is written, or undefined when it goes to the terminal. Without a
 * terminal: beside the store file, or for a database in the certificate directory (this
 * machine's own, made 0700).
 */
function bootstrapTokenPath(args: ServerArgs, location: StoreLocation): string | undefined {
  if (args.bootstrapTokenFile !== undefined) return args.bootstrapTokenFile
  if (process.stderr.isTTY) return undefined
  return join(location.path === undefined ? args.certs : dirname(location.path), 'bootstrap-token')
}

/**
 * Once a system_admin exists the token file holds a spent token: remove it, so nobody mistakes
 * it for a live one. Only a file that holds nothing but a bootstrap token is removed.
 */
async function removeSpentBootstrapFile(args: ServerArgs, location: StoreLocation, log: Logger): Promise<void> {
  const file = bootstrapTokenPath(args, location)
  if (file === undefined) return
  // Not through a symbolic link: whatever it points at is not ours to read.
  const text = await readNoFollow(file).catch(() => undefined)
  if (text === undefined || !/^slb_[A-Za-z0-9_-]{43}\n?$/.test(text)) return
  await rm(file, { force: true })
  log.log(
    'info',
    'bootstrap_token_removed',
    { path: file },
    `removed ${file}: a system_admin exists, so its bootstrap token is spent`,
  )
}

/**
 * Writes `text` to a file of our own and renames it over `path`. A file someone planted at `path`
 * (mode 0666, or a hard link they keep, or a symbolic link to somewhere else) is replaced, never
 * written through: the new file is created with O_EXCL and O_NOFOLLOW, so it is a fresh inode with
 * mode `mode` that nobody else has open, and rename replaces the name, not what it points at.
 */
async function replaceFile(path: string, text: string, mode = 0o600): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await open(temporary, flags, mode)
  try {
    try {
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temporary, path)
  } catch (error) {
    await rm(temporary, { force: true })
    throw error
  }
}

async function readNoFollow(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    return await handle.readFile('utf8')
  } finally {
    await handle.close()
  }
}

/**
 * CERTS/jwks.json: the public keys applications verify tokens with (public, so mode 0644),
 * replaced whole (written beside, then renamed) so a reader never sees half a file.
 */
async function writeJwks(certs: string, jwks: Jwks): Promise<string> {
  const path = join(certs, 'jwks.json')
  await replaceFile(path, `${JSON.stringify(jwks, null, 2)}\n`, 0o644)
  return path
}

const WARNINGS = new Set([
  'store_torn_tail',
  'store_rollback_accepted',
  'store_state_write_failed',
  'store_lock_taken_over',
  'store_leftover_removed',
  'store_compaction_failed',
])

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(signal)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
