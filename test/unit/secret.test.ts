import { format, inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Secret } from '../../src/auth/secret.js'
import { splitAccount } from '../../src/server/login.js'
import { user } from '../store/fixtures.js'

const VALUE = 'a password that must not be printed'

describe('Secret', () => {
  it.each<[string, (s: Secret) => string]>([
    ['String()', (s) => String(s)],
    ['a template literal', (s) => `${s}`],
    ['concatenation', (s) => 'x' + s],
    ['JSON.stringify', (s) => JSON.stringify({ password: s })],
    ['util.inspect', (s) => inspect({ nested: { password: s } }, { depth: 5 })],
    ['console-style %o and %s', (s) => format('%o %s %j', s, s, { s })],
    ['an Error message', (s) => new Error(`bad ${s}`).message],
  ])('%s prints <redacted>', (_, print) => {
    const text = print(new Secret(VALUE))
    expect(text).toContain('<redacted>')
    expect(text).not.toContain(VALUE)
  })

  it('reveal() gives the value; wipe() zeroes a Buffer and forgets it', () => {
    const key = Buffer.from('0123456789abcdef')
    const secret = new Secret(key)
    expect(secret.reveal()).toBe(key)
    secret.wipe()
    expect(key.equals(Buffer.alloc(16))).toBe(true)
    expect(secret.wiped).toBe(true)
    expect(() => secret.reveal()).toThrow('secret used after wipe()')
  })

  it('use() wipes after the callback, also when it throws', async () => {
    const key = Buffer.from('fedcba9876543210')
    const secret = new Secret(key)
    await expect(secret.use(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(key.equals(Buffer.alloc(16))).toBe(true)
    expect(secret.wiped).toBe(true)
  })

  it("the server keeps an account's verifier and TOTP secret wrapped: its login state prints neither", () => {
    const record = user('carol')
    const split = splitAccount(record)
    const printed = inspect(split, { depth: 10 }) + JSON.stringify(split)
    expect(printed).not.toContain(record.verifier)
    expect(printed).not.toContain(record.totpSecret)
    expect(split.verifier.reveal()).toBe(record.verifier)
    expect(split.user).not.toHaveProperty('verifier')
  })
})
