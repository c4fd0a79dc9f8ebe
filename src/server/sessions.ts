import { createHash } from 'node:crypto'
import type { Role } from '../protocol/messages.js'

export interface Session {
  user: string
  role: Role
  createdAt: number
  expiresAt: number
}

/**
 * Sessions made at login. The table is keyed by the SHA-256 of a 256-bit random token, so a
 * dump of it cannot be replayed. (Issue 6 persists sessions and hands the token to the client.)
 */
export class SessionTable {
  readonly #sessions = new Map<string, Session>()
  readonly #lifetimeMs: number

  constructor(lifetimeMs: number) {
    this.#lifetimeMs = lifetimeMs
  }

  create(user: string, role: Role, token: Buffer, nowMs: number): Session {
    this.#purge(nowMs)
    const session = { user, role, createdAt: nowMs, expiresAt: nowMs + this.#lifetimeMs }
    this.#sessions.set(hashToken(token), session)
    return session
  }

  get size(): number {
    return this.#sessions.size
  }

  #purge(nowMs: number): void {
    for (const [key, session] of this.#sessions) if (session.expiresAt <= nowMs) this.#sessions.delete(key)
  }
}

function hashToken(token: Buffer): string {
  return createHash('sha256').update(token).digest('hex')
}
