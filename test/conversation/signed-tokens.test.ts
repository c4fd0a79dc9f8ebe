import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyToken } from '../../src/auth/signed-tokens.js'
import { readStoreHeader } from '../../src/store/index.js'
import { Bench, MINUTE, type LoggedIn, type User } from '../helpers/conversation.js'
import { noteSecret } from '../helpers/secrets.js'

// Signed session tokens (issue 8), one layer below the CLI: `call token` and its claims,
// `jwks_get`, `token_check` (what `verify-token --check-session` asks) through every way a token
// stops being good, another server's token (asked of the server and checked offline), jose's own
// verifier, and the audit entry. What the CLI adds (certs/jwks.json, `securelogin jwks`, offline
// `verify-token`, its argument checks, the example application, rotating the key with the store
// command): test/e2e/signed-tokens.test.ts.

let bench: Bench
let other: Bench
let ada: User
let adaLogin: LoggedIn

beforeAll(async () => {
  // Sessions end an hour after the login, used or not: a token never outlives its session.
  bench = await Bench.start({ registration: 'open', sessions: { idleMs: 60 * MINUTE, absoluteMs: 60 * MINUTE } })
  other = await Bench.start({ registration: 'open' })
  await bench.registerBootstrap('root')
  ada = await bench.register('ada')
  adaLogin = await bench.login(ada)
})

afterAll(async () => {
  await bench?.stop()
  await other?.stop()
})

async function issue(login: LoggedIn, audience: string, ttlSeconds?: number) {
  const issued = await login.peer.call('token', { audience, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) })
  noteSecret('signed token', issued.token)
  return issued
}

/** `token_check` on a connection with no login, as an application's verifier asks. */
async function check(token: string, audience = 'billing', on: Bench = bench) {
  return on.connect().request({ type: 'token_check', token, audience }, 'token_checked')
}

async function jwksOf(on: Bench) {
  const { type: _, ...jwks } = await on.connect().request({ type: 'jwks_get' }, 'jwks')
  return jwks
}

/** The token with one claim changed (still base64url, still three parts, the old signature). */
function tampered(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  const changed = Buffer.from(JSON.stringify({ ...claims, role: 'system_admin' })).toString('base64url')
  return `${header}.${changed}.${signature}`
}

