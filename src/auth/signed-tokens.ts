import { createPrivateKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, errors, jwtVerify } from 'jose'
import { SecureLoginError } from '../protocol/errors.js'
import {
  Jwks,
  TOKEN_CLOCK_TOLERANCE_SECONDS,
  TOKEN_TTL_MAX_SECONDS,
  TokenClaims,
  type PublicJwk,
} from '../protocol/signed-tokens.js'

// Signed tokens, the pure part (docs/tokens.md): the server's Ed25519 signing key, signing a
// token with it, and verifyToken(), which an application runs offline with the JWKS alone. The
// wire shapes are protocol/signed-tokens.ts; the stored keys server/signing-keys.ts; the calls
// server/signed-tokens.ts; the commands cli/token.ts.

// The server's token-signing key: Ed25519 (RFC 8037), named by its RFC 7638 thumbprint so that a
// verifier picks the right public key from the JWKS and no two keys can share a name.

/** The private half as a JWK (`d` is the secret); kept only inside the encrypted store. */
export interface PrivateSigningJwk {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  d: string
}

export interface SigningKey {
  kid: string
  privateJwk: PrivateSigningJwk
  publicJwk: PublicJwk
}

export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' }) as JsonWebKey
  const privateJwk: PrivateSigningJwk = { kty: 'OKP', crv: 'Ed25519', x: jwk.x!, d: jwk.d! }
  const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: privateJwk.x }, 'sha256')
  return { kid, privateJwk, publicJwk: publicJwkOf(privateJwk.x, kid) }
}

export function publicJwkOf(x: string, kid: string): PublicJwk {
  return { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' }
}

/**
 * A compact JWT over `claims`, signed with Ed25519 (`alg: EdDSA`); the header names the key
 * (`kid`) and the type (`typ: JWT`). The caller (the server) chooses every claim.
 */
export async function signToken(key: PrivateSigningJwk, kid: string, claims: TokenClaims): Promise<string> {
  const privateKey = createPrivateKey({ key: { ...key }, format: 'jwk' })
  const { iss, sub, aud, iat, exp, jti, ...rest } = claims
  return new SignJWT(rest)
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
    .setIssuer(iss)
    .setSubject(sub)
    .setAudience(aud)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(privateKey)
}

// verifyToken(): what an application runs to check a securelogin token offline, with the
// server's public keys alone (its JWKS). Three outcomes besides the claims, as typed errors:
// ERR_TOKEN_EXPIRED, ERR_TOKEN_AUDIENCE (a good token for another application), and
// ERR_TOKEN_INVALID for everything else (bad signature, unknown key, malformed, not ours). The
// message says what failed; it never holds the token.

export interface VerifyTokenOptions {
  /** The server's JWKS: the parsed `certs/jwks.json` (or `securelogin jwks`), or its text. */
  jwks: unknown
  /** This application's name: a token for any other audience is refused. */
  audience: string
  /** When given, the token's `iss` must be exactly this (`securelogin:` and the store id). */
  issuer?: string
  /** Slack for clock drift on exp and iat, in seconds (default 30). */
  clockToleranceSeconds?: number
  /** The time to check against (default now). */
  now?: Date
}

export async function verifyToken(token: string, options: VerifyTokenOptions): Promise<TokenClaims> {
  const jwks = parseJwks(options.jwks)
  const tolerance = options.clockToleranceSeconds ?? TOKEN_CLOCK_TOLERANCE_SECONDS
  const now = options.now ?? new Date()
  if (typeof token !== 'string') throw invalid('not a token')
  // White space around a pasted token is forgiven; the token itself is held to its limit.
  const compact = token.trim()
  if (compact.length > 4096) throw invalid('not a token')
  if (!isCanonicalCompact(compact)) throw invalid('it is not three parts of canonical base64url')
  // Our header, exactly: jose would take a missing kid (any key of the set that verifies) and
  // typ spelled "jwt" or "application/JWT"; one spelling per token is the rule.
  if (!hasOurHeader(compact)) throw invalid('its header is not alg EdDSA, typ JWT and a kid')
  let payload: unknown
  try {
    ;({ payload } = await jwtVerify(compact, createLocalJWKSet(jwks), {
      algorithms: ['EdDSA'],
      typ: 'JWT',
      audience: options.audience,
      ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
      requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti'],
      clockTolerance: tolerance,
      currentDate: now,
    }))
  } catch (error) {
    throw fromJose(error)
  }
  const claims = TokenClaims.safeParse(payload)
  if (!claims.success) throw invalid('its claims are not those of a securelogin token')
  const { iat, exp } = claims.data
  const nowSeconds = Math.floor(now.getTime() / 1000)
  if (iat > nowSeconds + tolerance) throw invalid('it was issued in the future (check this clock)')
  if (exp - iat > TOKEN_TTL_MAX_SECONDS)
    throw invalid(`it claims a life of more than ${TOKEN_TTL_MAX_SECONDS / 60} minutes`)
  return claims.data
}

/**
 * Three parts, each the one spelling of its bytes in unpadded base64url (RFC 7515 2, RFC 4648
 * 3.5: the unused low bits of the last character are zero). The decoder ignores those bits, so
 * without this a token would have many spellings that all verify (16 for the signature's last
 * character alone), and an application that keys a cache, a deny list or a replay check on the
 * token's text would count one token as several.
 */
function hasOurHeader(compact: string): boolean {
  try {
    const header = JSON.parse(Buffer.from(compact.split('.')[0]!, 'base64url').toString('utf8')) as unknown
    if (typeof header !== 'object' || header === null) return false
    const { alg, typ, kid, ...rest } = header as Record<string, unknown>
    return alg === 'EdDSA' && typ === 'JWT' && typeof kid === 'string' && Object.keys(rest).length === 0
  } catch {
    return false
  }
}

function isCanonicalCompact(compact: string): boolean {
  const parts = compact.split('.')
  return parts.length === 3 && parts.every((part) => Buffer.from(part, 'base64url').toString('base64url') === part)
}

function parseJwks(input: unknown): Jwks {
  let value = input
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input)
    } catch {
      throw new SecureLoginError('ERR_USAGE', 'the JWKS is not JSON', {
        hint: 'give the file the server writes (certs/jwks.json) or `securelogin jwks` prints',
      })
    }
  }
  const parsed = Jwks.safeParse(value)
  if (!parsed.success)
    throw new SecureLoginError('ERR_USAGE', 'the JWKS does not hold securelogin public keys', {
      hint: 'give the file the server writes (certs/jwks.json) or `securelogin jwks` prints',
    })
  return parsed.data
}

const invalid = (why: string) => new SecureLoginError('ERR_TOKEN_INVALID', `the token is not valid: ${why}`)

function fromJose(error: unknown): SecureLoginError {
  if (error instanceof errors.JWTExpired) {
    return new SecureLoginError('ERR_TOKEN_EXPIRED', 'the token has expired', {
      hint: 'get a new one: securelogin token --audience APP',
    })
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud')
      return new SecureLoginError('ERR_TOKEN_AUDIENCE', 'the token is for another application', {
        hint: 'ask for one with --audience set to this application',
      })
    return invalid(`its "${error.claim}" claim fails (${error.reason})`)
  }
  if (error instanceof errors.JWKSNoMatchingKey)
    return invalid('no key in the JWKS signed it (another server, or a key retired long ago)')
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalid('the signature does not match')
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid('it is not signed with EdDSA')
  if (error instanceof errors.JOSEError) return invalid(error.message.replace(/\.$/, ''))
  return invalid('it could not be read')
}
