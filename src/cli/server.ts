import { constants, readFileSync } from 'node:fs'
import { invokedAs } from '../base/invoked.js'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import {
  acquireLock,
  createStore,
  openStore,
  refuseOrphanState,
  refuseSharedDirectory,
  storeExists,
  type RollbackMode,
  type Store,
} from '../store/index.js'
import { startServer } from '../server/server.js'
import { createJsonLogger, createTextLogger, createMemoryLogger, type Logger } from '../server/logger.js'
import { SecureLoginError } from '../protocol/errors.js'
import { checkPassphraseSource, readPassphrase } from './passphrase.js'
import { kdfFromArgs } from './store.js'
import { loadOrCreateCertificate } from './certs.js'
import { parseDuration } from './duration.js'
import { createLineWriter } from './line-writer.js'
import type { RegistrationPolicy } from '../server/invites.js'
import type { SrpEngineName } from '../auth/srp-engine.js'
import { RECOVERY_KDF, type RecoveryKdf } from '../auth/recovery-codes.js'
import { StageTimes } from '../server/stage-times.js'
import { DEFAULT_LIMITS, type ServerLimits } from '../server/context.js'
import type { Jwks } from '../protocol/signed-tokens.js'

export interface ServerArgs {
  host: string
  port: number
  store: string
  certs: string
  passphraseFile?: string | undefined
  json: boolean
  clockFile?: string | undefined
  kdfNice?: number | undefined
  kdfLogn?: number | undefined
  recoveryKdfLogn?: number | undefined
  lockoutAfter: number
  registrationsPerHour: number
  failureDelayMs?: number | undefined
  registration?: RegistrationPolicy | undefined
  sessionIdle: string
  sessionMax: string
  bootstrapTokenFile?: string | undefined
  srpEngine?: SrpEngineName | undefined
  stageTimes?: boolean | undefined
  connectionLimits?: string | undefined
  acceptRollback?: boolean | undefined
}

