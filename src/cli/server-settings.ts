import { readFileSync } from 'node:fs'
import { SecureLoginError } from '../protocol/errors.js'
import type { KdfParams } from '../store/index.js'
import type { ServerOptions } from '../server/server.js'
import type { BudgetLimits } from '../server/budget.js'
import type { GuardLimits } from '../server/guard.js'
import type { SessionTimes } from '../server/sessions.js'
import type { RegistrationPolicy } from '../server/invites.js'
import type { SrpEngineName } from '../auth/srp-engine.js'
import { RECOVERY_KDF, type RecoveryKdf } from '../auth/recovery-codes.js'
import { DEFAULT_LIMITS, type ServerLimits } from '../server/context.js'
import { checkPassphraseSource } from './passphrase.js'
import { kdfFromArgs } from './store.js'
import { parseDuration } from './duration.js'
import { parseOpsListen, type OpsAddress } from '../server/ops.js'

// `securelogin server`'s options, checked and turned into the server's: the same in the one
// process and in each of `--workers`.

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
  workers?: number | undefined
  /** `--ops-listen HOST:PORT`: the operator listener (src/server/ops.ts), off when undefined. */
  opsListen?: string | undefined
}

/** What the options ask of the server, checked before anything is opened. */
export interface ServerSettings {
  kdf: KdfParams
  recoveryKdf: RecoveryKdf | undefined
  limits: Partial<ServerLimits> | undefined
  budgets: Partial<BudgetLimits>
  guard: Partial<GuardLimits>
  sessions: SessionTimes
  /** Where the operator listener listens (`--ops-listen`); undefined: it does not. */
  ops: OpsAddress | undefined
}

export function serverSettings(args: ServerArgs): ServerSettings {
  checkPassphraseSource(args.passphraseFile)
  // Checked before anything else, though it only applies when this run makes the store.
  const kdf = kdfFromArgs(args.kdfLogn)
  const recoveryKdf = recoveryKdfFromArgs(args.recoveryKdfLogn)
  const limits = connectionLimitsFromArgs(args.connectionLimits)
  const ops = args.opsListen === undefined ? undefined : parseOpsListen(args.opsListen)
  if (!Number.isInteger(args.lockoutAfter) || args.lockoutAfter < 1 || args.lockoutAfter > 100) {
    throw new SecureLoginError('ERR_USAGE', '--lockout-after is an integer from 1 to 100', {
      hint: 'NIST SP 800-63B allows at most 100 failed attempts',
    })
  }
  const perHour = args.registrationsPerHour
  if (!Number.isInteger(perHour) || perHour < 1 || perHour > 100_000) {
    throw new SecureLoginError('ERR_USAGE', '--registrations-per-hour is an integer from 1 to 100000')
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
  return {
    kdf,
    recoveryKdf,
    limits,
    budgets: { registrations: perHour, registrationPeriodMs: 3_600_000 },
    guard: {
      lockAfter: args.lockoutAfter,
      ...(args.failureDelayMs !== undefined ? { baseDelayMs: args.failureDelayMs } : {}),
    },
    sessions,
    ops,
  }
}

/** The options of `startServer` that come from the command line (the same in every worker). */
export function serverOptions(
  args: ServerArgs,
  settings: ServerSettings,
): Omit<ServerOptions, 'cert' | 'key' | 'store' | 'logger'> {
  return {
    host: args.host,
    port: args.port,
    guard: settings.guard,
    budgets: settings.budgets,
    sessions: settings.sessions,
    ...(args.registration ? { registration: args.registration } : {}),
    ...(args.srpEngine ? { srpEngine: args.srpEngine } : {}),
    ...(args.clockFile ? { now: fileClock(args.clockFile) } : {}),
    ...(args.kdfNice === undefined ? {} : { kdfNice: args.kdfNice }),
    ...(settings.recoveryKdf ? { recoveryKdf: settings.recoveryKdf } : {}),
    ...(settings.limits ? { limits: settings.limits } : {}),
  }
}

/** Turns listen errors into what a person can act on. */
export function listenError(args: ServerArgs): (error: NodeJS.ErrnoException) => never {
  return (error) => {
    if (error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL' || error.code === 'EACCES') {
      throw new SecureLoginError('ERR_CONFIG', `cannot listen on ${args.host}:${args.port} (${error.code})`, {
        hint: 'choose another --port (0 picks a free one) or --host',
      })
    }
    throw error
  }
}

/** A clock that reads the time from a file on every call: tests move time forward by writing it. */
export function fileClock(file: string): () => number {
  return () => {
    const text = readFileSync(file, 'utf8').trim()
    const ms = Number(text)
    // An empty file is not time 0: that would unlock every lock and refill every budget.
    if (text === '' || !Number.isFinite(ms))
      throw new SecureLoginError('ERR_CONFIG', `--clock-file ${file} does not hold a time in milliseconds`)
    return ms
  }
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
