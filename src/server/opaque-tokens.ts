import { createHash, timingSafeEqual } from 'node:crypto'

// Bearer tokens (sessions, the bootstrap token, invites): 32 random bytes behind a kind prefix.
// The store keeps only SHA-256(token); its first 32 hex digits name the record, so a lookup
// needs no scan, and a dump of the store gives nothing that can be presented.

export type TokenKind = 'session' | 'bootstrap' | 'invite'
const PREFIX: Record<TokenKind, string> = { session: 'sls_', bootstrap: 'slb_', invite: 'sli_' }

export interface IssuedToken {
  token: string
  /** SHA-256 of the token, hex. */
  hash: string
  /** The record's public name: the hash's first 32 hex digits. */
  id: string
}

export function issueToken(kind: TokenKind, randomBytes: (size: number) => Buffer): IssuedToken {
  const bytes = randomBytes(32)
  const token = PREFIX[kind] + bytes.toString('base64url')
  bytes.fill(0)
  return { token, ...hashToken(token) }
}

export function tokenKind(token: string): TokenKind | undefined {
  return (Object.keys(PREFIX) as TokenKind[]).find((kind) => token.startsWith(PREFIX[kind]))
}

export function hashToken(token: string): { hash: string; id: string } {
  const hash = createHash('sha256').update(token, 'utf8').digest('hex')
  return { hash, id: hash.slice(0, 32) }
}

/** Constant-time comparison of two hex hashes of equal length. */
export function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'))
}