/** `securelogin server`: unlock (or create) the store, load (or make) the certificate, listen. */
export async function runServer(args: ServerArgs): Promise<void> {
  const lines = createLineWriter(process.stdout)
  const write = (line: string) => lines.write(line)
  const logger: Logger = args.json ? createJsonLogger(write) : createTextLogger(write)
  // Reports made before the server listens go to the log after its first line ("listening").
  const early = createMemoryLogger()
  // What start-up made (the store, the certificate) is told in the order it happens: on stderr
  // before `listening` for a person, after it in JSON, whose first line is `listening`.
  const made = (event: string, path: string, text: string) => {
    if (args.json) early.log('info', event, { path }, text)
    else process.stderr.write(`securelogin: ${text}\n`)
  }
  checkPassphraseSource(args.passphraseFile)
  // Checked before anything else, though it only applies when this run makes the store.
  const kdf = kdfFromArgs(args.kdfLogn)
  const recoveryKdf = recoveryKdfFromArgs(args.recoveryKdfLogn)
  const limits = connectionLimitsFromArgs(args.connectionLimits)
  if (!Number.isInteger(args.lockoutAfter) || args.lockoutAfter < 1 || args.lockoutAfter > 100) {
    throw new SecureLoginError('ERR_USAGE', '--lockout-after is an integer from 1 to 100', {
      hint: 'NIST SP 800-63B allows at most 100 failed attempts',
    })
  }
  const perHour = args.registrationsPerHour
  if (!Number.isInteger(perHour) || perHour < 1 || perHour > 100_000) {
    throw new SecureLoginError('ERR_USAGE', '--registrations-per-hour is an integer from 1 to 100000')
  }
  const budgets = { registrations: perHour, registrationPeriodMs: 3_600_000 }
  const guard = {
    lockAfter: args.lockoutAfter,
    ...(args.failureDelayMs !== undefined ? { baseDelayMs: args.failureDelayMs } : {}),
  }
  const sessions = {
    idleMs: parseDuration(args.sessionIdle, '--session-idle'),
    absoluteMs: parseDuration(args.sessionMax, '--session-max'),
  }
  if (sessions.idleMs < 60_000 || sessions.absoluteMs < sessions.idleMs) {
    throw new SecureLoginError(
      'ERR_USAGE',
      '--session-idle must be at least 1m and --session-max at least --session-idle',
    )
  }

  // The lock first: a store in use is refused before anyone types a passphrase.
  await mkdir(dirname(args.store), { recursive: true, mode: 0o700 })
  // The store's own directory is checked by acquireLock; a token file elsewhere, here.
  const tokenDir = bootstrapTokenPath(args) === undefined ? undefined : dirname(bootstrapTokenPath(args)!)
  if (tokenDir !== undefined && tokenDir !== dirname(args.store))
    await refuseSharedDirectory(tokenDir, 'bootstrap token directory')
  // Store reports (a torn tail cut off, a stale lock taken over, a compaction) go to the log.
  let sink: Logger = early
  const onReport = (event: string, fields: Record<string, unknown>) =>
    sink.log(WARNINGS.has(event) ? 'warn' : 'info', event, fields as never)
  const lock = await acquireLock(args.store, onReport)
  let store: Store
  const isNew = !storeExists(args.store)
  // A store older than its state file says is refused, unless a restore is accepted on purpose.
  const rollback: RollbackMode = args.acceptRollback ? 'accept' : 'refuse'
  try {
    // Before the passphrase: a deleted store is not silently replaced by a new, empty one.
    if (isNew && rollback === 'refuse') await refuseOrphanState(args.store, rollback)
    const passphrase = await readPassphrase({ file: args.passphraseFile, isNew, storePath: args.store })
    const opts = { onReport, lock, rollback }
    store = isNew
      ? await createStore(args.store, passphrase, { ...opts, kdf })
      : await openStore(args.store, passphrase, opts)
  } catch (error) {
    await lock.release()
    throw passphraseHint(error, args.passphraseFile)
  }
  if (isNew) made('store_created', args.store, `created store ${args.store}`)

  let server
  let stages: StageTimes | undefined
  try {
    const { cert, key, created } = await loadOrCreateCertificate(args.certs)
    if (created)
      made(
        'certificate_created',
        join(args.certs, 'server.crt'),
        `created certificate ${join(args.certs, 'server.crt')}`,
      )
    const bootstrap: Array<[string, Date]> = []
    stages = args.stageTimes ? new StageTimes() : undefined
    server = await startServer({
      host: args.host,
      port: args.port,
      cert,
      key,
      store,
      logger,
      guard,
      budgets,
      sessions,
      ...(args.registration ? { registration: args.registration } : {}),
      ...(args.srpEngine ? { srpEngine: args.srpEngine } : {}),
      ...(stages ? { stages } : {}),
      onBootstrapToken: (token, expiresAt) => bootstrap.push([token, expiresAt]),
      ...(args.clockFile ? { now: fileClock(args.clockFile) } : {}),
      ...(args.kdfNice === undefined ? {} : { kdfNice: args.kdfNice }),
      ...(recoveryKdf ? { recoveryKdf } : {}),
      ...(limits ? { limits } : {}),
    }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL' || error.code === 'EACCES') {
        throw new SecureLoginError('ERR_CONFIG', `cannot listen on ${args.host}:${args.port} (${error.code})`, {
          hint: 'choose another --port (0 picks a free one) or --host',
        })
      }
      throw error
    })
    const jwksPath = await writeJwks(args.certs, server.jwks)
    early.log(
      'info',
      'jwks_written',
      { path: jwksPath, keys: server.jwks.keys.length, kid: server.jwks.keys[0]!.kid },
      `wrote the token-signing public keys to ${jwksPath} (current key ${server.jwks.keys[0]!.kid})`,
    )
    for (const [token, expiresAt] of bootstrap) await showBootstrapToken(token, expiresAt, args, early)
    if (bootstrap.length === 0) await removeSpentBootstrapFile(args, early)
  } catch (error) {
    await server?.close()
    await store.close()
    throw error
  }

  // The login benchmark reads where the time went: SIGUSR2 logs the totals so far (set before
  // `listening`, which is when the benchmark may send it; unhandled, SIGUSR2 would end the process).
  const reportStages = () => stages && logger.log('info', 'stage_times', stages.report())
  if (stages) process.on('SIGUSR2', reportStages)
  logger.log(
    'info',
    'listening',
    { host: server.host, port: server.port, fingerprint: server.fingerprint, srpEngine: args.srpEngine ?? 'openssl' },
    `listening on ${server.host}:${server.port} (sha256 ${server.fingerprint})`,
  )
  for (const entry of early.entries) logger.log(entry.level, entry.event, entry.fields, entry.text)
  sink = logger

  await waitForSignal()
  if (stages) process.off('SIGUSR2', reportStages)
  logger.log('info', 'stopping', {}, 'stopping: finishing what is in flight')
  await server.close()
  await store.close()
  logger.log('info', 'stopped', {}, 'stopped')
  lines.flush()
}

