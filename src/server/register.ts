import type { z } from 'zod'
import type { RegisterConfirm, RegisterStart } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import { buildOtpauthUri, verifyTotp } from '../auth/totp.js'
import { checkPasswordKdf, type PasswordKdf } from '../auth/password-stretch.js'
import type { ServerContext } from './context.js'
import { makeRecoveryCodes } from './recovery.js'
import { Secret } from '../auth/secret.js'
import type { ConversationState, Reply } from './conversation.js'
import type { UserRecord } from '../store/index.js'
import { grantFor, roleIndexChanges, stillGranted, type Grant } from './registration.js'
import { audit, auditBehind } from './audit-events.js'
import { freshTotpSecret } from './login.js'

export interface PendingRegistration {
  username: string
  salt: string
  verifier: Secret
  kdf: PasswordKdf
  totpSecret: Secret
  /** What the account will be, and the token it spends (src/server/registration.ts). */
  grant: Grant
}

/** Salt and verifier arrive (never the password); the answer is a fresh TOTP secret to enrol. */
export async function handleRegisterStart(
  ctx: ServerContext,
  message: z.infer<typeof RegisterStart>,
  address: string,
): Promise<Reply> {
  const { username } = message
  // The server cannot see the password, but it can insist that a stolen verifier is expensive.
  checkPasswordKdf(message.kdf)
  if (ctx.store.hasUser(username) || ctx.pendingNames.has(username)) {
    ctx.logger.log('info', 'register_refused', { user: username, address, reason: 'taken' })
    throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${username} is taken`, {
      hint: 'choose another user name',
    })
  }
  let grant: Grant
  try {
    grant = await grantFor(ctx.store, ctx.registration, username, message.token, ctx.now())
  } catch (error) {
    ctx.logger.log('info', 'register_refused', { user: username, address, reason: 'policy' })
    auditBehind(ctx, {
      actor: null,
      action: 'user.register',
      target: username,
      address,
      outcome: 'refused',
      details: { reason: (error as Error).message },
    })
    throw error
  }
  ctx.pendingNames.add(username)
  const pending = {
    username,
    salt: message.salt,
    verifier: new Secret(message.verifier),
    kdf: message.kdf,
    totpSecret: freshTotpSecret(ctx),
    grant,
  }
  ctx.logger.log('info', 'register_started', { user: username, address })
  return {
    message: { type: 'enrol', otpauthUri: buildOtpauthUri(username, pending.totpSecret.reveal()) },
    next: { name: 'awaiting_enrol_code', pending, attempts: 0 },
  }
}

/** The account becomes active only once the person proves their authenticator holds the secret. */
export async function handleRegisterConfirm(
  ctx: ServerContext,
  message: z.infer<typeof RegisterConfirm>,
  state: Extract<ConversationState, { name: 'awaiting_enrol_code' }>,
  address: string,
): Promise<Reply> {
  const { pending } = state
  const check = await verifyTotp({ secret: pending.totpSecret.reveal(), code: message.code, nowMs: ctx.now() })
  if (!check.valid) {
    const attempts = state.attempts + 1
    const end = attempts >= ctx.limits.enrolAttempts
    ctx.logger.log('info', 'enrol_code_rejected', { user: pending.username, address, attempts })
    if (end) ctx.pendingNames.delete(pending.username)
    return {
      message: {
        type: 'error',
        code: 'ERR_ENROL_CODE',
        message: end ? 'the code did not match, too many attempts' : 'the code did not match',
        hint: 'check the clocks of this machine and the phone; codes change every 30 s',
      },
      next: end ? { name: 'ready' } : { ...state, attempts },
      end,
    }
  }
  const recovery = await makeRecoveryCodes(ctx)
  const { grant } = pending
  const user: UserRecord = {
    username: pending.username,
    salt: pending.salt,
    verifier: pending.verifier.reveal(),
    kdf: pending.kdf,
    totpSecret: pending.totpSecret.reveal(),
    role: grant.role,
    createdAt: new Date(ctx.now()).toISOString(),
    enrolledStep: check.timeStep,
  }
  try {
    // One token, one account: two registrations racing for an invite are taken in turn.
    await ctx.perUser.run(grant.tokenKey ?? `register/${user.username}`, async () => {
      if (!(await stillGranted(ctx.store, grant, ctx.now()))) {
        throw new SecureLoginError('ERR_FORBIDDEN', 'the invite or bootstrap token was used meanwhile', {
          hint: 'ask an administrator for a new invite',
        })
      }
      // The account, its recovery hashes, its role in the index, the spent token and the
      // audit entry: one record, all or nothing.
      await audit(
        ctx,
        {
          actor: null,
          action: 'user.register',
          target: user.username,
          address,
          outcome: 'ok',
          details: { role: grant.role, via: grant.via },
        },
        [
          { key: `recovery/${user.username}`, value: recovery.hashes },
          { key: `user/${user.username}`, value: user },
          ...roleIndexChanges(user.username, undefined, grant.role),
          ...(grant.tokenKey ? [{ key: grant.tokenKey, delete: true as const }] : []),
        ],
      )
    })
  } finally {
    ctx.pendingNames.delete(pending.username)
  }
  ctx.logger.log('info', 'registered', { user: pending.username, address, role: grant.role, via: grant.via })
  return {
    message: { type: 'registered', user: pending.username, recoveryCodes: recovery.codes },
    next: { name: 'ready' },
  }
}
