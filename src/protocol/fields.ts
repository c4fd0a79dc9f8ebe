import { z } from 'zod'

// Field shapes shared by the message and call schemas (docs/protocol.md, "Encodings").

export const hex = (chars: number) => z.string().regex(new RegExp(`^[0-9a-f]{${chars}}$`))
/** Exactly `chars` characters of unpadded base64url (RFC 4648 5): JWK members, token ids. */
export const base64url = (chars: number) => z.string().regex(new RegExp(`^[A-Za-z0-9_-]{${chars}}$`))
export const username = z.string().regex(/^[a-z0-9._-]{1,64}$/)
export const totpCode = z.string().regex(/^[0-9]{6}$/)
export const isoTime = z.iso.datetime()
export const Role = z.enum(['regular_user', 'admin', 'system_admin'])
export type Role = z.infer<typeof Role>

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

/**
 * Bearer tokens: a kind letter, then 32 random bytes in base64url. `sls_` a session, `slb_` the
 * bootstrap token, `sli_` an invite. The prefix tells a person (and a secret scanner) what it is.
 */
export const TOKEN_PATTERN = /^sl[sbi]_[A-Za-z0-9_-]{43}$/
export const Token = z.string().regex(TOKEN_PATTERN)
/**
 * A device key (`sld_`): what a full login answers, for the client to send with its next
 * login_start; failures that come with it are counted on that device alone (docs/threat-model.md).
 */
export const DeviceKey = z.string().regex(/^sld_[A-Za-z0-9_-]{43}$/)
/** A session's public name: the first 32 hex digits of SHA-256(token). */
export const SessionId = hex(32)

export const otpauthUri = z.string().startsWith('otpauth://totp/').max(512)
