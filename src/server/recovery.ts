import { generateRecoveryCodes, hashRecoveryCodes, type RecoveryHashes } from '../auth/recovery-codes.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import type { Reply, Request } from './vocabulary.js'
import { recoveryChange } from './accounts.js'

/** Ten fresh codes for the person, and only their hashes for the store. */
export async function makeRecoveryCodes(ctx: ServerContext): Promise<{ codes: string[]; hashes: RecoveryHashes }> {
  const codes = generateRecoveryCodes(ctx.randomBytes)
  return { codes, hashes: await hashRecoveryCodes(codes, ctx.randomBytes(16), ctx.recoveryKdf, ctx.kdf) }
}

/**
 * Replaces every recovery code of the logged-in user. Only a login made with a TOTP code may:
 * someone holding a recovery code and the password must not be able to mint ten more.
 */
export async function handleRecoveryRenew({ ctx, state, address }: Request<'authenticated'>): Promise<Reply> {
  const { user, factor } = state
  if (factor !== 'totp') {
    ctx.logger.log('info', 'recovery_codes_refused', { user: user.username, address, factor })
    throw new SecureLoginError(
      'ERR_FORBIDDEN',
      'renewing recovery codes needs a login with a code from your authenticator',
      {
        hint: 'log in with your authenticator app, not a recovery code',
      },
    )
  }
  const { codes, hashes } = await makeRecoveryCodes(ctx)
  await ctx.perUser.run(user.username, () => ctx.store.commit([recoveryChange(user.username, hashes)]))
  ctx.logger.log('info', 'recovery_codes_renewed', { user: user.username, address })
  return { message: { type: 'recovery_codes', codes }, next: state }
}
