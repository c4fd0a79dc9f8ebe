import { describe, expect, it } from 'vitest'
import { foldedName, normalizeUsername } from '../../src/auth/username.js'
import { passwordsDiffer } from '../../src/auth/password-policy.js'

describe('a refused user name says what is wrong with it', () => {
  it.each([
    ['bad name', 'a user name cannot contain a space'],
    ['al/ice', 'a user name cannot contain "/"'],
    ['a:b', 'a user name cannot contain ":"'],
    ['a\tb', 'a user name cannot contain a tab'],
    ['émile', 'a user name cannot contain U+00E9'],
    ['al\u001bice', 'a user name cannot contain a control character (U+001B)'],
    ['al\u202eice', 'a user name cannot contain U+202E'],
    ['', 'the user name is empty'],
    ['   ', 'the user name is empty'],
    ['x'.repeat(65), 'a user name is at most 64 characters, got 65'],
  ])('%j: %s', (input, message) => {
    expect(() => normalizeUsername(input)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_USERNAME',
        message,
        hint: 'user names are 1 to 64 characters of a-z, 0-9, dot, underscore and hyphen',
      }),
    )
  })

  it('never echoes a control character into the message', () => {
    try {
      normalizeUsername('a\u0007\u009bb')
      expect.unreachable()
    } catch (error) {
      expect((error as Error).message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
    }
  })
})

describe('a name kept in lower case is said so', () => {
  it.each([
    ['Alice', 'alice', 'user names are lower case: registering as alice'],
    ['  BOB ', 'bob', 'user names are lower case: registering as bob'],
    ['alice', 'alice', undefined],
    [' alice ', 'alice', undefined],
  ])('%j', (input, name, note) => {
    expect(normalizeUsername(input)).toBe(name)
    expect(foldedName(input, name, 'registering as')).toBe(note)
  })
})

describe('two typings of a new password that differ', () => {
  it('are a usage error with their own message, not a weak password', () => {
    expect(passwordsDiffer()).toMatchObject({
      code: 'ERR_USAGE',
      message: 'the passwords do not match',
      hint: 'type the same password twice',
    })
    expect(passwordsDiffer('new passwords')).toMatchObject({
      message: 'the new passwords do not match',
      hint: 'type the same new password twice',
    })
  })
})
