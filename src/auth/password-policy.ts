import { createRequire } from 'node:module'
import { SecureLoginError } from '../protocol/errors.js'

export const PASSWORD_MIN = 8
export const PASSWORD_MAX = 128

/**
 * Normalises a password to NFKC and checks its length in characters (code points). Used for
 * every password the client sends proof of; new passwords also go through checkNewPassword.
 */
export function normalizePassword(input: string): string {
  const password = input.normalize('NFKC')
  const length = [...password].length
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw weak(
      `password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters, got ${length}`,
      'a longer passphrase of several words is easier to remember and harder to guess',
    )
  }
  return password
}

/**
 * The rules for a new password (NIST SP 800-63B 5.1.1.2): 8 to 128 characters after NFKC,
 * spaces allowed, not one of the most common passwords, not containing the user name. The
 * server never sees the password (SRP), so only the client can enforce this.
 */
export function checkNewPassword(input: string, username: string): string {
  const password = normalizePassword(input)
  const lower = password.toLowerCase()
  if (commonPasswords().has(lower)) {
    throw weak(
      'that password is one of the most common ones, the first an attacker tries',
      'use a passphrase of several unrelated words',
    )
  }
  if (username.length >= 3 && lower.includes(username.toLowerCase())) {
    throw weak('the password contains the user name', 'choose a password that does not contain your user name')
  }
  return password
}

let common: Set<string> | undefined

/**
 * The 49,233 most common passwords, ranked, from @zxcvbn-ts/language-common (MIT licence,
 * node_modules/@zxcvbn-ts/language-common/LICENSE.txt), loaded on first use: only commands that
 * set a password pay for it.
 */
export function commonPasswords(): Set<string> {
  if (!common) {
    const { dictionary } = createRequire(import.meta.url)('@zxcvbn-ts/language-common') as {
      dictionary: Record<string, string[]>
    }
    common = new Set(dictionary['passwords-common']!.map((entry) => entry.toLowerCase()))
  }
  return common
}

/**
 * Two typings of a new password that differ: a slip of the finger, not a weak password, so
 * it is not reported as one.
 */
export function passwordsDiffer(what = 'passwords'): SecureLoginError {
  return new SecureLoginError('ERR_USAGE', `the ${what} do not match`, {
    hint: `type the same ${what.replace(/s$/, '')} twice`,
  })
}

function weak(message: string, hint: string): SecureLoginError {
  return new SecureLoginError('ERR_WEAK_PASSWORD', message, { hint })
}