/** The process ends with this error: trying again means starting the server again. */
function passphraseHint(error: unknown, file: string | undefined): unknown {
  if (!(error instanceof SecureLoginError) || error.code !== 'ERR_STORE_BAD_PASSPHRASE') return error
  return new SecureLoginError(error.code, error.message, {
    hint:
      file === undefined
        ? 'the store is unchanged; start the server again and type the right passphrase'
        : `the store is unchanged; put the right passphrase in ${file}, then start the server again`,
    cause: error,
  })
}

/**
 * The bootstrap token is a secret: it goes to the person at the terminal (stderr), or to
 * --bootstrap-token-file, or, with no terminal, to a 0600 file beside the store; never to the log.
 */
async function showBootstrapToken(token: string, expiresAt: Date, args: ServerArgs, log: Logger): Promise<void> {
  const file = bootstrapTokenPath(args)
  if (file === undefined) {
    process.stderr.write(
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

/** Where the bootstrap token is written, or undefined when it goes to the terminal. */
function bootstrapTokenPath(args: ServerArgs): string | undefined {
  return args.bootstrapTokenFile ?? (process.stderr.isTTY ? undefined : join(dirname(args.store), 'bootstrap-token'))
}

/**
 * Once a system_admin exists the token file holds a spent token: remove it, so nobody mistakes
 * it for a live one. Only a file that holds nothing but a bootstrap token is removed.
 */
async function removeSpentBootstrapFile(args: ServerArgs, log: Logger): Promise<void> {
  const file = bootstrapTokenPath(args)
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

/** A clock that reads the time from a file on every call: tests move time forward by writing it. */
function fileClock(file: string): () => number {
  return () => {
    const text = readFileSync(file, 'utf8').trim()
    const ms = Number(text)
    // An empty file is not time 0: that would unlock every lock and refill every budget.
    if (text === '' || !Number.isFinite(ms))
      throw new SecureLoginError('ERR_CONFIG', `--clock-file ${file} does not hold a time in milliseconds`)
    return ms
  }
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

/** `--recovery-kdf-logn` (tests only): no lower than 10, so that no server can be asked for a trivial hash. */
function recoveryKdfFromArgs(logN: number | undefined): RecoveryKdf | undefined {
  if (logN === undefined) return undefined
  if (!Number.isInteger(logN) || logN < 10 || logN > 20)
    throw new SecureLoginError('ERR_USAGE', '--recovery-kdf-logn is an integer from 10 to 20')
  return { ...RECOVERY_KDF, logN }
}

/** The deadlines `--connection-limits` may shorten: each a time in milliseconds. */
const CONNECTION_DEADLINES = [
  'frameMs',
  'lifetimeMs',
  'awaitingLifetimeMs',
  'idleMs',
  'awaitingCodeMs',
  'drainMs',
] as const satisfies ReadonlyArray<keyof ServerLimits>
type ConnectionDeadline = (typeof CONNECTION_DEADLINES)[number]
const MIN_DEADLINE_MS = 100

/**
 * `--connection-limits frameMs=1000,lifetimeMs=3000` (tests only): deadlines from 100 ms up to
 * their defaults, never above, so that the option can make no server more lenient to a hostile
 * client than the documented figures (docs/threat-model.md, "A hostile client").
 */
function connectionLimitsFromArgs(text: string | undefined): Partial<ServerLimits> | undefined {
  if (text === undefined) return undefined
  const usage = (message: string) =>
    new SecureLoginError('ERR_USAGE', `--connection-limits: ${message}`, {
      hint: `NAME=MS,... with NAME one of ${CONNECTION_DEADLINES.join(', ')}`,
    })
  const limits: Partial<Record<ConnectionDeadline, number>> = {}
  for (const item of text.split(',')) {
    const match = /^\s*([A-Za-z]+)=(\d+)\s*$/.exec(item)
    if (!match) throw usage(`expected NAME=MS, got ${JSON.stringify(item.slice(0, 40))}`)
    const name = match[1] as ConnectionDeadline
    if (!CONNECTION_DEADLINES.includes(name)) throw usage(`no deadline named ${JSON.stringify(name.slice(0, 40))}`)
    if (name in limits) throw usage(`${name} is given twice`)
    const ms = Number(match[2])
    if (!Number.isSafeInteger(ms) || ms < MIN_DEADLINE_MS || ms > DEFAULT_LIMITS[name])
      throw usage(`${name} is an integer from ${MIN_DEADLINE_MS} to its default, ${DEFAULT_LIMITS[name]}`)
    limits[name] = ms
  }
  return limits
}
