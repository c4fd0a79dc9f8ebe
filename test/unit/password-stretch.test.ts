import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import srpClient from 'secure-remote-password/client.js'
import {
  DEFAULT_PASSWORD_KDF,
  checkPasswordKdf,
  passwordKdfMemory,
  stretchPassword,
  type PasswordKdf,
} from '../../src/auth/password-stretch.js'
import { createRegistration, derivePrivateKey } from '../../src/auth/srp-client.js'
import { requireTool } from '../helpers/tools.js'

const LABEL_HEX = Buffer.from('securelogin password v1\0', 'utf8').toString('hex')

/** OpenSSL's own scrypt (RFC 7914), an implementation that shares no code with Node's call into it. */
function opensslScrypt(password: string, saltHex: string, kdf: PasswordKdf): string {
  const out = execFileSync(
    'openssl',
    [
      'kdf',
      '-keylen',
      '32',
      '-kdfopt',
      `pass:${password}`,
      '-kdfopt',
      `hexsalt:${saltHex}`,
      '-kdfopt',
      `n:${2 ** kdf.logN}`,
      '-kdfopt',
      `r:${kdf.r}`,
      '-kdfopt',
      `p:${kdf.p}`,
      'SCRYPT',
    ],
    { encoding: 'utf8' },
  )
  return out.trim().replaceAll(':', '').toLowerCase()
}

describe('password stretching before x', () => {
  it('the default costs at least 64 MiB per guess', () => {
    expect(passwordKdfMemory(DEFAULT_PASSWORD_KDF)).toBeGreaterThanOrEqual(64 * 1024 ** 2)
    expect(checkPasswordKdf(DEFAULT_PASSWORD_KDF)).toBe(DEFAULT_PASSWORD_KDF)
  })

  it("P' equals OpenSSL's scrypt over the label and the salt (docs/protocol.md)", async () => {
    if (!requireTool('openssl')) return
    const salt = 'ab'.repeat(32)
    const password = 'correct horse battery staple'
    const ours = await stretchPassword(password, salt, DEFAULT_PASSWORD_KDF)
    expect(ours).toMatch(/^[0-9a-f]{64}$/)
    expect(ours).toBe(opensslScrypt(password, LABEL_HEX + salt, DEFAULT_PASSWORD_KDF))
  })

  it('another salt or password gives another P', async () => {
    const a = await stretchPassword('password one', '01'.repeat(32), DEFAULT_PASSWORD_KDF)
    expect(await stretchPassword('password one', '02'.repeat(32), DEFAULT_PASSWORD_KDF)).not.toBe(a)
    expect(await stretchPassword('password two', '01'.repeat(32), DEFAULT_PASSWORD_KDF)).not.toBe(a)
  })

  it('the verifier is made from the stretched password, not the password', async () => {
    const registration = await createRegistration('carol', 'a long enough password')
    const unstretched = srpClient.deriveVerifier(
      srpClient.derivePrivateKey(registration.salt, 'carol', 'a long enough password'),
    )
    expect(registration.verifier).not.toBe(unstretched)
    const x = await derivePrivateKey({
      salt: registration.salt,
      username: 'carol',
      password: 'a long enough password',
      kdf: registration.kdf,
    })
    expect(srpClient.deriveVerifier(x)).toBe(registration.verifier)
  })

  // The floor keeps a server from making a stolen transcript cheap; the cap keeps it from
  // making the client spend minutes or gigabytes.
  it.each<[string, PasswordKdf, boolean]>([
    ['the default (64 MiB)', { name: 'scrypt', logN: 16, r: 8, p: 1 }, true],
    ['256 MiB, the cap', { name: 'scrypt', logN: 18, r: 8, p: 1 }, true],
    ['64 MiB by r = 16, logN 15', { name: 'scrypt', logN: 15, r: 16, p: 1 }, true],
    ['32 MiB, under the floor', { name: 'scrypt', logN: 15, r: 8, p: 1 }, false],
    ['1 KiB, a downgrade', { name: 'scrypt', logN: 1, r: 8, p: 1 }, false],
    ['512 MiB, over the cap', { name: 'scrypt', logN: 19, r: 8, p: 1 }, false],
    ['p = 5, over the cap', { name: 'scrypt', logN: 16, r: 8, p: 5 }, false],
    ['logN not an integer', { name: 'scrypt', logN: 16.5, r: 8, p: 1 }, false],
    ['r = 0', { name: 'scrypt', logN: 16, r: 0, p: 1 }, false],
    ['an unknown KDF', { name: 'md5' as 'scrypt', logN: 16, r: 8, p: 1 }, false],
  ])('%s: accepted %s', (_, kdf, accepted) => {
    if (accepted) expect(checkPasswordKdf(kdf)).toBe(kdf)
    else expect(() => checkPasswordKdf(kdf)).toThrow(expect.objectContaining({ code: 'ERR_KDF_LIMIT' }))
  })
})
