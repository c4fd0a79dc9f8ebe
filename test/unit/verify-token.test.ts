import { SignJWT } from 'jose'
import { createPrivateKey } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { generateSigningKey, type SigningKey } from '../../src/auth/signed-tokens.js'
import { signToken } from '../../src/auth/signed-tokens.js'
import { verifyToken } from '../../src/auth/signed-tokens.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import type { TokenClaims } from '../../src/protocol/signed-tokens.js'

// verifyToken() (src/auth/verify-token.ts), what applications call: the claims of a good token,
// and one typed error for each way a token can fail, at the edges of the clock tolerance.

const NOW = 1_800_000_000 // seconds
const at = (seconds: number) => new Date(seconds * 1000)

let key: SigningKey
let stranger: SigningKey
const claims = (over: Partial<TokenClaims> = {}): TokenClaims => ({
  iss: 'securelogin:0123456789abcdef',
  sub: 'ada',
  role: 'admin',
  aud: 'billing',
  iat: NOW,
  exp: NOW + 300,
  jti: 'AAAAAAAAAAAAAAAAAAAAAA',
  sid: '0123456789abcdef0123456789abcdef',
  ...over,
})
const jwks = () => ({ keys: [key.publicJwk] })

async function code(token: string, options: Partial<Parameters<typeof verifyToken>[1]> = {}): Promise<string> {
  try {
    await verifyToken(token, { jwks: jwks(), audience: 'billing', now: at(NOW + 1), ...options })
    return 'ok'
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    // No message ever holds the token.
    if (token.length >= 10) expect(error.message).not.toContain(token)
    return error.code
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Other spellings of a base64url part that decode to the same bytes. */
function respellings(part: string): string[] {
  const last = ALPHABET.indexOf(part.at(-1)!)
  // 2 spare characters hold 4 unused bits, 3 hold 2 (RFC 4648 3.5).
  const unused = { 2: 4, 3: 2 }[part.length % 4] ?? 0
  const lowBits = Array.from({ length: (1 << unused) - 1 }, (_, n) => n + 1)
  const head = part.slice(0, -1)
  return [
    ...lowBits.map((bits) => head + ALPHABET[last | bits]),
    // With padding, and in base64's own alphabet where the part has a - or _.
    ...(part.length % 4 === 0 ? [] : [part + '='.repeat(4 - (part.length % 4))]),
    ...(/[-_]/.test(part) ? [part.replace(/-/g, '+').replace(/_/g, '/')] : []),
  ]
}

beforeAll(async () => {
  key = await generateSigningKey()
  stranger = await generateSigningKey()
})

describe('verifyToken', () => {
  it('gives the claims of a good token, from the JWKS as an object or as its text', async () => {
    const token = await signToken(key.privateJwk, key.kid, claims())
    expect(await verifyToken(token, { jwks: jwks(), audience: 'billing', now: at(NOW + 1) })).toEqual(claims())
    expect(await verifyToken(token, { jwks: JSON.stringify(jwks()), audience: 'billing', now: at(NOW + 1) })).toEqual(
      claims(),
    )
    expect(await code(token, { issuer: 'securelogin:0123456789abcdef' })).toBe('ok')
  })

  it('expires at exp plus the tolerance (30 s by default), not before', async () => {
    const token = await signToken(key.privateJwk, key.kid, claims())
    expect(await code(token, { now: at(NOW + 300 + 29) })).toBe('ok')
    expect(await code(token, { now: at(NOW + 300 + 31) })).toBe('ERR_TOKEN_EXPIRED')
    expect(await code(token, { now: at(NOW + 300 + 5), clockToleranceSeconds: 0 })).toBe('ERR_TOKEN_EXPIRED')
  })

  it('refuses a token issued in the future beyond the tolerance, and one that claims more than an hour of life', async () => {
    expect(await code(await signToken(key.privateJwk, key.kid, claims({ iat: NOW + 20, exp: NOW + 320 })))).toBe('ok')
    expect(await code(await signToken(key.privateJwk, key.kid, claims({ iat: NOW + 60, exp: NOW + 360 })))).toBe(
      'ERR_TOKEN_INVALID',
    )
    expect(await code(await signToken(key.privateJwk, key.kid, claims({ exp: NOW + 3601 })))).toBe('ERR_TOKEN_INVALID')
  })

  it('tells another audience apart from every other failure', async () => {
    const token = await signToken(key.privateJwk, key.kid, claims({ aud: 'payroll' }))
    expect(await code(token)).toBe('ERR_TOKEN_AUDIENCE')
    expect(await code(await signToken(key.privateJwk, key.kid, claims()), { audience: 'payroll' })).toBe(
      'ERR_TOKEN_AUDIENCE',
    )
  })

  it("refuses another key's token, a wrong issuer, a changed payload, a changed header, and junk, as ERR_TOKEN_INVALID", async () => {
    expect(await code(await signToken(stranger.privateJwk, stranger.kid, claims()))).toBe('ERR_TOKEN_INVALID')
    // Another key claiming our kid: the signature fails.
    expect(await code(await signToken(stranger.privateJwk, key.kid, claims()))).toBe('ERR_TOKEN_INVALID')
    const token = await signToken(key.privateJwk, key.kid, claims())
    expect(await code(token, { issuer: 'securelogin:ffffffffffffffff' })).toBe('ERR_TOKEN_INVALID')
    const [header, payload, signature] = token.split('.') as [string, string, string]
    const admin = Buffer.from(JSON.stringify({ ...claims(), sub: 'root' })).toString('base64url')
    expect(await code(`${header}.${admin}.${signature}`)).toBe('ERR_TOKEN_INVALID')
    const noKid = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' })).toString('base64url')
    expect(await code(`${noKid}.${payload}.${signature}`)).toBe('ERR_TOKEN_INVALID')
    for (const junk of ['', 'x', 'a.b', 'a.b.c', `${header}.${payload}`, 'x'.repeat(5000)])
      expect(await code(junk)).toBe('ERR_TOKEN_INVALID')
  })

  it('refuses every other spelling of a good token: unused low bits set, padding, the +/ alphabet', async () => {
    const token = await signToken(key.privateJwk, key.kid, claims())
    expect(await code(token)).toBe('ok')
    const parts = token.split('.')
    let spellings = 0
    for (const [i, part] of parts.entries()) {
      for (const other of respellings(part)) {
        // The same bytes, so only the spelling differs: a lenient decoder would verify it.
        expect(Buffer.from(other, 'base64url').equals(Buffer.from(part, 'base64url'))).toBe(true)
        const respelled = parts.map((p, j) => (j === i ? other : p)).join('.')
        expect(await code(respelled), `part ${i}: ${other.slice(-4)}`).toBe('ERR_TOKEN_INVALID')
        spellings++
      }
    }
    // An Ed25519 signature is 64 bytes, 86 characters: the last carries 4 unused bits.
    expect(respellings(parts[2]!).length).toBeGreaterThanOrEqual(15)
    expect(spellings).toBeGreaterThanOrEqual(17)
    // Surrounding white space (a pasted token) is not part of the token, nor of its length limit.
    expect(await code(` ${token}\n`)).toBe('ok')
    expect(await code(`${' '.repeat(4000)}${token}`)).toBe('ok')
  })

  it('refuses alg "none" and HS256 signed with the public key (algorithm confusion)', async () => {
    const payload = Buffer.from(JSON.stringify(claims())).toString('base64url')
    const none = Buffer.from(JSON.stringify({ alg: 'none', kid: key.kid, typ: 'JWT' })).toString('base64url')
    expect(await code(`${none}.${payload}.`)).toBe('ERR_TOKEN_INVALID')
    const { iss, sub, aud, iat, exp, jti, ...rest } = claims()
    const hs256 = await new SignJWT(rest)
      .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: 'JWT' })
      .setIssuer(iss)
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(Buffer.from(key.publicJwk.x, 'base64url'))
    expect(await code(hs256)).toBe('ERR_TOKEN_INVALID')
  })

  it('refuses a token signed by our key whose claims are not ours (a missing sid, an unknown role, another typ)', async () => {
    const sign = (payload: Record<string, unknown>, typ = 'JWT') =>
      new SignJWT(payload)
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ })
        .sign(createPrivateKey({ key: { ...key.privateJwk }, format: 'jwk' }))
    const { sid: _sid, ...noSid } = claims()
    expect(await code(await sign(noSid))).toBe('ERR_TOKEN_INVALID')
    expect(await code(await sign({ ...claims(), role: 'root' }))).toBe('ERR_TOKEN_INVALID')
    expect(await code(await sign({ ...claims() }, 'at+jwt'))).toBe('ERR_TOKEN_INVALID')
    // Our header exactly: jose would normalise these spellings of typ and pick a key without kid.
    expect(await code(await sign({ ...claims() }, 'jwt'))).toBe('ERR_TOKEN_INVALID')
    expect(await code(await sign({ ...claims() }, 'application/JWT'))).toBe('ERR_TOKEN_INVALID')
    const noKid = await new SignJWT({ ...claims() })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .sign(createPrivateKey({ key: { ...key.privateJwk }, format: 'jwk' }))
    expect(await code(noKid)).toBe('ERR_TOKEN_INVALID')
    expect(await code(await sign({ ...claims() }))).toBe('ok')
  })

  it('says plainly when the JWKS is not one (ERR_USAGE: the application is misconfigured, not the token bad)', async () => {
    const token = await signToken(key.privateJwk, key.kid, claims())
    for (const bad of ['not json', '{}', { keys: [] }, { keys: [{ ...key.publicJwk, d: 'secret' }] }]) {
      await expect(verifyToken(token, { jwks: bad, audience: 'billing', now: at(NOW) })).rejects.toMatchObject({
        code: 'ERR_USAGE',
      })
    }
  })
})
