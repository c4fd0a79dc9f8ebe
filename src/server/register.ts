import type { z } from 'zod'
import type { RegisterConfirm, RegisterStart } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import { buildOtpauthUri, encodeTotpSecret, verifyTotp, TOTP_SECRET_BYTES } from '../auth/totp.js'
import { checkPasswordKdf, type PasswordKdf } from '../auth/password-stretch.js'
import type { ServerContext } from './context.js'
import { makeRecoveryCodes } from './recovery.js'
import { Secret } from '../auth/secret.js'
import type { ConversationState, Reply } from './conversation.js'

export interface PendingRegistration {
  username: string
  salt: string
  verifier: Secret
  kdf: PasswordKdf
  totpSecret: Secret
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
    throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${username} is taken`, { hint: 'choose another user name' })
  }
  ctx.pendingNames.add(username)
  const seed = ctx.randomBytes(TOTP_SECRET_BYTES)
  const totpSecret = new Secret(encodeTotpSecret(seed))
  seed.fill(0)
  const pending = { username, salt: message.salt, verifier: new Secret(message.verifier), kdf: message.kdf, totpSecret }
  ctx.logger.log('info', 'register_started', { user: username, address })
  return {
    message: { type: 'enrol', otpauthUri: buildOtpauthUri(username, totpSecret.reveal()) },
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
        hint: "check the clocks of this machine and the phone; codes change every 30 s",
      },
      next: end ? { name: 'ready' } : { ...state, attempts },
      end,
    }
  }
  const recovery = await makeRecoveryCodes(ctx)
  try {
    await ctx.store.addUser({
      username: pending.username,
      salt: pending.salt,
      verifier: pending.verifier.reveal(),
      kdf: pending.kdf,
      totpSecret: pending.totpSecret.reveal(),
      role: 'regular_user',
      createdAt: new Date(ctx.now()).toISOString(),
      enrolledStep: check.timeStep,
    }, recovery.hashes)
  } finally {
    ctx.pendingNames.delete(pending.username)
  }
  ctx.logger.log('info', 'registered', { user: pending.username, address })
  return { message: { type: 'registered', user: pending.username, recoveryCodes: recovery.codes }, next: { name: 'ready' } }
}