describe('signed tokens', () => {
  it('jwks_get, with no login: one Ed25519 public key, a different one on each server', async () => {
    const jwks = await jwksOf(bench)
    expect(jwks.keys).toHaveLength(1)
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
    expect(jwks.keys[0]).not.toHaveProperty('d')
    expect((await jwksOf(other)).keys[0]!.kid).not.toBe(jwks.keys[0]!.kid)
    // On a logged-in connection too, and it stays logged in.
    expect((await adaLogin.peer.request({ type: 'jwks_get' }, 'jwks')).keys).toEqual(jwks.keys)
    expect((await adaLogin.peer.call('whoami', {})).user).toBe('ada')
  })

  it('issues a token with iss, sub, role, aud, iat, exp (5 minutes), jti, the session id, and the key in its header', async () => {
    const issued = await issue(adaLogin, 'billing')
    const claims = decodeJwt(issued.token)
    const header = decodeProtectedHeader(issued.token)
    const { storeId } = await readStoreHeader(bench.storePath)
    expect(header).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: (await jwksOf(bench)).keys[0]!.kid })
    expect(issued.kid).toBe(header.kid)
    const now = Math.floor(bench.clock.ms / 1000)
    expect(claims).toEqual({
      iss: `securelogin:${storeId}`,
      sub: 'ada',
      role: 'regular_user',
      aud: 'billing',
      iat: now,
      exp: now + 300,
      jti: issued.jti,
      sid: adaLogin.welcome.sessionId,
    })
    expect(issued.jti).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(issued.expiresAt).toBe(new Date((claims.exp as number) * 1000).toISOString())
    expect((await issue(adaLogin, 'billing')).jti, 'a new jti each time').not.toBe(issued.jti)
  })

  it('lives ttlSeconds, but never past the absolute end of its session', async () => {
    const login = await bench.login(ada)
    const iat = Math.floor(bench.clock.ms / 1000)
    expect(decodeJwt((await issue(login, 'billing', 600)).token).exp).toBe(iat + 600)
    bench.clock.advance(30 * MINUTE)
    const capped = decodeJwt((await issue(login, 'billing', 3600)).token)
    expect(capped.exp).toBe(Math.floor(Date.parse(login.welcome.expiresAt) / 1000))
    expect(capped.exp! - capped.iat!).toBe(30 * 60)
    // The server checks the arguments itself (the CLI's checks: test/e2e).
    for (const args of [
      { audience: 'billing', ttlSeconds: 5 },
      { audience: 'billing', ttlSeconds: 7200 },
      { audience: 'a b' },
    ])
      expect(await (await bench.login(ada)).peer.callRefusal('token', args), JSON.stringify(args)).toMatchObject({
        code: 'ERR_PROTOCOL',
      })
  })

  it("verifies with jose's own createLocalJWKSet and jwtVerify, given only the server's JWKS", async () => {
    const { token } = await issue(adaLogin, 'billing', 3600)
    const keys = createLocalJWKSet(await jwksOf(bench))
    const { payload, protectedHeader } = await jwtVerify(token, keys, {
      audience: 'billing',
      algorithms: ['EdDSA'],
      issuer: `securelogin:${(await readStoreHeader(bench.storePath)).storeId}`,
      currentDate: new Date(bench.clock.ms),
    })
    expect(payload.sub).toBe('ada')
    expect(protectedHeader.alg).toBe('EdDSA')
    await expect(
      jwtVerify(token, keys, { audience: 'payroll', currentDate: new Date(bench.clock.ms) }),
    ).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' })
    await expect(jwtVerify(tampered(token), keys)).rejects.toMatchObject({
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    })
  })

  it('token_check: live while its session is, then ERR_TOKEN_REVOKED; expired, another audience, tampered, not ours', async () => {
    const login = await bench.login(ada)
    const { token } = await issue(login, 'billing', 600)
    expect(await check(token)).toEqual({ type: 'token_checked', active: true })
    expect(await check(token, 'payroll')).toEqual({ type: 'token_checked', active: false, code: 'ERR_TOKEN_AUDIENCE' })
    expect(await check(tampered(token))).toEqual({ type: 'token_checked', active: false, code: 'ERR_TOKEN_INVALID' })
    expect(await check(token, 'billing', other), "another server's check").toEqual({
      type: 'token_checked',
      active: false,
      code: 'ERR_TOKEN_INVALID',
    })
    expect(await login.peer.call('logout', {})).toEqual({ revoked: 1 })
    expect(await check(token)).toEqual({ type: 'token_checked', active: false, code: 'ERR_TOKEN_REVOKED' })

    const { token: short } = await issue(adaLogin, 'billing', 60)
    bench.clock.advance(2 * MINUTE)
    expect(await check(short)).toEqual({ type: 'token_checked', active: false, code: 'ERR_TOKEN_EXPIRED' })
  })

  it("refuses another server's token, and its own server takes it", async () => {
    const bea = await other.register('bea')
    const { token } = await issue(await other.login(bea), 'billing', 600)
    expect(await check(token)).toMatchObject({ active: false, code: 'ERR_TOKEN_INVALID' })
    expect(await check(token, 'billing', other)).toEqual({ type: 'token_checked', active: true })
    // Offline, as `verify-token` and an application check it: refused with this server's keys, good with its own.
    const offline = async (on: Bench) =>
      verifyToken(token, { jwks: await jwksOf(on), audience: 'billing', now: new Date(other.clock.ms) })
    await expect(offline(bench)).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' })
    expect(await offline(other)).toMatchObject({ sub: 'bea', aud: 'billing' })
  })

  it("a token of a removed user's session is revoked with it", async () => {
    const cy = await bench.register('cy')
    const { token } = await issue(await bench.login(cy), 'billing', 600)
    expect(await check(token)).toMatchObject({ active: true })
    const { peer } = await bench.login(bench.users.get('root')!)
    expect(await peer.call('remove', { user: 'cy' })).toEqual({ user: 'cy', revokedSessions: 1 })
    expect(await check(token)).toEqual({ type: 'token_checked', active: false, code: 'ERR_TOKEN_REVOKED' })
  })

  it('audits each token issued (audience, jti, key, life) and logs none', async () => {
    const login = await bench.login(ada)
    const { token, jti, kid } = await issue(login, 'audit-check')
    const { peer } = await bench.login(bench.users.get('root')!)
    const { entries } = await peer.call('audit', { user: 'ada' })
    expect(entries.filter((e) => e.action === 'token.issued' && e.details?.['jti'] === jti)).toEqual([
      expect.objectContaining({
        actor: 'ada',
        target: login.welcome.sessionId,
        outcome: 'ok',
        details: { audience: 'audit-check', jti, kid, ttl: 300 },
      }),
    ])
    expect(JSON.stringify(entries)).not.toContain(token)
    const log = JSON.stringify(bench.log)
    expect(log).not.toContain(token)
    expect(bench.log.filter((e) => e.event === 'token_issued' && e.fields['jti'] === jti)).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ user: 'ada', audience: 'audit-check' }) }),
    ])
  })
})
