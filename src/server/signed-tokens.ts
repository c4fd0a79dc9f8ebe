import { verifyToken } from '../auth/signed-tokens.js'
import { SecureLoginError } from '../protocol/errors.js'
import { TOKEN_TTL_DEFAULT_SECONDS, type TokenClaims } from '../protocol/signed-tokens.js'
import type { CallResult } from '../protocol/calls.js'
import { getUser, type AccountRecord } from './accounts.js'
import type { ServerContext } from './context.js'
import type { MessageOf, Reply, Request } from './vocabulary.js'
import type { SessionRecord } from './sessions.js'
import { audit } from './audit-events.js'

// Signed tokens on the server side (docs/tokens.md): `call token` signs one for the caller's
// session, `jwks_get` hands out the public keys, `token_check` tells an application whether a
// token's session is still live. The token itself is never logged or audited; its jti is.

/**
 * A token for `audience` from this session: it lives ttlSeconds (default 5 minutes), but never
 * past the session's absolute expiry.
 */
export async function issueSignedToken(
  ctx: ServerContext,
  caller: { record: AccountRecord; session: SessionRecord; address: string; nowMs: number },
  args: { audience: string; ttlSeconds?: number | undefined },
): Promise<CallResult<'token'>> {
  const { record, session, address, nowMs } = caller
  const iat = Math.floor(nowMs / 1000)
  const exp = Math.min(
    iat + (args.ttlSeconds ?? TOKEN_TTL_DEFAULT_SECONDS),
    Math.floor(session.absoluteExpiresAt / 1000),
  )
  if (exp <= iat)
    throw new SecureLoginError('ERR_FORBIDDEN', 'your session ends too soon for a token', {
      hint: 'log in again: securelogin login',
    })
  const jti = ctx.randomBytes(16).toString('base64url')
  const claims: TokenClaims = {
    iss: ctx.signingKeys.issuer,
    sub: record.username,
    role: record.role,
    aud: args.audience,
    iat,
    exp,
    jti,
    sid: session.id,
  }
  const token = await ctx.signingKeys.sign(claims)
  await audit(ctx, {
    actor: record.username,
    action: 'token.issued',
    target: session.id,
    address,
    outcome: 'ok',
    details: { audience: args.audience, jti, kid: ctx.signingKeys.currentKid, ttl: exp - iat },
  })
  ctx.logger.log('info', 'token_issued', { user: record.username, audience: args.audience, jti, address })
  return { token, kid: ctx.signingKeys.currentKid, jti, expiresAt: new Date(exp * 1000).toISOString() }
}

/** `jwks_get`: the public keys, in any state; the conversation goes on. */
export async function handleJwksGet({ ctx, state }: Request<'ready' | 'authenticated'>): Promise<Reply> {
  return { message: { type: 'jwks', ...ctx.signingKeys.jwks() }, next: state }
}

/**
 * `token_check`: the token checked as an application would (our keys, its audience, expiry),
 * then its session: active only while the session it came from is live. A session's end
 * (logout, revoke, expiry, the user removed) is the code ERR_TOKEN_REVOKED.
 */
export async function handleTokenCheck(
  { ctx, state }: Request<'ready' | 'authenticated'>,
  message: MessageOf<'token_check'>,
): Promise<Reply> {
  const reply = (
    active: boolean,
    code?: 'ERR_TOKEN_EXPIRED' | 'ERR_TOKEN_AUDIENCE' | 'ERR_TOKEN_INVALID' | 'ERR_TOKEN_REVOKED',
  ): Reply => ({
    message: { type: 'token_checked', active, ...(code ? { code } : {}) },
    next: state,
  })
  let claims: TokenClaims
  try {
    claims = await verifyToken(message.token, {
      jwks: ctx.signingKeys.jwks(),
      audience: message.audience,
      issuer: ctx.signingKeys.issuer,
      now: new Date(ctx.now()),
    })
  } catch (error) {
    if (
      error instanceof SecureLoginError &&
      (error.code === 'ERR_TOKEN_EXPIRED' || error.code === 'ERR_TOKEN_AUDIENCE' || error.code === 'ERR_TOKEN_INVALID')
    )
      return reply(false, error.code)
    throw error
  }
  const session = await ctx.sessions.check(claims.sid, ctx.now())
  if (!session || session.user !== claims.sub || !(await getUser(ctx.store, claims.sub)))
    return reply(false, 'ERR_TOKEN_REVOKED')
  return reply(true)
}
