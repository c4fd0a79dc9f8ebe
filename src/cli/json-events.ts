import { z } from 'zod'
import { ERROR_CODES } from '../protocol/errors.js'
import { Role, SessionId, Token, base64url, hex, isoTime, otpauthUri, username } from '../protocol/fields.js'
import { Audience, SignedToken, TokenClaims } from '../protocol/signed-tokens.js'
import type { AccountSummary, AuditEntry, SessionInfo } from '../protocol/calls.js'

// Every JSON line the CLI prints with --json, one schema per event (docs/cli-json.md is the
// reference and names the same fields). The CLI's printing is typed by these schemas, and the
// test suite validates every line the CLI prints in the e2e tests against them, so the code, the
// schemas and the document cannot drift apart. They are the CLI's contract, not the wire's:
// results from the server are mapped into them field by field, so a new field on the wire never
// shows up in a script's input unannounced.
//
// One meaning per name, everywhere in this file:
// - `expiresAt`: the absolute end of the thing (a session ends then whatever its use; an invite or
//   a token is refused from then on).
// - `idleExpiresAt`: when a session ends if nothing uses it again (the idle end, or `expiresAt`
//   if that is earlier). Each use moves it later, never past `expiresAt`.

const event = <Name extends string, Shape extends z.ZodRawShape>(name: Name, shape: Shape) =>
  z.strictObject({ event: z.literal(name) }).extend(shape)

const count = z.int().min(0)
const path = z.string().min(1)
/** The server as given to --server: HOST:PORT. */
const server = z.string().min(1)

/** The store's key-derivation parameters, as in its header (docs/store-format.md). */
export const KdfJson = z.strictObject({ name: z.literal('scrypt'), logN: z.int(), r: z.int(), p: z.int() })

/** A session as `whoami` and `sessions` print it. */
export const SessionJson = z.strictObject({
  id: SessionId,
  user: username,
  /** The address the login came from. */
  address: z.string().max(64),
  createdAt: isoTime,
  lastSeenAt: isoTime,
  expiresAt: isoTime,
  idleExpiresAt: isoTime,
  /** The session the command ran as. */
  current: z.boolean(),
})
export type SessionJson = z.infer<typeof SessionJson>

/**
 * The wire's session (`SessionInfo`) says `expiresAt` for the end if unused and
 * `absoluteExpiresAt` for the absolute end; the CLI's names are the ones a login prints.
 */
export function sessionJson(info: SessionInfo): SessionJson {
  return {
    id: info.id,
    user: info.user,
    address: info.address,
    createdAt: info.createdAt,
    lastSeenAt: info.lastSeenAt,
    expiresAt: info.absoluteExpiresAt,
    idleExpiresAt: info.expiresAt,
    current: info.current,
  }
}

export const AccountJson = z.strictObject({
  user: username,
  role: Role,
  createdAt: isoTime,
  lastLoginAt: isoTime.nullable(),
  locked: z.boolean(),
  lockedUntil: isoTime.nullable(),
  twoFactor: z.enum(['enrolled', 'reset']),
  recoveryCodesLeft: z.int().min(0).max(10),
})
export type AccountJson = z.infer<typeof AccountJson>

export const accountJson = (a: AccountSummary): AccountJson => ({
  user: a.user,
  role: a.role,
  createdAt: a.createdAt,
  lastLoginAt: a.lastLoginAt,
  locked: a.locked,
  lockedUntil: a.lockedUntil,
  twoFactor: a.twoFactor,
  recoveryCodesLeft: a.recoveryCodesLeft,
})

const AuditHeadJson = z.strictObject({ n: count, hash: hex(64) })
const AuditProblemJson = z.strictObject({ n: count, problem: z.string() })
/** A verification of the audit log's hash chain (`admin audit verify`, `store verify`). */
export const AuditCheckJson = z.strictObject({
  ok: z.boolean(),
  entries: count,
  head: AuditHeadJson,
  problems: z.array(AuditProblemJson),
})

const auditEntryShape = {
  n: z.int().min(1),
  at: isoTime,
  actor: username.nullable(),
  action: z.string().regex(/^[a-z0-9_.]{1,64}$/),
  target: z.string().nullable(),
  address: z.string().nullable(),
  outcome: z.enum(['ok', 'failed', 'refused']),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  prev: hex(64),
  hash: hex(64),
}

