import { SecureLoginError } from '../protocol/errors.js'

export const PASSWORD_MIN = 8
export const PASSWORD_MAX = 128

/**
 * Normalises a password to NFKC and checks its length in characters (code points).
 * The server never sees the password (SRP), so only the client can enforce this.
 */
export function normalizePassword(input: string): string {
  const password = input.normalize('NFKC')
  const length = [...password].length
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw new SecureLoginError(
      'ERR_WEAK_PASSWORD',
      `password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters, got ${length}`,
      { hint: 'a longer passphrase of several words is easier to remember and harder to guess' },
    )
  }
  return password
}
