import { describe, expect, it } from 'vitest'
import { normalizeUsername } from '../../src/auth/username.js'
import { normalizePassword } from '../../src/auth/password-policy.js'

describe('user names', () => {
  it.each([
    ['alice', 'alice'],
    ['Alice.Smith', 'alice.smith'],
    ['  bob_1-x  ', 'bob_1-x'],
    ['a', 'a'],
    ['x'.repeat(64), 'x'.repeat(64)],
  ])('%j becomes %j', (input, expected) => {
    expect(normalizeUsername(input)).toBe(expected)
  })

  it.each(['', 'x'.repeat(65), 'a b', 'al/ice', 'émile', 'a:b', 'alice\n'.repeat(2)])('%j is refused', (input) => {
    expect(() => normalizeUsername(input)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_USERNAME' }))
  })
})

describe('passwords', () => {
  it('normalises to NFKC', () => {
    // U+FB01 (the "fi" ligature) and full-width letters fold to ASCII under NFKC.
    expect(normalizePassword('\uFB01ne ＰＡＳＳ word')).toBe('fine PASS word')
  })

  it.each([
    ['8 characters', 'a'.repeat(8)],
    ['128 characters', 'a'.repeat(128)],
    ['spaces', 'correct horse'],
    ['8 emoji (code points, not UTF-16 units)', '🔑'.repeat(8)],
  ])('accepts %s', (_name, password) => {
    expect(() => normalizePassword(password)).not.toThrow()
  })

  it.each([
    ['7 characters', 'a'.repeat(7)],
    ['129 characters', 'a'.repeat(129)],
    ['empty', ''],
  ])('refuses %s', (_name, password) => {
    expect(() => normalizePassword(password)).toThrow(expect.objectContaining({ code: 'ERR_WEAK_PASSWORD' }))
  })

  it('never puts the password in the error', () => {
    expect.assertions(1)
    try {
      normalizePassword('hunter2')
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('hunter2')
    }
  })
})

describe('new passwords', () => {
  it('ships at least the 10,000 most common passwords, from a licensed list', async () => {
    const { commonPasswords } = await import('../../src/auth/password-policy.js')
    expect(commonPasswords().size).toBeGreaterThanOrEqual(10_000)
    expect(commonPasswords().has('password')).toBe(true)
    const { readFile } = await import('node:fs/promises')
    expect(
      await readFile(new URL('../../node_modules/@zxcvbn-ts/language-common/LICENSE.txt', import.meta.url), 'utf8'),
    ).toContain('MIT')
  })

  it.each([
    ['a top-ten password', 'password', 'alice'],
    ['the same in capitals', 'PASSWORD', 'alice'],
    ['a long common one', 'qwertyuiop', 'alice'],
    ['eight digits', '12345678', 'alice'],
    ['one containing the user name', 'my alice password 2026', 'alice'],
    ['the user name in other case', 'ALICE-is-the-best', 'alice'],
  ])('refuses %s', async (_name, password, user) => {
    const { checkNewPassword } = await import('../../src/auth/password-policy.js')
    expect(() => checkNewPassword(password, user)).toThrow(expect.objectContaining({ code: 'ERR_WEAK_PASSWORD' }))
  })

  it('accepts a passphrase of unrelated words, spaces and all, and NFKC-normalises it', async () => {
    const { checkNewPassword } = await import('../../src/auth/password-policy.js')
    expect(checkNewPassword('correct horse battery staple', 'alice')).toBe('correct horse battery staple')
    expect(checkNewPassword('\uFB01ne ＰＡＳＳ phrase', 'bo')).toBe('fine PASS phrase')
  })
})
