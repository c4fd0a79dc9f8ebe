import { describe, expect, it } from 'vitest'
import { generate } from 'otplib'
import {
  buildOtpauthUri,
  encodeTotpSecret,
  generateTotp,
  secretFromOtpauthUri,
  verifyTotp,
} from '../../src/auth/totp.js'
import { oathtoolCode, requireTool } from '../helpers/tools.js'

// RFC 6238 appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890".
const SEED = encodeTotpSecret(Buffer.from('12345678901234567890', 'ascii'))
const RFC6238_SHA1: Array<[number, string]> = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
]

describe('TOTP against RFC 6238 appendix B (SHA-1)', () => {
  it('encodes the seed as the base32 the vectors imply', () => {
    expect(SEED).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ')
  })

  it.each(RFC6238_SHA1)('T = %i gives the 8-digit code %s', async (t, code) => {
    expect(await generate({ secret: SEED, epoch: t, digits: 8 })).toBe(code)
  })

  it.each(RFC6238_SHA1)('T = %i: verifyTotp accepts the 6-digit truncation of %s', async (t, code) => {
    // RFC 4226 5.3: a d-digit code is the value mod 10^d, so 6 digits are the last 6 of 8.
    const check = await verifyTotp({ secret: SEED, code: code.slice(-6), nowMs: t * 1000 })
    expect(check).toEqual({ valid: true, timeStep: Math.floor(t / 30) })
  })
})

describe('verifyTotp window', () => {
  const now = 1_700_000_000
  it.each([
    [-60, false],
    [-30, true],
    [0, true],
    [30, true],
    [60, false],
  ])('a code from %i s away is valid: %s', async (offset, valid) => {
    const code = await generateTotp(SEED, (now + offset) * 1000)
    expect((await verifyTotp({ secret: SEED, code, nowMs: now * 1000 })).valid).toBe(valid)
  })

  it.each(['', '12345', '1234567', 'abcdef', '12 456'])(
    'refuses the malformed code %j without throwing',
    async (code) => {
      expect(await verifyTotp({ secret: SEED, code, nowMs: now * 1000 })).toEqual({ valid: false })
    },
  )
})

describe('TOTP against oathtool', () => {
  it.runIf(requireTool('oathtool'))('matches oathtool --totp for random secrets and times', async () => {
    for (let i = 0; i < 5; i++) {
      const secret = encodeTotpSecret(crypto.getRandomValues(new Uint8Array(20)))
      const epoch = 1_500_000_000 + Math.floor(Math.random() * 500_000_000)
      expect(await generateTotp(secret, epoch * 1000)).toBe(oathtoolCode(secret, epoch))
    }
  })
})

describe('otpauth URI', () => {
  it('spells out every parameter', () => {
    expect(buildOtpauthUri('alice', 'JBSWY3DPEHPK3PXP')).toBe(
      'otpauth://totp/securelogin:alice?secret=JBSWY3DPEHPK3PXP&issuer=securelogin&algorithm=SHA1&digits=6&period=30',
    )
  })

  it('gives back its secret', () => {
    expect(secretFromOtpauthUri(buildOtpauthUri('bob.b', 'ABCDEFGH'))).toBe('ABCDEFGH')
    expect(secretFromOtpauthUri('not a uri')).toBeUndefined()
  })

  it('makes 32-character secrets from 20 bytes', () => {
    expect(encodeTotpSecret(new Uint8Array(20))).toMatch(/^[A-Z2-7]{32}$/)
  })
})
