import { z } from 'zod'
import { Role, SessionId, base64url, isoTime, username } from './fields.js'

// Signed session tokens (docs/tokens.md): a JWT the server signs with its Ed25519 key for one
// application (the audience), which checks it offline against the server's public keys (JWKS,
// RFC 7517). Shared by the server that signs, the client that asks, and verifyToken().

/** An application's name as a token's audience: what `--audience` takes. */
export const AUDIENCE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/
export const Audience = z.string().regex(AUDIENCE_PATTERN)

/** How long a token may live: 5 minutes unless asked, never more than an hour. */
export const TOKEN_TTL_DEFAULT_SECONDS = 5 * 60
export const TOKEN_TTL_MIN_SECONDS = 10
export const TOKEN_TTL_MAX_SECONDS = 60 * 60
/** Clocks drift: exp and iat are checked with this much slack unless the verifier says otherwise. */
export const TOKEN_CLOCK_TOLERANCE_SECONDS = 30

/** A public signing key as the JWKS publishes it (RFC 8037: OKP, Ed25519); kid is its RFC 7638 thumbprint. */
export const PublicJwk = z.strictObject({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: base64url(43),
  kid: base64url(43),
  alg: z.literal('EdDSA'),
  use: z.literal('sig'),
})
export type PublicJwk = z.infer<typeof PublicJwk>

/** The current key first, then retired ones whose tokens may still be live. */
export const Jwks = z.strictObject({ keys: z.array(PublicJwk).min(1).max(32) })
export type Jwks = z.infer<typeof Jwks>

/** A compact JWS: three base64url parts. */
export const SignedToken = z
  .string()
  .max(4096)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)

/** What a token says (RFC 7519 names, and `sid`: the session it was issued from). */
export const TokenClaims = z.strictObject({
  /** The server that signed it: `securelogin:` and its store's id. */
  iss: z.string().max(128),
  sub: username,
  role: Role,
  aud: Audience,
  iat: z.int(),
  exp: z.int(),
  jti: base64url(22),
  sid: SessionId,
})
export type TokenClaims = z.infer<typeof TokenClaims>

export const TokenIssued = z.strictObject({
  token: SignedToken,
  kid: base64url(43),
  jti: base64url(22),
  expiresAt: isoTime,
})
