import { createRegistration } from '../auth/srp-client.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { normalizeUsername } from '../auth/username.js'
import { secretFromOtpauthUri, TOTP_PERIOD_SECONDS, verifyTotp } from '../auth/totp.js'
import { TOKEN_PATTERN } from '../protocol/fields.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerConnection } from './connection.js'
import { revealInput, type SecretInput } from '../auth/secret.js'

/** A new authenticator to add: at registration, after a 2FA reset, or at a login after an admin reset it. */
export interface Enrolment {
  user: string
  /** otpauth://totp/securelogin:NAME?secret=...&issuer=securelogin&algorithm=SHA1&digits=6&period=30 */
  otpauthUri: string
  /** The base32 TOTP secret, as in the URI. */
  secret: string
}

/** Sends salt and verifier (the password stays here) and returns the TOTP enrolment to show. */
export async function startRegistration(
  conn: ServerConnection,
  username: string,
  password: SecretInput,
  token?: string,
): Promise<Enrolment> {
  const user = normalizeUsername(username)
  const { salt, verifier, kdf } = await createRegistration(user, checkNewPassword(revealInput(password), user))
  const { otpauthUri } = await conn.request(
    {
      type: 'register_start',
      username: user,
      salt,
      verifier,
      kdf,
      ...(token !== undefined ? { token: checkToken(token) } : {}),
    },
    'enrol',
  )
  return enrolmentOf(user, otpauthUri)
}

/** One code from the authenticator activates the account; ERR_ENROL_CODE means try another. */
export async function confirmEnrolment(
  conn: ServerConnection,
  code: string,
): Promise<{ user: string; recoveryCodes: string[] }> {
  const { user, recoveryCodes } = await conn.request(
    { type: 'register_confirm', code: checkCodeShape(code) },
    'registered',
  )
  return { user, recoveryCodes }
}

/** The enrolment the server's otpauth URI describes; a URI without a secret is the server's fault. */
export function enrolmentOf(user: string, otpauthUri: string): Enrolment {
  const secret = secretFromOtpauthUri(otpauthUri)
  if (!secret) throw new SecureLoginError('ERR_PROTOCOL', 'the server sent an enrolment URI without a secret')
  return { user, otpauthUri, secret }
}

export function checkCodeShape(code: string): string {
  const digits = code.replace(/\s+/g, '')
  if (!/^[0-9]{6}$/.test(digits)) {
    throw new SecureLoginError('ERR_USAGE', `a code is 6 digits, got ${digits.length} characters`)
  }
  return digits
}

/** An invite or bootstrap token as pasted: surrounding space trimmed, shape checked before connecting. */
export function checkToken(token: string): string {
  const trimmed = token.trim()
  if (!TOKEN_PATTERN.test(trimmed) || trimmed.startsWith('sls_')) {
    throw new SecureLoginError(
      'ERR_USAGE',
      'that is not an invite or bootstrap token (sli_... or slb_..., 47 characters)',
    )
  }
  return trimmed
}

/**
 * The name a refused invite was made for, when `error` is that refusal of `register_start`
 * (docs/protocol.md: "this invite is for the user name NAME", sent only to a holder of the
 * valid invite); else undefined.
 */
export function invitedName(error: unknown): string | undefined {
  if (!(error instanceof SecureLoginError) || error.code !== 'ERR_FORBIDDEN') return undefined
  return /^this invite is for the user name ([a-z0-9._-]{1,64})$/.exec(error.message)?.[1]
}

/**
 * When the code after `code` (just accepted for `secret`) starts to show, in ms since the epoch:
 * the server accepts each 30 s step once and none before it (RFC 6238 5.2), so a login right
 * after enrolment needs that next code. The step is found from this machine's clock, one step
 * either side as the server does; a code that does not verify here gives the next step from now.
 */
export async function nextCodeAt(secret: string, code: string, nowMs: number): Promise<number> {
  const period = TOTP_PERIOD_SECONDS * 1000
  const check = await verifyTotp({ secret, code, nowMs })
  return ((check.valid ? check.timeStep : Math.floor(nowMs / period)) + 1) * period
}

/** "your next code appears in 17 s; codes are accepted once": what a person reads after enrolling. */
export function describeNextCode(atMs: number, nowMs: number): string {
  const seconds = Math.ceil((atMs - nowMs) / 1000)
  return seconds > 0
    ? `your next code appears in ${seconds} s; codes are accepted once, so log in with that one`
    : 'codes are accepted once: log in with the code your authenticator shows now, not the one just used'
}
