import { generateRecoveryCodes, hashRecoveryCodes, type RecoveryHashes } from '../auth/recovery-codes.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import type { Reply, Request } from './vocabulary.js'
import {
  getRecoveryVersioned,
  getUser,
  getUserVersioned,
  recoveryChange,
  userChangeExpecting,
  type AccountRecord,
} from './accounts.js'
import { retryOnConflict } from './retry.js'
import { audit } from './audit-events.js'
import { sessionEnded } from './login.js'
import { KeepsConnection } from './vocabulary.js'

/**
 * How long after the authenticator is replaced on a login made with a recovery code the codes
 * cannot be renewed. That is the lost-phone path, and also how a stranger holding the password
 * and one code would keep the account: enrol their own authenticator, then renew the ten codes
 * so that the owner's stop working. For this long the owner's remaining codes still work (a login
 * with one, then `reset-2fa`, takes the account back), and the owner's sessions have been told.
 */
export const RECOVERY_RENEWAL_HOLD_MS = 24 * 60 * 60_000

/** Ten fresh codes for the person, and only their hashes for the store. */
export async function makeRecoveryCodes(ctx: ServerContext): Promise<{ codes: string[]; hashes: RecoveryHashes }> {
  const codes = generateRecoveryCodes(ctx.randomBytes)
  return { codes, hashes: await hashRecoveryCodes(codes, ctx.randomBytes(16), ctx.recoveryKdf, ctx.kdf) }
}

/** Until when renewal is held for this account (ms), or undefined when it is not. */
export function renewalHeldUntil(record: Pick<AccountRecord, 'recoveryResetAt'>, nowMs: number): number | undefined {
  if (record.recoveryResetAt === undefined) return undefined
  const until = record.recoveryResetAt + RECOVERY_RENEWAL_HOLD_MS
  return until > nowMs ? until : undefined
}

/**
 * Replaces every recovery code of the logged-in user. Only a login made with a TOTP code may:
 * someone holding a recovery code and the password must not be able to mint ten more. Nor may
 * anyone for a day after the authenticator was replaced on a recovery-code login (see above).
 */
export async function handleRecoveryRenew({ ctx, state, address }: Request<'authenticated'>): Promise<Reply> {
  const { user, factor } = state
  // As every call does: the session may have been revoked, or the account removed, since the
  // login on this connection.
  const live = async () => {
    const session = await ctx.sessions.check(state.sessionId, ctx.now())
    if (!session || !(await getUser(ctx.store, user.username))) throw sessionEnded()
  }
  await live()
  if (factor !== 'totp') {
    ctx.logger.log('info', 'recovery_codes_refused', { user: user.username, address, factor })
    // A refusal leaves the person logged in, as a refused call does; an ended session does not.
    throw refused('ERR_FORBIDDEN', 'renewing recovery codes needs a login with a code from your authenticator', {
      hint: 'log in with your authenticator app, not a recovery code',
    })
  }
  const held = async (record: AccountRecord | undefined) => {
    const until = record && renewalHeldUntil(record, ctx.now())
    if (until === undefined) return
    const at = new Date(until).toISOString()
    ctx.logger.log('info', 'recovery_codes_refused', { user: user.username, address, heldUntil: at })
    await audit(ctx, {
      actor: user.username,
      action: 'recovery.renew',
      target: user.username,
      address,
      outcome: 'refused',
      details: { reason: 'held after a 2fa reset with a recovery code', heldUntil: at },
    })
    throw refused(
      'ERR_FORBIDDEN',
      'renewing recovery codes is held for 24 h after the authenticator was replaced on a login with a recovery code',
      {
        hint: `renewal opens at ${at}; a system_admin can lift the hold: securelogin admin reset-2fa ${user.username}`,
      },
    )
  }
  // Checked before the ten hashes are made, and again in the user's queue before they are stored.
  await held(await getUser(ctx.store, user.username))
  const { codes, hashes } = await makeRecoveryCodes(ctx)
  // The new hashes commit expecting the account as the hold was checked on it (rewritten
  // unchanged), so a 2FA reset with a recovery code made meanwhile on another process, which
  // starts the hold, cannot be passed by.
  await ctx.perUser.run(user.username, () =>
    retryOnConflict(async () => {
      await live()
      const account = await getUserVersioned(ctx.store, user.username)
      if (!account) throw sessionEnded()
      await held(account.value)
      const recovery = await getRecoveryVersioned(ctx.store, user.username)
      await ctx.store.commit([
        recoveryChange(user.username, hashes, recovery?.version ?? null),
        userChangeExpecting(account.value, account.version),
      ])
    }),
  )
  ctx.logger.log('info', 'recovery_codes_renewed', { user: user.username, address })
  return { message: { type: 'recovery_codes', codes }, next: state }
}

const refused = (...args: ConstructorParameters<typeof SecureLoginError>) =>
  new KeepsConnection(new SecureLoginError(...args))
