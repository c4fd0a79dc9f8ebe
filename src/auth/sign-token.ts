import { createPrivateKey } from 'node:crypto'
import { SignJWT } from 'jose'
import type { TokenClaims } from '../protocol/signed-tokens.js'
import type { PrivateSigningJwk } from './signing-key.js'

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
