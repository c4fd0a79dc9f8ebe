import { SecureLoginError } from '../protocol/errors.js'

export const USERNAME_PATTERN = /^[a-z0-9._-]{1,64}$/

/** Lower-cases a user name and checks it: 1-64 characters of `[a-z0-9._-]`. */
export function normalizeUsername(input: string): string {
  const name = input.trim().toLowerCase()
  if (!USERNAME_PATTERN.test(name)) {
    throw new SecureLoginError('ERR_INVALID_USERNAME', `invalid user name (${name.length} characters)`, {
      hint: 'use 1-64 characters of a-z, 0-9, dot, underscore and hyphen',
    })
  }
  return name
}
