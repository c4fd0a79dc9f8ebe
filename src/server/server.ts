import { srpEngine, type SrpEngineName } from '../auth/srp-engine.js'
import { RECOVERY_KDF, type RecoveryKdf } from '../auth/recovery-codes.js'
import { randomBytes as nodeRandomBytes, X509Certificate } from 'node:crypto'
import { createServer, type TLSSocket } from 'node:tls'
import type { AddressInfo, Socket } from 'node:net'
import { StoreConflict, type Store } from '../store/index.js'
import type { Logger } from './logger.js'
import { DEFAULT_LIMITS, type ServerContext, type ServerLimits } from './context.js'
import { Connection } from './connection.js'
import { DEFAULT_SESSION_TIMES, Sessions, type SessionTimes } from './sessions.js'
import { AuditLog } from './audit-log.js'
import { issueBootstrapToken, type RegistrationPolicy } from './invites.js'
import { auditBehind } from './audit-events.js'
import { KeyedQueue } from './keyed-queue.js'
import type { StageTimes } from './stage-times.js'
import { createKdfSlot } from './kdf-slot.js'
import { SigningKeys } from './signing-keys.js'
import type { Jwks } from '../protocol/signed-tokens.js'
import { DEFAULT_GUARD, Guard, MAX_LOCK_AFTER, type GuardLimits } from './guard.js'
import { Budgets, DEFAULT_BUDGETS, type BudgetLimits } from './budget.js'
import { DECOY_ACCOUNT_KEY, decoyAccountChange } from './login.js'
import { PendingNames } from './pending-names.js'
import type { ConnectionState, ServerMetrics } from './metrics.js'

export interface ServerOptions {
  host: string
  port: number
  cert: Buffer
  key: Buffer
  store: Store
  logger: Logger
  now?: () => number
  randomBytes?: (size: number) => Buffer
  limits?: Partial<ServerLimits>
  /** Failed-login delays and lockout (src/server/guard.ts). */
  guard?: Partial<GuardLimits>
  /** Refusals and registrations per address and account (src/server/budget.ts). */
  budgets?: Partial<BudgetLimits>
  /**
   * The KDF thread's nice value (19 unless given). The test suite gives 0: at 19, a machine busy
   * with other test files starves registrations and recovery-code logins for tens of seconds.
   */
  kdfNice?: number
  /**
   * The scrypt cost of new recovery-code hashes (RECOVERY_KDF, logN 14, unless given). Tests
   * only: the e2e suite's server processes ask for logN 10, as each registration hashes ten codes.
   */
  recoveryKdf?: RecoveryKdf
  sleep?: (ms: number) => Promise<void>
  /** Idle and absolute session timeouts (30 min and 12 h by default). */
  sessions?: Partial<SessionTimes>
  /** Who may register (src/server/invites.ts); default invite (the bootstrap token makes the first system_admin). */
  registration?: RegistrationPolicy
  /**
   * Called at start when the store has no system_admin, with a fresh single-use bootstrap token
   * for the first one (`register --bootstrap-token`). Without it no token is made.
   */
  onBootstrapToken?: (token: string, expiresAt: Date) => void
  maxConnections?: number
  /** A TLS handshake not finished within this is dropped (default 10 s). */
  handshakeTimeoutMs?: number
  /** Connections one address may hold at once, counted from the TCP accept (before TLS). */
  maxConnectionsPerAddress?: number
  /** How long a shutdown waits for conversations to finish what is in flight. */
  shutdownGraceMs?: number
  /** The SRP maths: `openssl` (default) or the secure-remote-password package's (for comparison). */
  srpEngine?: SrpEngineName
  /** Accumulates where login time goes (the login benchmark); off when undefined. */
  stages?: StageTimes
  /** How often ended sessions are deleted (default 10 min). */
  sessionSweepMs?: number
  /** The Prometheus metrics (`--ops-listen`, src/server/metrics.ts); nothing is counted without them. */
  metrics?: ServerMetrics
  /** Log lines dropped so far because the log could not be written (src/cli/line-writer.ts): for the metrics. */
  logLinesDropped?: () => number
}

export interface RunningServer {
  host: string
  port: number
  /** SHA-256 of the certificate's DER, colon-separated upper-case hex (as openssl prints it). */
  readonly fingerprint: string
  /**
   * New connections use this pair from now on; established ones keep the one they began with.
   * Throws (and keeps the pair in use) when TLS cannot use it. Returns the new fingerprint.
   */
  setCertificate(cert: Buffer, key: Buffer): string
  /** The token-signing public keys (what `certs/jwks.json` holds), the current one first. */
  jwks: Jwks
  /** Stops accepting, lets handlers in flight finish, ends every conversation. Does not close the store. */
  close(): Promise<void>
}

