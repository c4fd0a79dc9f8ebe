import { z } from 'zod'
import { StoreConflict, type Store, type StoreChange } from '../store/index.js'
import { readStoredVersioned, type Versioned } from './stored.js'
import { CONFLICT_ATTEMPTS } from './retry.js'
import { base64url } from '../protocol/fields.js'
import { generateSigningKey, publicJwkOf, type PrivateSigningJwk } from '../auth/signed-tokens.js'
import { signToken } from '../auth/signed-tokens.js'
import {
  TOKEN_CLOCK_TOLERANCE_SECONDS,
  TOKEN_TTL_MAX_SECONDS,
  type Jwks,
  type TokenClaims,
} from '../protocol/signed-tokens.js'

// The server's token-signing keys (docs/tokens.md), one store record, `signing/keys`: the current
// key with its private half, and the keys it replaced, public half only, for as long as a token
// they signed may still be live (the longest life a token can have, and the clock tolerance).
// Made on the first start; `securelogin store rotate-signing-key` makes a new current key.

export const SIGNING_KEYS = 'signing/keys'

const KeyRecord = z.strictObject({
  kid: base64url(43),
  x: base64url(43),
  createdAt: z.iso.datetime(),
  /** The private key: only on the current key. */
  d: base64url(43).optional(),
  /** When it stopped signing: the key leaves the JWKS once every token it signed has expired. */
  retiredAt: z.iso.datetime().optional(),
})
type KeyRecord = z.infer<typeof KeyRecord>
const SigningKeysRecord = z.strictObject({
  /** `securelogin:` and the store id: every token's `iss`. */
  issuer: z.string().min(1).max(128),
  /** The current key first (with `d`), then retired ones (without). */
  keys: z
    .array(KeyRecord)
    .min(1)
    .refine(
      ([current, ...retired]) =>
        current!.d !== undefined && retired.every((key) => key.d === undefined && key.retiredAt !== undefined),
    ),
})
type SigningKeysRecord = z.infer<typeof SigningKeysRecord>

/** How long a retired key stays in the JWKS: a token signed just before the rotation, and the slack. */
export const RETIRED_KEY_KEPT_MS = (TOKEN_TTL_MAX_SECONDS + TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000

export class SigningKeys {
  readonly #record: SigningKeysRecord

  private constructor(record: SigningKeysRecord) {
    this.#record = record
  }

  /**
   * The store's keys; on the first start a new one. Retired keys whose tokens have all expired
   * are dropped (the change is committed here, before the server serves).
   */
  static async load(store: Store, nowMs: number): Promise<SigningKeys> {
    // Processes starting together on one store must end with the same keys: each writes only
    // over what it read (a new record over none, a pruned one over the one it pruned), and on a
    // conflict reads what the other wrote.
    for (let attempt = 1; ; attempt++) {
      const stored = await readRecord(store)
      const record = stored
        ? prune(stored.value, nowMs)
        : { issuer: `securelogin:${(await store.stats()).storeId}`, keys: [await newKey(nowMs)] }
      if (stored && record.keys.length === stored.value.keys.length) return new SigningKeys(record)
      try {
        await store.commit([{ key: SIGNING_KEYS, value: record, expect: stored?.version ?? null }])
        return new SigningKeys(record)
      } catch (error) {
        if (!(error instanceof StoreConflict) || attempt >= CONFLICT_ATTEMPTS) throw error
      }
    }
  }

  /**
   * A new current key; the old one keeps its public half only. Returns the change to commit and
   * the kids. For `securelogin store rotate-signing-key`, on a store no server has open.
   */
  static async rotate(
    store: Store,
    nowMs: number,
  ): Promise<{ change: StoreChange; kid: string; retired: string | undefined; jwks: Jwks }> {
    const current = await SigningKeys.load(store, nowMs)
    const [old, ...rest] = current.#record.keys
    const key = await newKey(nowMs)
    const retired: KeyRecord[] = old
      ? [{ kid: old.kid, x: old.x, createdAt: old.createdAt, retiredAt: new Date(nowMs).toISOString() }]
      : []
    const record: SigningKeysRecord = { issuer: current.issuer, keys: [key, ...retired, ...rest] }
    return {
      change: { key: SIGNING_KEYS, value: record },
      kid: key.kid,
      retired: old?.kid,
      jwks: new SigningKeys(record).jwks(),
    }
  }

  get issuer(): string {
    return this.#record.issuer
  }

  get currentKid(): string {
    return this.#record.keys[0]!.kid
  }

  /** The public keys, the current one first: what `certs/jwks.json` holds. */
  jwks(): Jwks {
    return { keys: this.#record.keys.map((key) => publicJwkOf(key.x, key.kid)) }
  }

  /** Whether one of these keys (current or retired) is `kid`. */
  has(kid: string): boolean {
    return this.#record.keys.some((key) => key.kid === kid)
  }

  /** Signs with the current key. */
  sign(claims: TokenClaims): Promise<string> {
    const key = this.#record.keys[0]!
    const jwk: PrivateSigningJwk = { kty: 'OKP', crv: 'Ed25519', x: key.x, d: key.d! }
    return signToken(jwk, key.kid, claims)
  }
}

/** The stored record, checked: a start on keys it cannot read would sign with the wrong one, or none. */
function readRecord(store: Store): Promise<Versioned<SigningKeysRecord> | undefined> {
  const hint = 'run `securelogin store verify`; `securelogin store rotate-signing-key` cannot repair it'
  return readStoredVersioned(store, SIGNING_KEYS, SigningKeysRecord, 'token-signing keys', hint)
}

async function newKey(nowMs: number): Promise<KeyRecord> {
  const { kid, privateJwk } = await generateSigningKey()
  return { kid, x: privateJwk.x, d: privateJwk.d, createdAt: new Date(nowMs).toISOString() }
}

function prune(record: SigningKeysRecord, nowMs: number): SigningKeysRecord {
  const [current, ...retired] = record.keys
  const kept = retired.filter(
    (key) => key.retiredAt === undefined || Date.parse(key.retiredAt) + RETIRED_KEY_KEPT_MS > nowMs,
  )
  return { issuer: record.issuer, keys: [current!, ...kept] }
}
