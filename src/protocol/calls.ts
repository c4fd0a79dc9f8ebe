import { z } from 'zod'
import {
  PasswordKdf,
  Role,
  SRP_HASH_HEX,
  SRP_INT_HEX,
  SessionId,
  Token,
  hex,
  isoTime,
  otpauthUri,
  totpCode,
  username,
} from './fields.js'
import { Audience, TOKEN_TTL_MAX_SECONDS, TOKEN_TTL_MIN_SECONDS, TokenIssued } from './signed-tokens.js'

// What a logged-in connection may ask: `call {op, args}` answered by `result {op, data}`.
// The server checks every call against the caller's role (src/auth/roles.ts) before it runs.

export const SessionInfo = z.strictObject({
  id: SessionId,
  user: username,
  createdAt: isoTime,
  lastSeenAt: isoTime,
  /** The earlier of the idle and the absolute expiry. */
  expiresAt: isoTime,
  absoluteExpiresAt: isoTime,
  address: z.string().max(64),
  /** The session this connection runs as. */
  current: z.boolean(),
})
export type SessionInfo = z.infer<typeof SessionInfo>

export const AccountSummary = z.strictObject({
  user: username,
  role: Role,
  createdAt: isoTime,
  lastLoginAt: isoTime.nullable(),
  locked: z.boolean(),
  lockedUntil: isoTime.nullable(),
  /** `reset` after `admin reset-2fa`: the next login enrols a new authenticator. */
  twoFactor: z.enum(['enrolled', 'reset']),
  recoveryCodesLeft: z.int().min(0).max(10),
})
export type AccountSummary = z.infer<typeof AccountSummary>

const auditValue = z.union([z.string().max(256), z.number(), z.boolean(), z.null()])
export const AuditEntry = z.strictObject({
  /** 1, 2, 3, ...: the entry's place in the chain. */
  n: z.int().min(1),
  at: isoTime,
  /** Who did it (null: nobody logged in, e.g. a failed login or a registration). */
  actor: username.nullable(),
  action: z.string().regex(/^[a-z0-9_.]{1,64}$/),
  /** Whom or what it was done to (a user name, a session id). */
  target: z.string().max(128).nullable(),
  address: z.string().max(64).nullable(),
  outcome: z.enum(['ok', 'failed', 'refused']),
  details: z.record(z.string().max(64), auditValue).optional(),
  /** SHA-256 of the previous entry (64 zeros for the first). */
  prev: hex(64),
  /** SHA-256 of this entry's canonical JSON without `hash` (docs/store-format.md). */
  hash: hex(64),
})
export type AuditEntry = z.infer<typeof AuditEntry>

export const AuditHead = z.strictObject({ n: z.int().min(0), hash: hex(64) })
export type AuditHead = z.infer<typeof AuditHead>

export const AuditProblem = z.strictObject({ n: z.int().min(0), problem: z.string().max(256) })

/**
 * Something the session's owner must hear, carried once by the next result of a session it was
 * left for (docs/protocol.md, "Notices"): today, that the account's authenticator was replaced on
 * a login made with a recovery code, which is how a stranger holding the password and one code
 * would take the account.
 */
export const Notice = z.strictObject({
  event: z.literal('totp_reset_with_recovery_code'),
  at: isoTime,
  /** Where the login that replaced the authenticator came from. */
  address: z.string().max(64),
  /** Until then the account's recovery codes cannot be renewed. */
  renewalHeldUntil: isoTime,
  message: z.string().max(512),
})
export type Notice = z.infer<typeof Notice>

/** Every call's result may carry a notice for the session that made it. */
const withNotice = <Shape extends z.ZodRawShape>(result: z.ZodObject<Shape>) =>
  result.extend({ notice: Notice.optional() })

const empty = z.strictObject({})
const ttlSeconds = z
  .int()
  .min(60)
  .max(30 * 24 * 3600)

