import { SecureLoginError } from '../protocol/errors.js'
import { buildOtpauthUri } from '../auth/totp.js'
import { checkPasswordKdf } from '../auth/password-stretch.js'
import { isUsableVerifier } from '../auth/srp-server.js'
import { makeRecoveryCodes } from './recovery.js'
import { Secret } from '../auth/secret.js'
import {
  EnrolCodeRejected,
  KeepsConnection,
  type MessageOf,
  type PendingRegistration,
  type Reply,
  type Request,
} from './vocabulary.js'
import type { ServerContext } from './context.js'
import type { AuditEvent } from './audit-log.js'
import { hasUser, isUserChange, newAccountChanges, type AccountRecord } from './accounts.js'
import { grantFor, roleIndexChanges, spendGrant, type Grant } from './invites.js'
import type { NameHold } from './pending-names.js'
import { retryOnConflict } from './retry.js'
import { audit } from './audit-events.js'
import { checkEnrolmentCode, startEnrolment } from './enrolment.js'

/** Salt and verifier arrive (never the password); the answer is a fresh TOTP secret to enrol. */
export async function handleRegisterStart(
  { ctx, address }: Request<'ready'>,
  message: MessageOf<'register_start'>,
): Promise<Reply> {
  const { username } = message
  const keys = [`address:${address}`]
  const refusal = (reason: string): AuditEvent => ({
    actor: null,
    action: 'user.register',
    target: username,
    address,
    outcome: 'refused',
    details: { reason },
  })
  let grant: Grant
  let hold: NameHold
  try {
    // An address that has used its refusals is answered before any lookup or store write.
    ctx.budgets.checkRefusals(keys, refusal('rate limited'))
    // The server cannot see the password, but it can insist that a stolen verifier is expensive.
    checkPasswordKdf(message.kdf)
    if (!isUsableVerifier(message.verifier)) {
      throw new SecureLoginError('ERR_PROTOCOL', 'the verifier is not an element of the group (1 < v < N)')
    }
    // The policy and the token first: under invite or closed, a request without a valid token
    // gets the same answer whatever the name, so the answer cannot say which names are taken.
    try {
      grant = await grantFor(ctx.store, ctx.registration, username, message.token, ctx.now())
    } catch (error) {
      ctx.logger.log('info', 'register_refused', { user: username, address, reason: 'policy' })
      ctx.budgets.refused(keys, refusal((error as Error).message))
      throw error
    }
    // Held in the store (src/server/pending-names.ts), so two registrations of one name on any
    // processes sharing it cannot both pass register_start.
    const held = (await hasUser(ctx.store, username)) ? undefined : await ctx.pendingNames.hold(username)
    if (!held) {
      ctx.logger.log('info', 'register_refused', { user: username, address, reason: 'taken' })
      ctx.budgets.refused(keys)
      throw taken(username)
    }
    hold = held
    try {
      ctx.budgets.takeRegistration(address, refusal('rate limited'))
    } catch (error) {
      await ctx.pendingNames.release(held)
      throw error
    }
  } catch (error) {
    ctx.metrics?.registration(registrationRefusal(error))
    // A refusal leaves the connection ready for another name or token.
    if (error instanceof SecureLoginError && error.code !== 'ERR_PROTOCOL') throw new KeepsConnection(error)
    throw error
  }
  const pending: PendingRegistration = {
    username,
    salt: message.salt,
    verifier: new Secret(message.verifier),
    kdf: message.kdf,
    enrolment: startEnrolment(ctx),
    grant,
    hold,
  }
  ctx.logger.log('info', 'register_started', { user: username, address })
  return {
    message: { type: 'enrol', otpauthUri: buildOtpauthUri(username, pending.enrolment.secret.reveal()) },
    next: { name: 'awaiting_enrol_code', pending },
  }
}

/** The account becomes active only once the person proves their authenticator holds the secret. */
export async function handleRegisterConfirm(
  { ctx, address, state: { pending } }: Request<'awaiting_enrol_code'>,
  message: MessageOf<'register_confirm'>,
): Promise<Reply> {
  try {
    return await confirmRegistration(ctx, address, pending, message.code)
  } catch (error) {
    // A wrong code before the last allowed one leaves the registration waiting for the next.
    if (!(error instanceof EnrolCodeRejected) || error.last) ctx.metrics?.registration('failed')
    throw error
  }
}

async function confirmRegistration(
  ctx: ServerContext,
  address: string,
  pending: PendingRegistration,
  code: string,
): Promise<Reply> {
  const who = { user: pending.username, address }
  const timeStep = await checkEnrolmentCode(ctx, who, pending.enrolment, code, ctx.now())
  const recovery = await makeRecoveryCodes(ctx)
  const { grant } = pending
  const user: AccountRecord = {
    username: pending.username,
    salt: pending.salt,
    verifier: pending.verifier.reveal(),
    kdf: pending.kdf,
    totpSecret: pending.enrolment.secret.reveal(),
    role: grant.role,
    createdAt: new Date(ctx.now()).toISOString(),
    enrolledStep: timeStep,
  }
  // One token, one account; one name, one account: serialised per token in this process, and a
  // compare-and-set on the token and on `user/NAME` (absent) in the commit, for every process
  // sharing the store. A conflict runs the checks again on what the other commit left.
  await ctx.perUser.run(grant.tokenKey ?? `register/${user.username}`, () =>
    retryOnConflict(async () => {
      if (await hasUser(ctx.store, user.username)) throw taken(user.username)
      const spend = await spendGrant(ctx.store, grant, ctx.now())
      if (!spend) {
        throw new SecureLoginError('ERR_FORBIDDEN', 'the invite or bootstrap token was used meanwhile', {
          hint: 'ask an administrator for a new invite',
        })
      }
      // The account, its recovery hashes, its role in the index, the spent token, the end of the
      // name's hold and the audit entry: one record, all or nothing.
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
          ...newAccountChanges(user, recovery.hashes).map((c) =>
            isUserChange(c, user.username) ? { ...c, expect: null } : c,
          ),
          ...roleIndexChanges(user.username, undefined, grant.role),
          ...spend,
          ...(await ctx.pendingNames.releaseChanges(pending.hold)),
        ],
      )
    }),
  )
  ctx.metrics?.registration('ok')
  ctx.logger.log('info', 'registered', { user: pending.username, address, role: grant.role, via: grant.via })
  return {
    message: { type: 'registered', user: pending.username, recoveryCodes: recovery.codes },
    next: { name: 'ready' },
  }
}

/** How a refused register_start is counted: a budget spent, or any other refusal (a rule, a malformed request). */
function registrationRefusal(error: unknown): 'rate_limited' | 'refused' | 'failed' {
  if (!(error instanceof SecureLoginError)) return 'failed'
  return error.code === 'ERR_RATE_LIMITED' ? 'rate_limited' : 'refused'
}

const taken = (username: string) =>
  new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${username} is taken`, { hint: 'choose another user name' })
