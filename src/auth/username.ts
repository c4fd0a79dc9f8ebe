import { SecureLoginError } from '../protocol/errors.js'

export const USERNAME_PATTERN = /^[a-z0-9._-]{1,64}$/
export const USERNAME_MAX = 64
const ALLOWED = /^[a-z0-9._-]$/

/** Lower-cases a user name and checks it: 1-64 characters of `[a-z0-9._-]`. */
export function normalizeUsername(input: string): string {
  const name = input.trim().toLowerCase()
  if (USERNAME_PATTERN.test(name)) return name
  throw new SecureLoginError('ERR_INVALID_USERNAME', whyInvalid(name), {
    hint: `user names are 1 to ${USERNAME_MAX} characters of a-z, 0-9, dot, underscore and hyphen`,
  })
}

/**
 * What a person is told when the name they typed is kept in lower case ("Alice" becomes
 * "alice"); undefined when it is kept as typed. `doing`: "registering as", "inviting".
 */
export function foldedName(input: string, name: string, doing: string): string | undefined {
  return input.trim() === name ? undefined : `user names are lower case: ${doing} ${name}`
}

/** Says what is wrong with a refused name, not just that it is wrong. */
function whyInvalid(name: string): string {
  const characters = [...name]
  if (characters.length === 0) return 'the user name is empty'
  const bad = characters.find((character) => !ALLOWED.test(character))
  if (bad !== undefined) return `a user name cannot contain ${describe(bad)}`
  return `a user name is at most ${USERNAME_MAX} characters, got ${characters.length}`
}

/**
 * A character as a message may show it: printable ASCII in quotes, anything else by code point,
 * so no control character or look-alike reaches the terminal as itself.
 */
function describe(character: string): string {
  if (character === ' ') return 'a space'
  if (character === '\t') return 'a tab'
  const point = character.codePointAt(0)!
  const code = `U+${point.toString(16).toUpperCase().padStart(4, '0')}`
  if (point > 0x20 && point < 0x7f) return `"${character}"`
  return point < 0x20 || (point >= 0x7f && point < 0xa0) ? `a control character (${code})` : code
}