export const CALLS = {
  whoami: { args: empty, result: withNotice(z.strictObject({ user: username, role: Role, session: SessionInfo })) },
  /** Revokes this connection's session on the server. */
  logout: { args: empty, result: withNotice(z.strictObject({ revoked: z.int() })) },
  /** Own sessions; with `user`, that user's (admins); `all`, everyone's the caller may manage. */
  sessions: {
    args: z.strictObject({ user: username.optional(), all: z.boolean().optional() }),
    result: withNotice(z.strictObject({ sessions: z.array(SessionInfo) })),
  },
  /** Exactly one of: `id` (one session), `others` (all of the caller's but this one), `user` (all of that user's). */
  revoke: {
    args: z.strictObject({ id: SessionId.optional(), others: z.literal(true).optional(), user: username.optional() }),
    result: withNotice(z.strictObject({ revoked: z.int() })),
  },
  /** New salt and verifier; needs a login on this connection with password and TOTP code. */
  passwd: {
    args: z.strictObject({ salt: hex(SRP_HASH_HEX), verifier: hex(SRP_INT_HEX), kdf: PasswordKdf }),
    result: withNotice(z.strictObject({ revokedSessions: z.int() })),
  },
  /** Starts re-enrolment of one's own authenticator; needs a login on this connection with password and code. */
  totp_reset: { args: empty, result: withNotice(z.strictObject({ otpauthUri })) },
  totp_confirm: { args: z.strictObject({ code: totpCode }), result: withNotice(z.strictObject({ user: username })) },
  users: { args: empty, result: withNotice(z.strictObject({ users: z.array(AccountSummary) })) },
  /** A single-use registration token; with `user`, only for that name (`admin add`). */
  invite: {
    args: z.strictObject({ role: Role, user: username.optional(), ttlSeconds }),
    result: withNotice(z.strictObject({ token: Token, role: Role, user: username.nullable(), expiresAt: isoTime })),
  },
  remove: {
    args: z.strictObject({ user: username }),
    result: withNotice(z.strictObject({ user: username, revokedSessions: z.int() })),
  },
  set_role: {
    args: z.strictObject({ user: username, role: Role }),
    result: withNotice(z.strictObject({ user: username, role: Role, previous: Role })),
  },
  reset_2fa: {
    args: z.strictObject({ user: username }),
    result: withNotice(z.strictObject({ user: username, revokedSessions: z.int() })),
  },
  unlock: {
    args: z.strictObject({ user: username }),
    result: withNotice(z.strictObject({ user: username, wasLocked: z.boolean() })),
  },
  /**
   * One page of entries, oldest first: the newest matches with n in (after, before), as many as
   * fit one frame (and at most `limit`). `next`, when present, is the `before` that asks for the
   * page older than this one. With `follow`, new entries then arrive as `audit_entry` frames
   * until the connection ends.
   */
  audit: {
    args: z.strictObject({
      user: username.optional(),
      since: isoTime.optional(),
      limit: z.int().min(1).max(10_000).optional(),
      before: z.int().min(1).optional(),
      after: z.int().min(0).optional(),
      follow: z.boolean().optional(),
    }),
    result: withNotice(
      z.strictObject({ entries: z.array(AuditEntry), head: AuditHead, next: z.int().min(1).optional() }),
    ),
  },
  /** A signed token for one application, from this session (docs/tokens.md); ttlSeconds defaults to 300. */
  token: {
    args: z.strictObject({
      audience: Audience,
      ttlSeconds: z.int().min(TOKEN_TTL_MIN_SECONDS).max(TOKEN_TTL_MAX_SECONDS).optional(),
    }),
    result: withNotice(TokenIssued),
  },
  /** With `anchor` (an earlier head, e.g. from the server log): the chain must still hold that entry. */
  audit_verify: {
    args: z.strictObject({ anchor: AuditHead.optional() }),
    result: withNotice(
      z.strictObject({ ok: z.boolean(), entries: z.int(), head: AuditHead, problems: z.array(AuditProblem) }),
    ),
  },
} as const

export type CallOp = keyof typeof CALLS
export const CALL_OPS = Object.keys(CALLS) as [CallOp, ...CallOp[]]
export type CallArgs<Op extends CallOp> = z.infer<(typeof CALLS)[Op]['args']>
export type CallResult<Op extends CallOp> = z.infer<(typeof CALLS)[Op]['result']>