const storeStatsShape = {
  formatVersion: z.int(),
  kdf: KdfJson,
  /** The store's id, 32 hex digits (tokens name it as their issuer). */
  storeId: hex(32),
  fileSize: count,
}

const compactionShape = {
  recordsBefore: count,
  recordsAfter: count,
  bytesBefore: count,
  bytesAfter: count,
  ms: z.number().min(0),
}

const recoveryCodes = z.array(z.string().min(1)).length(10)

// Events on stdout, by command (docs/cli-json.md has the same order).

/** A new authenticator to enrol; its first code is read from the next stdin line. */
export const EnrolEvent = event('enrol', { otpauthUri })
export const RegisteredEvent = event('registered', { user: username, recoveryCodes })
export const LoginEvent = event('login', {
  user: username,
  role: Role,
  sessionId: SessionId,
  expiresAt: isoTime,
  idleExpiresAt: isoTime,
  /** Only after a login with a recovery code: how many unused ones remain. */
  recoveryCodesLeft: z.int().min(0).max(10).optional(),
})
export const RecoveryCodesEvent = event('recovery_codes', { user: username, recoveryCodes })
export const WhoamiEvent = event('whoami', { user: username, role: Role, server, session: SessionJson })
export const LogoutEvent = event('logout', { server, revoked: count })
export const SessionsEvent = event('sessions', { sessions: z.array(SessionJson) })
export const RevokedEvent = event('revoked', { revoked: count })
export const PasswordChangedEvent = event('password_changed', { user: username, revokedSessions: count })
export const TotpResetEvent = event('totp_reset', { user: username })
export const TokenEvent = event('token', {
  audience: Audience,
  token: SignedToken,
  kid: base64url(43),
  jti: base64url(22),
  expiresAt: isoTime,
})
export const TokenValidEvent = event('token_valid', { claims: TokenClaims, sessionChecked: z.boolean() })
export const UsersEvent = event('users', { users: z.array(AccountJson) })
export const InviteEvent = event('invite', {
  token: Token,
  role: Role,
  /** The only name it registers (`admin add`), or null: any new name (`admin invite`). */
  user: username.nullable(),
  expiresAt: isoTime,
})
export const RemovedEvent = event('removed', { user: username, revokedSessions: count })
export const RoleEvent = event('role', { user: username, role: Role, previous: Role })
export const Reset2faEvent = event('reset_2fa', { user: username, revokedSessions: count })
export const UnlockEvent = event('unlock', { user: username, wasLocked: z.boolean() })
export const AuditEvent = event('audit', auditEntryShape)
export const AuditVerifyEvent = event('audit_verify', AuditCheckJson.shape)
export const StoreCreatedEvent = event('store_created', { path, kdf: KdfJson })
export const StoreInfoEvent = event('store_info', { path, ...storeStatsShape })
export const StoreVerifiedEvent = event('store_verified', {
  path,
  ok: z.boolean(),
  ...storeStatsShape,
  records: count,
  entries: count,
  live: count,
  dead: count,
  users: count,
  audit: AuditCheckJson,
  state: z.strictObject({ path, kept: z.boolean(), ok: z.boolean(), problem: z.string().optional() }),
  tornTail: z.strictObject({ offset: count, length: count }).optional(),
})
export const StoreCompactedEvent = event('store_compacted', { path, ...compactionShape })
export const StoreRekeyedEvent = event('store_rekeyed', { path, kdf: KdfJson })
export const StoreCopiedEvent = event('store_copied', { from: path, to: path, keys: z.int().min(0) })
export const SigningKeyRotatedEvent = event('signing_key_rotated', {
  path,
  kid: base64url(43),
  retired: base64url(43).nullable(),
  keys: z.int().min(1),
})

const fingerprint = z.string().regex(/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/)
export const KnownServersEvent = event('known_servers', {
  file: path,
  servers: z.array(z.strictObject({ server, fingerprint })),
})
export const ServerTrustedEvent = event('server_trusted', { server, fingerprint, replaced: count })
export const ServerForgottenEvent = event('server_forgotten', { server, removed: count })

