import type { Jwks } from '../protocol/signed-tokens.js'
import type { ServerMessageOf } from '../protocol/messages.js'
import type { ServerConnection } from './connection.js'

// The token messages that need no login (docs/tokens.md).

/** The server's public token-signing keys. */
export async function fetchJwks(conn: ServerConnection): Promise<Jwks> {
  const { keys } = await conn.request({ type: 'jwks_get' }, 'jwks')
  return { keys }
}

/** Whether the server still vouches for a token: valid for `audience`, and its session live. */
export async function checkToken(
  conn: ServerConnection,
  token: string,
  audience: string,
): Promise<Omit<ServerMessageOf<'token_checked'>, 'type'>> {
  const { active, code } = await conn.request({ type: 'token_check', token, audience }, 'token_checked')
  return code === undefined ? { active } : { active, code }
}
