import { z } from 'zod'
import { ERROR_CODES } from './errors.js'
import {
  PasswordKdf,
  Role,
  SRP_HASH_HEX,
  SRP_INT_HEX,
  SessionId,
  Token,
  DeviceKey,
  hex,
  isoTime,
  otpauthUri,
  totpCode,
  username,
} from './fields.js'
import { AuditEntry, CALL_OPS } from './calls.js'
import { Audience, Jwks, SignedToken } from './signed-tokens.js'

// Every message on the wire, client to server and server to client. docs/protocol.md describes
// each one; the schemas are strict, so an unknown field is a protocol error.

/** Crockford base32, two groups of five (src/auth/recovery-codes.ts makes and reads them). */
const recoveryCode = z.string().regex(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/)
const recoveryCodes = z.array(recoveryCode).length(10)

export { SRP_INT_HEX, SRP_HASH_HEX, PasswordKdf, Role } from './fields.js'

export const RegisterStart = z.strictObject({
  type: z.literal('register_start'),
  username,
  salt: hex(SRP_HASH_HEX),
  verifier: hex(SRP_INT_HEX),
  kdf: PasswordKdf,
  /** A bootstrap token (the first system_admin) or an invite (docs/protocol.md, "Registration policy"). */
  token: Token.optional(),
})
export const RegisterConfirm = z.strictObject({ type: z.literal('register_confirm'), code: totpCode })
export const LoginStart = z.strictObject({
  type: z.literal('login_start'),
  username,
  A: hex(SRP_INT_HEX),
  /** The device key an earlier login of this name on this client got (welcome's `device`). */
  device: DeviceKey.optional(),
})
export const LoginProof = z.strictObject({ type: z.literal('login_proof'), M1: hex(SRP_HASH_HEX) })
export const LoginOtp = z.strictObject({ type: z.literal('login_otp'), code: totpCode })
export const LoginRecovery = z.strictObject({ type: z.literal('login_recovery'), code: recoveryCode })
export const RecoveryCodesRenew = z.strictObject({ type: z.literal('recovery_codes_renew') })
/** Runs this connection as the session the token names (instead of a login). */
export const SessionResume = z.strictObject({ type: z.literal('session_resume'), token: Token })
/** The server's public token-signing keys: no login needed (docs/tokens.md). */
export const JwksGet = z.strictObject({ type: z.literal('jwks_get') })
/**
 * Asks whether a token the server signed is still good: its signature, audience and expiry, and
 * whether the session it came from is still live. No login needed: holding the token is the
 * right to ask (RFC 7662 in spirit).
 */
export const TokenCheck = z.strictObject({ type: z.literal('token_check'), token: SignedToken, audience: Audience })
/** A logged-in request; `args` is checked against CALLS[op].args (src/protocol/calls.ts). */
export const Call = z.strictObject({
  type: z.literal('call'),
  op: z.enum(CALL_OPS),
  args: z.record(z.string(), z.unknown()),
})

export const ClientMessage = z.discriminatedUnion('type', [
  RegisterStart,
  RegisterConfirm,
  LoginStart,
  LoginProof,
  LoginOtp,
  LoginRecovery,
  RecoveryCodesRenew,
  SessionResume,
  JwksGet,
  TokenCheck,
  Call,
])
export type ClientMessage = z.infer<typeof ClientMessage>

export const Enrol = z.strictObject({ type: z.literal('enrol'), otpauthUri })
export const Registered = z.strictObject({ type: z.literal('registered'), user: username, recoveryCodes })
export const RecoveryCodes = z.strictObject({ type: z.literal('recovery_codes'), codes: recoveryCodes })
export const Challenge = z.strictObject({
  type: z.literal('challenge'),
  salt: hex(SRP_HASH_HEX),
  kdf: PasswordKdf,
  B: hex(SRP_INT_HEX),
})
export const ServerProof = z.strictObject({
  type: z.literal('server_proof'),
  M2: hex(SRP_HASH_HEX),
  /** After `admin reset-2fa`: a new authenticator to enrol; the next code must come from it. */
  enrol: otpauthUri.optional(),
})
export const Welcome = z.strictObject({
  type: z.literal('welcome'),
  user: username,
  role: Role,
  /** The session's absolute expiry. */
  expiresAt: isoTime,
  /** When the session ends if nothing uses it (the earlier of this and expiresAt is the real end). */
  idleExpiresAt: isoTime,
  sessionId: SessionId,
  /** The session's bearer token: after a login only (never after session_resume). */
  token: Token.optional(),
  /** Present when the login used a recovery code: how many unused ones remain. */
  recoveryCodesLeft: z.int().min(0).max(10).optional(),
  /** After a login (not a resume): this client's device key for the name, for its next login_start. */
  device: DeviceKey.optional(),
})
export const ErrorMessage = z.strictObject({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: z.string().max(1024),
  hint: z.string().max(1024).optional(),
})

export const JwksMessage = z.strictObject({ type: z.literal('jwks'), ...Jwks.shape })
export const TokenChecked = z.strictObject({
  type: z.literal('token_checked'),
  active: z.boolean(),
  /**
   * Why not: ERR_TOKEN_EXPIRED, ERR_TOKEN_AUDIENCE, ERR_TOKEN_INVALID, or ERR_TOKEN_REVOKED (its
   * session has ended).
   */
  code: z.enum(['ERR_TOKEN_EXPIRED', 'ERR_TOKEN_AUDIENCE', 'ERR_TOKEN_INVALID', 'ERR_TOKEN_REVOKED']).optional(),
})

export const Result = z.strictObject({
  type: z.literal('result'),
  op: z.enum(CALL_OPS),
  data: z.record(z.string(), z.unknown()),
})
/** Pushed after `call audit {follow: true}`, one per new entry. */
export const AuditEntryPush = z.strictObject({ type: z.literal('audit_entry'), entry: AuditEntry })

export const ServerMessage = z.discriminatedUnion('type', [
  Enrol,
  Registered,
  Challenge,
  ServerProof,
  Welcome,
  RecoveryCodes,
  Result,
  AuditEntryPush,
  JwksMessage,
  TokenChecked,
  ErrorMessage,
])
export type ServerMessage = z.infer<typeof ServerMessage>
export type ServerMessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>
