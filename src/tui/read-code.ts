import { normalizeRecoveryCode } from '../auth/recovery-codes.js'
import { SecureLoginError } from '../protocol/errors.js'

/** What a code field keeps: digits for TOTP, letters, digits and dashes for a recovery code. */
export const codeCharacters = (value: string) => value.replace(/[^0-9A-Za-z-]/g, '').slice(0, 11)

/**
 * Six digits are a TOTP code; anything else must be a recovery code (when those are allowed),
 * returned in its canonical form. Undefined: neither.
 */
export function readCode(value: string, allowRecovery: boolean): { totp: string } | { recovery: string } | undefined {
  if (/^[0-9]{6}$/.test(value)) return { totp: value }
  if (!allowRecovery) return undefined
  try {
    return { recovery: normalizeRecoveryCode(value) }
  } catch {
    return undefined
  }
}

/** What a code field says when what was typed is not a code. */
export function codeShape(): SecureLoginError {
  return new SecureLoginError('ERR_USAGE', 'a code is 6 digits', {
    hint: 'type the 6 digits your authenticator app shows now',
  })
}
