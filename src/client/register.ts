import { createRegistration } from '../auth/srp-client.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { normalizeUsername } from '../auth/username.js'
import { secretFromOtpauthUri } from '../auth/totp.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerConnection } from './connection.js'
import { revealInput, type SecretInput } from '../auth/secret.js'

export interface Enrolment {
  user: string
  otpauthUri: string
  secret: string
}

/** Sends salt and verifier (the password stays here) and returns the TOTP enrolment to show. */
export async function startRegistration(conn: ServerConnection, username: string, password: SecretInput): Promise<Enrolment> {
  const user = normalizeUsername(username)
  const { salt, verifier, kdf } = await createRegistration(user, checkNewPassword(revealInput(password), user))
  const { otpauthUri } = await conn.request({ type: 'register_start', username: user, salt, verifier, kdf }, 'enrol')
  const secret = secretFromOtpauthUri(otpauthUri)
  if (!secret) throw new SecureLoginError('ERR_PROTOCOL', 'the server sent an enrolment URI without a secret')
  return { user, otpauthUri, secret }
}

/** One code from the authenticator activates the account; ERR_ENROL_CODE means try another. */
export async function confirmEnrolment(conn: ServerConnection, code: string): Promise<{ user: string; recoveryCodes: string[] }> {
  const { user, recoveryCodes } = await conn.request({ type: 'register_confirm', code: checkCodeShape(code) }, 'registered')
  return { user, recoveryCodes }
}

export function checkCodeShape(code: string): string {
  const digits = code.replace(/\s+/g, '')
  if (!/^[0-9]{6}$/.test(digits)) {
    throw new SecureLoginError('ERR_USAGE', `a code is 6 digits, got ${digits.length} characters`)
  }
  return digits
}