export const StdoutEvent = z.discriminatedUnion('event', [
  EnrolEvent,
  KnownServersEvent,
  ServerTrustedEvent,
  ServerForgottenEvent,
  RegisteredEvent,
  LoginEvent,
  RecoveryCodesEvent,
  WhoamiEvent,
  LogoutEvent,
  SessionsEvent,
  RevokedEvent,
  PasswordChangedEvent,
  TotpResetEvent,
  TokenEvent,
  TokenValidEvent,
  UsersEvent,
  InviteEvent,
  RemovedEvent,
  RoleEvent,
  Reset2faEvent,
  UnlockEvent,
  AuditEvent,
  AuditVerifyEvent,
  StoreCreatedEvent,
  StoreInfoEvent,
  StoreVerifiedEvent,
  StoreCompactedEvent,
  StoreRekeyedEvent,
  StoreCopiedEvent,
  SigningKeyRotatedEvent,
])
export type StdoutEvent = z.infer<typeof StdoutEvent>

export const auditEvent = (entry: AuditEntry): z.infer<typeof AuditEvent> => ({
  event: 'audit',
  n: entry.n,
  at: entry.at,
  actor: entry.actor,
  action: entry.action,
  target: entry.target,
  address: entry.address,
  outcome: entry.outcome,
  ...(entry.details !== undefined ? { details: entry.details } : {}),
  prev: entry.prev,
  hash: entry.hash,
})

// Lines on stderr: the error, a notice the server left for the session, and what the store
// commands report on the way (the same events the server writes to its log).

/** The one line of a failed command; the exit code is 2 for ERR_USAGE, else 1. */
export const ErrorEvent = event('error', {
  code: z.enum(ERROR_CODES),
  message: z.string().min(1),
  hint: z.string().min(1).optional(),
})
export type ErrorEvent = z.infer<typeof ErrorEvent>

/**
 * Something the server left for the session a command ran as (docs/protocol.md, "Notices"),
 * printed when the command's call carried it; the command goes on.
 */
export const NoticeEvent = event('notice', {
  /** What happened: the wire notice's own `event`. */
  kind: z.enum(['totp_reset_with_recovery_code']),
  at: isoTime,
  address: z.string().max(64),
  renewalHeldUntil: isoTime,
  message: z.string(),
})
export type NoticeEvent = z.infer<typeof NoticeEvent>

/** A failure the store reported and got over: its error code (ERR_..., or a system code) and message. */
const failure = { code: z.string().min(1), message: z.string() }
export const StoreReportEvents = [
  event('store_torn_tail', { path, offset: count, length: count, cut: z.boolean() }),
  event('store_leftover_removed', { path }),
  event('store_lock_taken_over', { path, pid: z.int().nullable() }),
  event('store_rollback_accepted', { path, problem: z.string() }),
  event('store_state_started', { path }),
  event('store_state_write_failed', { path, ...failure }),
  event('store_rekeyed', { path }),
  event('store_compacted', { path, reason: z.string(), ...compactionShape }),
  event('store_compaction_failed', { path, ...failure }),
] as const

export const StderrEvent = z.discriminatedUnion('event', [ErrorEvent, NoticeEvent, ...StoreReportEvents])
export type StderrEvent = z.infer<typeof StderrEvent>

// `securelogin server --json` writes a log, not events: one JSON object per line with `event`,
// `level` and `time` and plain values. Only its first line, `listening`, is an interface.

export const ServerLogLine = z
  .object({ event: z.string().regex(/^[a-z0-9_]{1,64}$/), level: z.enum(['info', 'warn', 'error']), time: isoTime })
  .catchall(z.union([z.string(), z.number(), z.boolean(), z.null()]))
export const ListeningLine = event('listening', {
  host: z.string().min(1),
  port: z.int().min(1).max(65535),
  /** SHA-256 of the certificate, as `AB:CD:...` (what the client shows on first contact). */
  fingerprint: z.string().regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
  srpEngine: z.enum(['openssl', 'package']),
  /** With `--workers N`: how many processes serve the port. */
  workers: z.int().min(1).optional(),
  level: z.literal('info'),
  time: isoTime,
})
