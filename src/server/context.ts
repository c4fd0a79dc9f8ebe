import type { Store } from '../store/index.js'
import type { Logger } from './logger.js'
import type { Sessions } from './sessions.js'
import type { AuditLog } from './audit-log.js'
import type { RegistrationPolicy } from './invites.js'
import type { KeyedQueue } from './keyed-queue.js'
import type { Guard } from './guard.js'
import type { SrpServerEngine } from '../auth/srp-engine.js'
import type { StageTimes } from './stage-times.js'
import type { KdfRunner, RecoveryKdf } from '../auth/recovery-codes.js'
import type { SigningKeys } from './signing-keys.js'
import type { Budgets } from './budget.js'
import type { PendingNames } from './pending-names.js'
import type { ServerMetrics } from './metrics.js'

/** What every conversation shares: injected so a test can fix the clock and randomness. */
export interface ServerContext {
  store: Store
  logger: Logger
  now: () => number
  randomBytes: (size: number) => Buffer
  sessions: Sessions
  /** The hash-chained audit log in the store. */
  audit: AuditLog
  /** Undefined: invite (only the bootstrap token while there is no system_admin; src/server/invites.ts). */
  registration: RegistrationPolicy | undefined
  /** Names with a registration waiting for its enrolment code, held in the store (src/server/pending-names.ts). */
  pendingNames: PendingNames
  limits: ServerLimits
  /**
   * Per-user serialisation in this process of what must not race (the TOTP replay check): it
   * saves conflicts here; across processes each such body commits with `expect` (src/server/retry.ts).
   */
  perUser: KeyedQueue
  /** Failed-login counting, delays and lockout. */
  guard: Guard
  /** Refusals and registrations counted per address and account (src/server/budget.ts). */
  budgets: Budgets
  /** How a failure answer waits (injected by tests). */
  sleep: (ms: number) => Promise<void>
  /** The SRP maths (`--srp-engine`). */
  srp: SrpServerEngine
  /** Runs the server's scrypt calls one at a time, on a low-priority thread (src/server/kdf-slot.ts). */
  kdf: KdfRunner
  /** The scrypt cost of new recovery-code hashes (RECOVERY_KDF unless the tests ask for less). */
  recoveryKdf: RecoveryKdf
  /** The token-signing keys (src/server/signing-keys.ts). */
  signingKeys: SigningKeys
  /** Where login time goes, when the benchmark asks (`--stage-times`); else undefined. */
  stages?: StageTimes | undefined
  /** The Prometheus metrics, with `--ops-listen` (src/server/metrics.ts); else undefined and nothing is counted. */
  metrics?: ServerMetrics | undefined
}

/** What one connection may take (src/server/connection.ts; docs/threat-model.md, "A hostile client"). */
export interface ServerLimits {
  /** A connection with nothing to say for this long is closed. */
  idleMs: number
  /** While a person is reading a code off a phone (enrolment, login), the wait is longer. */
  awaitingCodeMs: number
  /** Wrong enrolment codes allowed on one connection before it is closed. */
  enrolAttempts: number
  /** A frame must be whole this long after the server starts waiting for its first byte. */
  frameMs: number
  /** A connection that is not logged in is closed this long after it was accepted... */
  lifetimeMs: number
  /** ...or this long, while a person is reading a code off a phone. */
  awaitingLifetimeMs: number
  /** Reading stops while more than this many received bytes wait to be taken as messages. */
  readBufferBytes: number
  /** The next message is taken only while the unsent output is under this. */
  outputHighWater: number
  /** Unsent output above this ends the connection at once. */
  outputCapBytes: number
  /** Output above the high-water mark that the peer leaves unread this long ends the connection. */
  drainMs: number
}

export const DEFAULT_LIMITS: ServerLimits = {
  idleMs: 60_000,
  awaitingCodeMs: 5 * 60_000,
  enrolAttempts: 5,
  frameMs: 10_000,
  lifetimeMs: 2 * 60_000,
  awaitingLifetimeMs: 5 * 60_000,
  readBufferBytes: 128 * 1024,
  outputHighWater: 64 * 1024,
  outputCapBytes: 256 * 1024,
  drainMs: 10_000,
}
