import { z } from 'zod'
import { ERROR_CODES } from './errors.js'

// Every message on the wire, client to server and server to client. docs/protocol.md describes
// each one; the schemas are strict, so an unknown field is a protocol error.

const hex = (chars: number) => z.string().regex(new RegExp(`^[0-9a-f]{${chars}}$`))
const username = z.string().regex(/^[a-z0-9._-]{1,64}$/)
const totpCode = z.string().regex(/^[0-9]{6}$/)
/** Crockford base32, two groups of five (src/auth/recovery-codes.ts makes and reads them). */
const recoveryCode = z.string().regex(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/)
const recoveryCodes = z.array(recoveryCode).length(10)

/** SRP-6a on the RFC 5054 2048-bit group: A, B and v travel as 512 hex digits, salts and proofs as 64. */
export const SRP_INT_HEX = 512
export const SRP_HASH_HEX = 64

/** How the client stretched the password before deriving x (src/auth/password-stretch.ts). */
export const PasswordKdf = z.strictObject({
  name: z.literal('scrypt'),
  logN: z.int().min(1).max(30),
  r: z.int().min(1).max(64),
  p: z.int().min(1).max(64),
})

export const RegisterStart = z.strictObject({
  type: z.literal('register_start'),
  username,
  salt: hex(SRP_HASH_HEX),
  verifier: hex(SRP_INT_HEX),
  kdf: PasswordKdf,
})
export const RegisterConfirm = z.strictObject({ type: z.literal('register_confirm'), code: totpCode })
export const LoginStart = z.strictObject({ type: z.literal('login_start'), username, A: hex(SRP_INT_HEX) })
export const LoginProof = z.strictObject({ type: z.literal('login_proof'), M1: hex(SRP_HASH_HEX) })
export const LoginOtp = z.strictObject({ type: z.literal('login_otp'), code: totpCode })
export const LoginRecovery = z.strictObject({ type: z.literal('login_recovery'), code: recoveryCode })
export const RecoveryCodesRenew = z.strictObject({ type: z.literal('recovery_codes_renew') })

export const ClientMessage = z.discriminatedUnion('type', [
  RegisterStart,
  RegisterConfirm,
  LoginStart,
  LoginProof,
  LoginOtp,
  LoginRecovery,
  RecoveryCodesRenew,
])
export type ClientMessage = z.infer<typeof ClientMessage>

export const Enrol = z.strictObject({ type: z.literal('enrol'), otpauthUri: z.string().startsWith('otpauth://totp/').max(512) })
export const Registered = z.strictObject({ type: z.literal('registered'), user: username, recoveryCodes })
export const RecoveryCodes = z.strictObject({ type: z.literal('recovery_codes'), codes: recoveryCodes })
export const Challenge = z.strictObject({ type: z.literal('challenge'), salt: hex(SRP_HASH_HEX), kdf: PasswordKdf, B: hex(SRP_INT_HEX) })
export const ServerProof = z.strictObject({ type: z.literal('server_proof'), M2: hex(SRP_HASH_HEX) })
export const Role = z.enum(['regular_user', 'admin', 'system_admin'])
export const Welcome = z.strictObject({
  type: z.literal('welcome'),
  user: username,
  role: Role,
  expiresAt: z.iso.datetime(),
  /** Present when the login used a recovery code: how many unused ones remain. */
  recoveryCodesLeft: z.int().min(0).max(10).optional(),
})
export const ErrorMessage = z.strictObject({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: z.string().max(1024),
  hint: z.string().max(1024).optional(),
})

export const ServerMessage = z.discriminatedUnion('type', [Enrol, Registered, Challenge, ServerProof, Welcome, RecoveryCodes, ErrorMessage])
export type ServerMessage = z.infer<typeof ServerMessage>
export type ServerMessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>
export type Role = z.infer<typeof Role>
