import { generate, verify, ScureBase32Plugin } from 'otplib'

// RFC 6238 with the defaults every authenticator app understands: HMAC-SHA-1, 6 digits, 30 s steps.
export const TOTP_PERIOD_SECONDS = 30
export const TOTP_DIGITS = 6
export const TOTP_SECRET_BYTES = 20
export const TOTP_ISSUER = 'securelogin'
const CODE_PATTERN = /^[0-9]{6}$/
const base32 = new ScureBase32Plugin()

/** Encodes random bytes (20 of them: RFC 4226 4 recommends 160 bits) as an unpadded base32 secret. */
export function encodeTotpSecret(bytes: Uint8Array): string {
  return base32.encode(bytes, { padding: false })
}

/** otpauth URI with every parameter spelled out (otplib's generateURI drops the defaults). */
export function buildOtpauthUri(username: string, secret: string): string {
  const label = `${encodeURIComponent(TOTP_ISSUER)}:${encodeURIComponent(username)}`
  const issuer = encodeURIComponent(TOTP_ISSUER)
  const query = `secret=${secret}&issuer=${issuer}&algorithm=SHA1&digits=${TOTP_DIGITS}&period=${TOTP_PERIOD_SECONDS}`
  return `otpauth://totp/${label}?${query}`
}

/** The secret carried by an otpauth URI, or undefined. */
export function secretFromOtpauthUri(uri: string): string | undefined {
  try {
    return new URL(uri).searchParams.get('secret') ?? undefined
  } catch {
    return undefined
  }
}

export async function generateTotp(secret: string, nowMs: number): Promise<string> {
  return generate({ secret, epoch: Math.floor(nowMs / 1000) })
}

export type TotpCheck = { valid: true; timeStep: number } | { valid: false }

/**
 * RFC 6238 5.2: accept the current step and `window` steps either side (one by default).
 * A malformed code is simply invalid; otplib throws on one, so its shape is checked first.
 */
export async function verifyTotp(opts: {
  secret: string
  code: string
  nowMs: number
  window?: number
}): Promise<TotpCheck> {
  if (!CODE_PATTERN.test(opts.code)) return { valid: false }
  const result = await verify({
    secret: opts.secret,
    token: opts.code,
    epoch: Math.floor(opts.nowMs / 1000),
    epochTolerance: (opts.window ?? 1) * TOTP_PERIOD_SECONDS,
  })
  if (!result.valid) return { valid: false }
  return { valid: true, timeStep: Math.floor(opts.nowMs / 1000 / TOTP_PERIOD_SECONDS) + result.delta }
}
