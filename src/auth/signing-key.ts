import { generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import { calculateJwkThumbprint } from 'jose'
import type { PublicJwk } from '../protocol/signed-tokens.js'

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
