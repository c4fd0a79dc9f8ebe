import { createLocalJWKSet, errors, jwtVerify } from 'jose'
import { SecureLoginError } from '../protocol/errors.js'
import { Jwks, TOKEN_CLOCK_TOLERANCE_SECONDS, TOKEN_TTL_MAX_SECONDS, TokenClaims } from '../protocol/signed-tokens.js'

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
  if (typeof token !== 'string' || token.length > 4096) throw invalid('not a token')
  let payload: unknown
  try {
    ;({ payload } = await jwtVerify(token.trim(), createLocalJWKSet(jwks), {
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
