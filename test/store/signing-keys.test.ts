import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeProtectedHeader } from 'jose'
import { RETIRED_KEY_KEPT_MS, SIGNING_KEYS, SigningKeys } from '../../src/server/signing-keys.js'
import { verifyToken } from '../../src/auth/signed-tokens.js'
import { storeFixture, type StoreFixture } from './fixtures.js'

// The token-signing keys in a real store file (src/server/signing-keys.ts): made once, the same
// after a reopen, rotated with the private half of the old key gone from the store, kept public
// until its tokens have expired, and a malformed record refused rather than replaced.

const T0 = Date.parse('2026-12-01T12:00:00Z')
let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(async () => {
  await f.cleanup()
})

const claims = (nowMs: number) => ({
  iss: 'securelogin:test',
  sub: 'ada',
  role: 'admin' as const,
  aud: 'billing',
  iat: Math.floor(nowMs / 1000),
  exp: Math.floor(nowMs / 1000) + 300,
  jti: 'AAAAAAAAAAAAAAAAAAAAAA',
  sid: '0123456789abcdef0123456789abcdef',
})

describe('SigningKeys', () => {
  it('makes one key on the first load and keeps it across reopens; its issuer names the store', async () => {
    const store = await f.create()
    const first = await SigningKeys.load(store, T0)
    expect(first.jwks().keys).toHaveLength(1)
    expect(first.issuer).toBe(`securelogin:${(await store.stats()).storeId}`)
    await store.close()
    const again = await SigningKeys.load(await f.open(), T0 + 1000)
    expect(again.jwks()).toEqual(first.jwks())
    const token = await again.sign(claims(T0))
    expect(decodeProtectedHeader(token).kid).toBe(first.currentKid)
  })

  it('rotates: the new key signs, the old one keeps only its public half in the store and verifies until its tokens have expired', async () => {
    const store = await f.create()
    const before = await SigningKeys.load(store, T0)
    const oldToken = await before.sign(claims(T0))
    const rotation = await SigningKeys.rotate(store, T0 + 1000)
    await store.commit([rotation.change])
    expect(rotation.retired).toBe(before.currentKid)
    const record = (await store.get<{ keys: Array<Record<string, unknown>> }>(SIGNING_KEYS))!
    expect(record.keys.map((key) => [key['kid'], 'd' in key, 'retiredAt' in key])).toEqual([
      [rotation.kid, true, false],
      [before.currentKid, false, true],
    ])

    const after = await SigningKeys.load(store, T0 + 2000)
    expect(after.currentKid).toBe(rotation.kid)
    expect(
      await verifyToken(oldToken, { jwks: after.jwks(), audience: 'billing', now: new Date(T0 + 2000) }),
    ).toMatchObject({ sub: 'ada' })
    expect(decodeProtectedHeader(await after.sign(claims(T0 + 2000))).kid).toBe(rotation.kid)

    // Kept until the longest token life and the clock slack have passed since the rotation, then dropped (and the drop written).
    expect((await SigningKeys.load(store, T0 + 1000 + RETIRED_KEY_KEPT_MS - 1)).jwks().keys).toHaveLength(2)
    expect((await SigningKeys.load(store, T0 + 1000 + RETIRED_KEY_KEPT_MS + 1)).jwks().keys.map((k) => k.kid)).toEqual([
      rotation.kid,
    ])
    expect((await store.get<{ keys: unknown[] }>(SIGNING_KEYS))!.keys).toHaveLength(1)
  })

  it('refuses a malformed record (ERR_STORE_CORRUPT) and leaves it as it is', async () => {
    const store = await f.create()
    const bad = {
      issuer: 'securelogin:x',
      keys: [{ kid: 'k'.repeat(43), x: 'x'.repeat(43), createdAt: new Date(T0).toISOString() }],
    } // no private key
    await store.commit([{ key: SIGNING_KEYS, value: bad }])
    await expect(SigningKeys.load(store, T0)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    await expect(SigningKeys.rotate(store, T0)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    expect(await store.get(SIGNING_KEYS)).toEqual(bad)
  })
})
