import { readFile } from 'node:fs/promises'
import { call } from '../client/calls.js'
import { ServerConnection } from '../client/connection.js'
import { checkToken, fetchJwks } from '../client/tokens.js'
import { withSession } from '../client/session.js'
import { verifyToken } from '../auth/signed-tokens.js'
import { SecureLoginError } from '../protocol/errors.js'
import {
  AUDIENCE_PATTERN,
  TOKEN_TTL_MAX_SECONDS,
  TOKEN_TTL_MIN_SECONDS,
  type TokenClaims,
} from '../protocol/signed-tokens.js'
import { connectOptions, sessionOptions, type ClientArgs } from './client-options.js'
import { parseDuration, fromNow } from './duration.js'
import { printJson, usageError } from './output.js'
import { stdinLines } from './stdin-lines.js'

// `securelogin token`, `jwks` and `verify-token` (docs/tokens.md): a signed token for an
// application, the keys that check it, and the check itself, offline.

export interface TokenArgs extends ClientArgs {
  audience: string
  ttl: string
}

function checkAudience(audience: string): string {
  if (!AUDIENCE_PATTERN.test(audience)) {
    throw usageError(
      "--audience is the application's name: 1 to 128 of letters, digits and . _ : / @ -, starting with a letter " +
        'or digit',
      'for example --audience billing',
    )
  }
  return audience
}

/** A token for --audience from the saved session: the token alone on stdout, for `$(...)`. */
export async function runToken(args: TokenArgs): Promise<void> {
  const audience = checkAudience(args.audience)
  const ttlSeconds = parseDuration(args.ttl, '--ttl') / 1000
  if (ttlSeconds < TOKEN_TTL_MIN_SECONDS || ttlSeconds > TOKEN_TTL_MAX_SECONDS) {
    throw usageError(
      `--ttl is from ${TOKEN_TTL_MIN_SECONDS}s to ${TOKEN_TTL_MAX_SECONDS / 60}m`,
      'tokens are short-lived: ask for a new one when it ends',
    )
  }
  const issued = await withSession(sessionOptions(args), (conn) => call(conn, 'token', { audience, ttlSeconds }))
  if (args.json)
    printJson({
      event: 'token',
      audience,
      token: issued.token,
      kid: issued.kid,
      jti: issued.jti,
      expiresAt: issued.expiresAt,
    })
  else {
    process.stdout.write(`${issued.token}\n`)
    if (process.stderr.isTTY)
      process.stderr.write(`token for ${audience}, expires ${fromNow(issued.expiresAt)} (${issued.expiresAt})\n`)
  }
}

/** The server's public token-signing keys, as the JWKS document (no login needed). */
export async function runJwks(args: ClientArgs): Promise<void> {
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    const jwks = await fetchJwks(conn)
    process.stdout.write(args.json ? `${JSON.stringify(jwks)}\n` : `${JSON.stringify(jwks, null, 2)}\n`)
  } finally {
    conn.close()
  }
}

export interface VerifyTokenArgs extends ClientArgs {
  jwks: string
  audience: string
  issuer?: string | undefined
  token?: string | undefined
  checkSession: boolean
}

/**
 * Checks a token offline against a JWKS file and prints its claims; with --check-session, also
 * asks the server whether the session it came from is still live. TOKEN "-" (or none) reads it
 * from stdin, which keeps it out of the process list.
 */
export async function runVerifyToken(args: VerifyTokenArgs): Promise<void> {
  const audience = checkAudience(args.audience)
  let jwksText: string
  try {
    jwksText = await readFile(args.jwks, 'utf8')
  } catch (error) {
    throw usageError(
      `cannot read --jwks file ${args.jwks} (${(error as NodeJS.ErrnoException).code})`,
      'the server writes certs/jwks.json; `securelogin jwks > jwks.json` fetches it',
    )
  }
  // yargs reads a lone "-" as an empty string.
  const token = !args.token || args.token === '-' ? await readTokenFromStdin() : args.token
  const claims = await verifyToken(token, {
    jwks: jwksText,
    audience,
    ...(args.issuer !== undefined ? { issuer: args.issuer } : {}),
  })
  if (args.checkSession) {
    const conn = await ServerConnection.open(await connectOptions(args))
    try {
      const { active, code } = await checkToken(conn, token, audience)
      if (!active && code === 'ERR_TOKEN_REVOKED')
        throw new SecureLoginError(
          code,
          'the session this token came from has ended (logged out, revoked or expired)',
          { hint: 'the user logs in again and gets a new token' },
        )
      if (!active)
        throw new SecureLoginError(code ?? 'ERR_TOKEN_INVALID', 'the server does not vouch for this token', {
          hint: 'is --server the server that signed it?',
        })
    } finally {
      conn.close()
    }
  }
  if (args.json) printJson({ event: 'token_valid', claims, sessionChecked: args.checkSession })
  else process.stdout.write(claimsText(claims, args.checkSession))
}

async function readTokenFromStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('paste the token, then Enter: ')
  const lines = stdinLines()
  try {
    return (await lines.next('token')).trim()
  } finally {
    lines.close()
  }
}

function claimsText(claims: TokenClaims, sessionChecked: boolean): string {
  const at = (seconds: number) => new Date(seconds * 1000).toISOString()
  return (
    [
      `valid token for ${claims.aud}${sessionChecked ? ' (its session is live)' : ''}`,
      `user ${claims.sub} (${claims.role})`,
      `issued ${at(claims.iat)} by ${claims.iss}`,
      `expires ${at(claims.exp)} (${fromNow(at(claims.exp))})`,
      `session ${claims.sid}`,
      `token id ${claims.jti}`,
    ].join('\n') + '\n'
  )
}