export const HANDSHAKE_TIMEOUT_MS = 10_000
/** TLS 1.3 alone, at start and for every pair set later (setSecureContext forgets what it is not given). */
const TLS_VERSIONS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const
export const SESSION_SWEEP_MS = 10 * 60_000
export const DEFAULT_MAX_CONNECTIONS = 1024
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64

/** What the server's conversations share, and how to release it (the KDF thread). */
export interface ServerCore {
  ctx: ServerContext
  close(): Promise<void>
}

/**
 * The shared context of every conversation, built from the options (no socket): the TLS server
 * below runs on it, and so can a test that drives conversations directly.
 */
export async function createServerCore(
  opts: Omit<ServerOptions, 'host' | 'port' | 'cert' | 'key'>,
): Promise<ServerCore> {
  const srp = srpEngine(opts.srpEngine)
  srp.prepare()
  const now = opts.now ?? Date.now
  const guardLimits = { ...DEFAULT_GUARD, ...opts.guard }
  if (!(guardLimits.lockAfter >= 1 && guardLimits.lockAfter <= MAX_LOCK_AFTER))
    throw new RangeError(`lockAfter must be 1 to ${MAX_LOCK_AFTER}`)
  const randomBytes = opts.randomBytes ?? nodeRandomBytes
  // The record a login of a name with no account reads (src/server/login.ts): made once. Two
  // processes starting together on a new store may both try: one makes it, the other uses it.
  if (!(await opts.store.has(DECOY_ACCOUNT_KEY))) {
    await opts.store.commit([{ ...decoyAccountChange(randomBytes, now()), expect: null }]).catch((error: unknown) => {
      if (!(error instanceof StoreConflict)) throw error
    })
  }
  const limits = { ...DEFAULT_LIMITS, ...opts.limits }
  const metrics = opts.metrics
  const kdfSlot = createKdfSlot({
    ...(opts.kdfNice === undefined ? {} : { nice: opts.kdfNice }),
    ...(metrics ? { onWait: (ms: number) => metrics.kdfWait(ms) } : {}),
  })
  const ctx: ServerContext = {
    store: opts.store,
    logger: opts.logger,
    now,
    randomBytes,
    sessions: await Sessions.load(opts.store, { ...DEFAULT_SESSION_TIMES, ...opts.sessions }, now()),
    audit: await AuditLog.open(opts.store, now),
    registration: opts.registration,
    // A name is held as long as a connection may wait for its enrolment code.
    pendingNames: new PendingNames(opts.store, now, randomBytes, limits.awaitingLifetimeMs),
    limits,
    perUser: new KeyedQueue(),
    guard: new Guard(opts.store, guardLimits, now, opts.logger, metrics),
    budgets: new Budgets({ ...DEFAULT_BUDGETS, ...opts.budgets }, now, (event) => auditBehind(ctx, event)),
    sleep: opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    srp,
    kdf: kdfSlot.run,
    recoveryKdf: opts.recoveryKdf ?? RECOVERY_KDF,
    signingKeys: await SigningKeys.load(opts.store, now()),
    stages: opts.stages,
    metrics,
  }
  metrics?.readFrom({
    store: opts.store,
    auditHead: () => ctx.audit.headN,
    kdfQueue: () => kdfSlot.queued,
    ...(opts.logLinesDropped ? { logLinesDropped: opts.logLinesDropped } : {}),
  })
  ctx.guard.onLocked = (user, address, failures, lockedUntil) =>
    auditBehind(ctx, {
      actor: null,
      action: 'user.locked',
      target: user,
      address,
      outcome: 'failed',
      details: { failures, until: new Date(lockedUntil).toISOString() },
    })
  return {
    ctx,
    async close() {
      // Failure counts and refusals' audit entries are written behind the answers: all of them
      // reach the store before it closes.
      await ctx.guard.flush()
      ctx.budgets.audit.flush()
      await ctx.audit.flush()
      await kdfSlot.close()
    },
  }
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const core = await createServerCore(opts)
  const { ctx } = core
  const now = ctx.now
  const randomBytes = ctx.randomBytes
  if (opts.onBootstrapToken) {
    const bootstrap = await issueBootstrapToken(opts.store, now(), randomBytes)
    if (bootstrap) opts.onBootstrapToken(bootstrap.token, new Date(bootstrap.expiresAt))
  }
  // Ended sessions nobody presents again would stay in memory and in the store until a restart.
  let sweeping: Promise<unknown> = Promise.resolve()
  const sweeper = setInterval(() => {
    sweeping = ctx.sessions
      .sweep(now())
      .then((count) => count > 0 && opts.logger.log('info', 'sessions_swept', { count }))
      .catch((error: unknown) => opts.logger.log('error', 'sessions_sweep_failed', { error: String(error) }))
  }, opts.sessionSweepMs ?? SESSION_SWEEP_MS).unref()
  const connections = new Set<Connection>()
  const metrics = ctx.metrics
  // With metrics: TCP connections open (those not yet in `connections` are in their handshake),
  // and when each was accepted, by address and port, for the TLS stage's time.
  let open = 0
  const acceptedAt = metrics && new Map<string, number>()
  metrics?.readFrom({
    connections: () => {
      const counts: Partial<Record<ConnectionState, number>> = {}
      for (const connection of connections) counts[connection.state] = (counts[connection.state] ?? 0) + 1
      counts.handshake = Math.max(0, open - connections.size)
      return counts
    },
  })
  const tlsServer = createServer({
    key: opts.key,
    cert: opts.cert,
    ...TLS_VERSIONS,
    handshakeTimeout: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
  })
  tlsServer.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  // Node drops a connection past maxConnections at its accept, before 'connection': say so, or a
  // full server refuses newcomers without a word in its log.
  tlsServer.on('drop', (data) => {
    metrics?.refused('too_many')
    opts.logger.log('warn', 'connection_refused', {
      address: data?.remoteAddress ?? 'unknown',
      reason: 'too many connections',
      limit: tlsServer.maxConnections,
    })
  })
  // Per address, from the TCP accept: one peer holding half-open handshakes must not take every
  // slot. The socket is dropped before any TLS work is spent on it.
  const perAddress = new Map<string, number>()
  const perAddressCap = opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
  tlsServer.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown'
    const held = perAddress.get(address) ?? 0
    if (held >= perAddressCap) {
      metrics?.refused('per_address')
      opts.logger.log('warn', 'connection_refused', {
        address,
        reason: 'too many connections from this address',
        limit: perAddressCap,
      })
      socket.destroy()
      return
    }
    perAddress.set(address, held + 1)
    // Every answer is one small frame: send it now. With Nagle's algorithm a real user's
    // challenge waited for the client's delayed ACK (about 40 ms) and a decoy's did not, which
    // told a guesser that the name exists (bench/enumeration.mjs).
    socket.setNoDelay(true)
    const peer = acceptedAt && `${address}|${socket.remotePort}`
    if (peer) {
      open += 1
      acceptedAt!.set(peer, performance.now())
    }
    socket.once('close', () => {
      const now = (perAddress.get(address) ?? 1) - 1
      if (now === 0) perAddress.delete(address)
      else perAddress.set(address, now)
      if (peer) {
        open -= 1
        acceptedAt!.delete(peer)
      }
    })
  })
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    const at = acceptedAt?.get(`${socket.remoteAddress}|${socket.remotePort}`)
    if (at !== undefined) metrics!.stageSince('tls', at)
    const connection = new Connection(socket, ctx)
    connections.add(connection)
    socket.on('close', () => connections.delete(connection))
  })
  // With a listener here Node no longer destroys the socket itself (handshake timeout, bad
  // ClientHello, a TLS 1.2 offer): do it, or a peer that never finishes a handshake keeps its slot.
  tlsServer.on('tlsClientError', (error, socket) => {
    metrics?.refused('tls')
    opts.logger.log('info', 'tls_refused', {
      address: socket.remoteAddress,
      reason: (error as NodeJS.ErrnoException).code ?? 'handshake failed',
    })
    socket.destroy()
  })

  await new Promise<void>((resolve, reject) => {
    tlsServer.once('error', reject)
    tlsServer.listen(opts.port, opts.host, () => {
      tlsServer.off('error', reject)
      resolve()
    })
  })
  const address = tlsServer.address() as AddressInfo

  let closing: Promise<void> | undefined
  let fingerprint = new X509Certificate(opts.cert).fingerprint256
  return {
    host: address.address,
    port: address.port,
    get fingerprint() {
      return fingerprint
    },
    setCertificate(cert, key) {
      tlsServer.setSecureContext({ key, cert, ...TLS_VERSIONS })
      fingerprint = new X509Certificate(cert).fingerprint256
      return fingerprint
    },
    jwks: ctx.signingKeys.jwks(),
    close() {
      closing ??= (async () => {
        clearInterval(sweeper)
        await sweeping
        const stopped = new Promise<void>((resolve) => tlsServer.close(() => resolve()))
        const grace = new Promise<void>((resolve) => setTimeout(resolve, opts.shutdownGraceMs ?? 5_000).unref())
        await Promise.race([Promise.all([...connections].map((c) => c.shutdown())), grace])
        await Promise.race([stopped, grace])
        await core.close()
      })()
      return closing
    },
  }
}
