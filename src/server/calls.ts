import {
  CALLS,
  type CallArgs,
  type CallOp,
  type CallResult,
  type AccountSummary,
  type Notice,
} from '../protocol/calls.js'
import { SecureLoginError } from '../protocol/errors.js'
import { MAX_FRAME_BYTES } from '../protocol/frame.js'
import { canInvite, canManage, isAdmin, whyNotRemove, whyNotSetRole, type Role } from '../auth/roles.js'
import { checkPasswordKdf } from '../auth/password-stretch.js'
import { isUsableVerifier } from '../auth/srp-server.js'
import { buildOtpauthUri } from '../auth/totp.js'
import { recoveryCodesLeft } from '../auth/recovery-codes.js'
import type { StoreChange } from '../store/index.js'
import {
  getLogin,
  getRecovery,
  getUser,
  getUserVersioned,
  hasUser,
  isUserChange,
  removeAccountChanges,
  userChange,
  userChangeExpecting,
  userNames,
  type AccountRecord,
} from './accounts.js'
import { KeepsConnection, type MessageOf, type Reply, type Request } from './vocabulary.js'
import type { SessionRecord } from './sessions.js'
import type { AuditEvent } from './audit-log.js'
import { createInvite, roleIndexChangesChecked, systemAdminCount } from './invites.js'
import { audit } from './audit-events.js'
import { sessionEnded } from './login.js'
import { checkEnrolmentCode, startEnrolment } from './enrolment.js'
import { issueSignedToken } from './signed-tokens.js'
import { RECOVERY_RENEWAL_HOLD_MS } from './recovery.js'
import { retryOnConflict } from './retry.js'
import type { Versioned } from './stored.js'

// Everything a logged-in connection may ask (docs/protocol.md, "Calls"). Each call re-reads the
// caller's session and account first, so a revoke, an expiry, a removal or a new role takes
// effect at the next call, not the next login. The role rules are src/auth/roles.ts; they run
// here, on the server, whatever the client is.

interface Caller extends Request<'authenticated'> {
  record: AccountRecord
  session: SessionRecord
  nowMs: number
}

interface Handler<Op extends CallOp> {
  /** Refused to regular users before anything runs. */
  admin: boolean
  /** The audit action recorded when the call is refused (and, by the handler, when it succeeds). */
  action?: string
  run(caller: Caller, args: CallArgs<Op>): Promise<Reply>
}

const forbidden = (message: string, hint?: string) =>
  new SecureLoginError('ERR_FORBIDDEN', message, hint ? { hint } : {})

/** `call {op, args}`: checks the session, the account and the role, then runs the handler. */
export async function handleCall(req: Request<'ready' | 'authenticated'>, message: MessageOf<'call'>): Promise<Reply> {
  const { ctx, state, address } = req
  if (state.name !== 'authenticated') throw forbidden('not logged in', 'log in first: securelogin login')
  const nowMs = ctx.now()
  // Read from the store at every call: a revoke, an expiry, a removal or a new role made by any
  // server process sharing it is seen here.
  const session = await ctx.sessions.check(state.sessionId, nowMs, { touch: true })
  const record = session && (await getUser(ctx.store, state.user.username))
  if (!session || !record) throw sessionEnded()
  const op = message.op
  const parsed = CALLS[op].args.safeParse(message.args)
  if (!parsed.success) throw new SecureLoginError('ERR_PROTOCOL', `${op}: arguments do not match their schema`)
  const handler = HANDLERS[op] as unknown as Handler<CallOp>
  const caller: Caller = { ...req, state, record, session, nowMs }
  try {
    if (handler.admin && !isAdmin(record.role)) throw forbidden(`${op} needs the admin or system_admin role`)
    const reply = await handler.run(caller, parsed.data as CallArgs<CallOp>)
    return await withNotice(caller, reply)
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    if (error.code === 'ERR_FORBIDDEN') {
      const event: AuditEvent = {
        actor: record.username,
        action: handler.action ?? `call.${op}`,
        target: (parsed.data as { user?: string }).user ?? null,
        address,
        outcome: 'refused',
        details: { reason: error.message },
      }
      const keys = [`address:${address}`, `account:${record.username}`]
      try {
        ctx.budgets.checkRefusals(keys, event)
      } catch (limited) {
        throw new KeepsConnection(limited as SecureLoginError)
      }
      ctx.logger.log('info', 'call_refused', { user: record.username, address, op })
      ctx.budgets.refused(keys, event)
    }
    throw new KeepsConnection(error)
  }
}

/**
 * A notice left on this session (the account's authenticator replaced on a recovery-code login)
 * rides on the first result it gets, whatever the call, and is then deleted: the owner hears of
 * it at their next request, from any client, without asking.
 */
async function withNotice(caller: Caller, reply: Reply): Promise<Reply> {
  const notice = caller.session.notice
  if (!notice || reply.message.type !== 'result') return reply
  await caller.ctx.sessions.noticeGiven(caller.session.id)
  return { ...reply, message: { ...reply.message, data: { ...reply.message.data, notice } } }
}

function result<Op extends CallOp>(caller: Caller, op: Op, data: CallResult<Op>, more: Partial<Reply> = {}): Reply {
  return { message: { type: 'result', op, data: data as Record<string, unknown> }, next: caller.state, ...more }
}

const noUser = (user: string) =>
  new SecureLoginError('ERR_NOT_FOUND', `no user ${user}`, { hint: 'securelogin admin users lists them' })

/** The caller's own account (or one it already knows exists), or ERR_NOT_FOUND; with its version. */
async function target(caller: Caller, user: string): Promise<Versioned<AccountRecord>> {
  const read = await getUserVersioned(caller.ctx.store, user)
  if (!read) throw noUser(user)
  return read
}

/**
 * The account named `user`, when it is the caller's own or one the caller's role manages. Any
 * other name gets one answer, the same frame whether or not the account exists, naming neither
 * its role nor its existence: a person who may not manage a name learns nothing about it. Only
 * a system_admin, who manages every account and may list them all, hears that a name is unknown.
 */
async function managedTarget(caller: Caller, user: string): Promise<AccountRecord> {
  return (await managedTargetVersioned(caller, user)).value
}

/** managedTarget, with the version the account was read at. */
async function managedTargetVersioned(caller: Caller, user: string): Promise<Versioned<AccountRecord>> {
  const { role, username } = caller.record
  const read = await getUserVersioned(caller.ctx.store, user)
  const record = read?.value
  if (read && record && (user === username || canManage(role, record.role))) return read
  if (!record && role === 'system_admin') throw noUser(user)
  // Not even the name: the frame is the same for every name the caller may not manage.
  throw role === 'admin'
    ? forbidden('an admin may act on regular users only', 'securelogin admin users lists the accounts')
    : forbidden('a regular_user may act on their own account only', 'securelogin sessions lists your own sessions')
}

/** For the caller's own account, whose role the caller knows: the rule says it in full. */
function mustManage(caller: Caller, targetRole: Role): void {
  if (!canManage(caller.record.role, targetRole))
    throw forbidden(`${caller.record.role} cannot manage ${targetRole} accounts`)
}

/** The queue of every change that can take a role away; `/` is not allowed in a user name. */
const ROLE_INDEX_QUEUE = 'role/'

/**
 * Runs a change that may take the role system_admin from someone: in this process one at a
 * time, so the rule "never the last system_admin" is checked on what the previous change left;
 * across processes by the compare-and-set of roleIndexChangesChecked, which changeAccount
 * retries on a conflict, reading the index again.
 */
async function changeRoles<T>(caller: Caller, work: () => Promise<T>): Promise<T> {
  return caller.ctx.perUser.run(ROLE_INDEX_QUEUE, work)
}

/** Deletes sessions and records why, in one write; ends this connection if its own session went. */
async function revokeSessions(
  caller: Caller,
  ids: string[],
  action: string,
  target: string,
  reason: string,
): Promise<Reply['end']> {
  const { ctx } = caller
  await audit(
    ctx,
    {
      actor: caller.record.username,
      action,
      target,
      address: caller.address,
      outcome: 'ok',
      details: { count: ids.length, reason },
    },
    ctx.sessions.revokeChanges(ids),
  )
  ctx.sessions.removed(ids)
  return ids.includes(caller.session.id)
}

interface AccountChange {
  changes: StoreChange[]
  revoke: string[]
  action: string
  details?: Record<string, string | number | boolean | null>
}

/**
 * A change to an account and its sessions in one write with its audit entry: serialised per user
 * in this process, and across processes a compare-and-set on the account as `read` returned it
 * (another user's: managedTargetVersioned). When another process changed the account, or a
 * login rewrote it, meanwhile, `change` runs again on what is there now (so the sessions to
 * revoke include one that login just made).
 */
async function changeAccount(
  caller: Caller,
  user: string,
  change: (record: AccountRecord) => AccountChange | Promise<AccountChange>,
  read: (caller: Caller, user: string) => Promise<Versioned<AccountRecord>> = target,
): Promise<{ record: AccountRecord; revoked: number }> {
  const { ctx } = caller
  return ctx.perUser.run(user, () =>
    retryOnConflict(async () => {
      const { value: record, version } = await read(caller, user)
      const { changes, revoke, action, details } = await change(record)
      const checked = changes.some((c) => isUserChange(c, user))
        ? changes.map((c) => (isUserChange(c, user) ? { ...c, expect: version } : c))
        : [...changes, userChangeExpecting(record, version)]
      await audit(
        ctx,
        {
          actor: caller.record.username,
          action,
          target: user,
          address: caller.address,
          outcome: 'ok',
          ...(details ? { details } : {}),
        },
        [...checked, ...ctx.sessions.revokeChanges(revoke)],
      )
      ctx.sessions.removed(revoke)
      return { record, revoked: revoke.length }
    }),
  )
}

const HANDLERS: { [Op in CallOp]: Handler<Op> } = {
  whoami: {
    admin: false,
    async run(caller) {
      const { record, session, ctx } = caller
      return result(caller, 'whoami', {
        user: record.username,
        role: record.role,
        session: ctx.sessions.info(session, session.id),
      })
    },
  },

  token: {
    admin: false,
    action: 'token.issued',
    async run(caller, args) {
      return result(caller, 'token', await issueSignedToken(caller.ctx, caller, args))
    },
  },

  logout: {
    admin: false,
    action: 'session.logout',
    async run(caller) {
      await revokeSessions(caller, [caller.session.id], 'session.logout', caller.session.id, 'logout')
      return result(caller, 'logout', { revoked: 1 }, { next: { name: 'ready' }, end: true })
    },
  },

  sessions: {
    admin: false,
    action: 'session.list',
    async run(caller, args) {
      const { ctx, record, nowMs, session } = caller
      let sessions: SessionRecord[]
      if (args.all) {
        if (!isAdmin(record.role)) throw forbidden("listing everyone's sessions needs the admin or system_admin role")
        const roles = new Map<string, Role | undefined>()
        sessions = []
        for (const s of await ctx.sessions.list(nowMs)) {
          if (!roles.has(s.user)) roles.set(s.user, (await getUser(ctx.store, s.user))?.role)
          const role = roles.get(s.user)
          if (s.user === record.username || (role && canManage(record.role, role))) sessions.push(s)
        }
      } else if (args.user !== undefined && args.user !== record.username) {
        await managedTarget(caller, args.user)
        sessions = await ctx.sessions.list(nowMs, args.user)
      } else sessions = await ctx.sessions.list(nowMs, record.username)
      sessions.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
      return result(caller, 'sessions', { sessions: sessions.map((s) => ctx.sessions.info(s, session.id)) })
    },
  },

  revoke: {
    admin: false,
    action: 'session.revoke',
    async run(caller, args) {
      const { ctx, record, session } = caller
      const given = [args.id, args.others, args.user].filter((value) => value !== undefined).length
      if (given !== 1) throw new SecureLoginError('ERR_PROTOCOL', 'revoke: give exactly one of id, others, user')
      let ids: string[]
      let what: string
      if (args.id !== undefined) {
        const found = await ctx.sessions.get(args.id)
        const owner = found && found.user !== record.username ? await getUser(ctx.store, found.user) : undefined
        const mine =
          found !== undefined && (found.user === record.username || (owner && canManage(record.role, owner.role)))
        // As for names: one answer for an id that names no session and for one the caller may not
        // revoke, so a refusal says neither whose session it is nor that owner's role.
        if (!mine && record.role !== 'system_admin')
          throw forbidden(`no session ${args.id} that you may revoke`, 'securelogin sessions lists yours')
        if (!mine || !found)
          throw new SecureLoginError('ERR_NOT_FOUND', `no session ${args.id}`, {
            hint: 'securelogin sessions lists yours',
          })
        ids = [found.id]
        what = found.id
      } else if (args.others) {
        ids = await ctx.sessions.idsOf(record.username, caller.nowMs, session.id)
        what = record.username
      } else {
        const user = args.user!
        if (user !== record.username) await managedTarget(caller, user)
        ids = await ctx.sessions.idsOf(user, caller.nowMs)
        what = user
      }
      const end = await revokeSessions(caller, ids, 'session.revoke', what, args.others ? 'others' : 'revoke')
      return result(caller, 'revoke', { revoked: ids.length }, end ? { next: { name: 'ready' }, end } : {})
    },
  },

  passwd: {
    admin: false,
    action: 'password.change',
    async run(caller, args) {
      const { ctx, state, session } = caller
      if (state.factor !== 'totp') {
        throw forbidden(
          'changing the password needs a login on this connection with the current password and a code from your ' +
            'authenticator',
          'securelogin passwd does that login for you',
        )
      }
      checkPasswordKdf(args.kdf)
      // As at registration: a verifier outside 1 < v < N would let any password in.
      if (!isUsableVerifier(args.verifier))
        throw new SecureLoginError('ERR_PROTOCOL', 'the verifier is not an element of the group (1 < v < N)')
      const { revoked } = await changeAccount(caller, caller.record.username, async (record) => ({
        changes: [userChange({ ...record, salt: args.salt, verifier: args.verifier, kdf: args.kdf })],
        revoke: await ctx.sessions.idsOf(record.username, caller.nowMs, session.id),
        action: 'password.change',
      }))
      ctx.logger.log('info', 'password_changed', {
        user: caller.record.username,
        address: caller.address,
        revokedSessions: revoked,
      })
      return result(caller, 'passwd', { revokedSessions: revoked })
    },
  },

  totp_reset: {
    admin: false,
    action: 'totp.reset',
    async run(caller) {
      if (caller.state.factor === 'session') {
        throw forbidden(
          're-enrolling your authenticator needs a login on this connection with your password and a code',
          'securelogin reset-2fa does that login for you',
        )
      }
      const enrolment = startEnrolment(caller.ctx)
      const otpauthUri = buildOtpauthUri(caller.record.username, enrolment.secret.reveal())
      return result(caller, 'totp_reset', { otpauthUri }, { next: { ...caller.state, totpReset: enrolment } })
    },
  },

  totp_confirm: {
    admin: false,
    action: 'totp.reset',
    async run(caller, args) {
      const { ctx, state, address } = caller
      const pending = state.totpReset
      if (!pending)
        throw new SecureLoginError('ERR_PROTOCOL', 'totp_confirm: no re-enrolment in progress (send totp_reset first)')
      const user = caller.record.username
      const { nowMs } = caller
      const timeStep = await checkEnrolmentCode(ctx, { user, address }, pending, args.code, nowMs)
      // On a login made with a recovery code, this is the lost-phone path, and also how a stranger
      // holding the password and one code would keep the account. So it is loud and slow: the
      // owner's other sessions are told at their next call, the audit entry says how it was done,
      // and the recovery codes cannot be renewed for a day (src/server/recovery.ts).
      const withCode = state.factor === 'recovery_code'
      const heldUntil = new Date(nowMs + RECOVERY_RENEWAL_HOLD_MS).toISOString()
      const notice: Notice = {
        event: 'totp_reset_with_recovery_code',
        at: new Date(nowMs).toISOString(),
        address: address.slice(0, 64),
        renewalHeldUntil: heldUntil,
        message:
          `the authenticator of ${user} was replaced on a login with a recovery code from ${address.slice(0, 64)}; ` +
          'if that was not you, log in with one of your recovery codes, run securelogin reset-2fa, revoke the ' +
          'other sessions and tell an administrator',
      }
      await changeAccount(caller, user, async (record) => {
        const { totpReset: _, ...rest } = record
        const told = withCode ? await ctx.sessions.idsOf(user, nowMs, caller.session.id) : []
        return {
          changes: [
            userChange({
              ...rest,
              totpSecret: pending.secret.reveal(),
              enrolledStep: timeStep,
              ...(withCode ? { recoveryResetAt: nowMs } : {}),
            }),
            ...(await ctx.sessions.noticeChanges(told, notice)),
          ],
          revoke: [],
          action: 'totp.reset',
          ...(withCode
            ? { details: { factor: 'recovery_code', renewalHeldUntil: heldUntil, sessionsTold: told.length } }
            : {}),
        }
      })
      pending.secret.wipe()
      const { totpReset: _, ...next } = state
      ctx.logger.log(withCode ? 'warn' : 'info', 'totp_reset', { user, address, factor: state.factor })
      return result(caller, 'totp_confirm', { user: caller.record.username }, { next })
    },
  },

  users: {
    admin: true,
    action: 'user.list',
    async run(caller) {
      const { ctx, nowMs } = caller
      const users: AccountSummary[] = []
      for (const name of await userNames(ctx.store)) {
        const record = await getUser(ctx.store, name)
        if (!record) continue
        const login = await getLogin(ctx.store, record.username)
        const recovery = await getRecovery(ctx.store, record.username)
        const lockedUntil = await ctx.guard.lockedUntil(record.username)
        users.push({
          user: record.username,
          role: record.role,
          createdAt: record.createdAt,
          lastLoginAt: login?.at ?? null,
          locked: lockedUntil !== null && lockedUntil > nowMs,
          lockedUntil: lockedUntil !== null ? new Date(lockedUntil).toISOString() : null,
          twoFactor: record.totpReset ? 'reset' : 'enrolled',
          recoveryCodesLeft: recovery ? recoveryCodesLeft(recovery) : 0,
        })
      }
      users.sort((a, b) => a.user.localeCompare(b.user))
      return result(caller, 'users', { users })
    },
  },

  invite: {
    admin: true,
    action: 'invite.create',
    async run(caller, args) {
      const { ctx, record, nowMs } = caller
      if (!canInvite(record.role, args.role)) throw forbidden(`${record.role} cannot invite a new ${args.role}`)
      if (args.user !== undefined && (await hasUser(ctx.store, args.user))) {
        throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${args.user} is taken`, {
          hint: 'choose another user name',
        })
      }
      const invite = createInvite({
        role: args.role,
        user: args.user ?? null,
        createdBy: record.username,
        nowMs,
        ttlMs: args.ttlSeconds * 1000,
        randomBytes: ctx.randomBytes,
      })
      const expiresAt = new Date(invite.record.expiresAt).toISOString()
      await audit(
        ctx,
        {
          actor: record.username,
          action: 'invite.create',
          target: args.user ?? null,
          address: caller.address,
          outcome: 'ok',
          details: { role: args.role, expiresAt },
        },
        [invite.change],
      )
      return result(caller, 'invite', { token: invite.token, role: args.role, user: args.user ?? null, expiresAt })
    },
  },

  remove: {
    admin: true,
    action: 'user.remove',
    async run(caller, args) {
      const { ctx } = caller
      const { revoked } = await changeRoles(caller, () =>
        changeAccount(
          caller,
          args.user,
          async (record) => {
            const why = whyNotRemove(caller.record.role, record.role, await systemAdminCount(ctx.store))
            if (why) throw forbidden(why)
            const name = record.username
            return {
              changes: [
                ...(await removeAccountChanges(ctx.store, name)),
                ...(await ctx.guard.forgetChanges(name)),
                ...(await roleIndexChangesChecked(ctx.store, name, record.role, undefined)),
              ],
              revoke: await ctx.sessions.idsOf(name, caller.nowMs),
              action: 'user.remove',
              details: { role: record.role },
            }
          },
          managedTargetVersioned,
        ),
      )
      ctx.guard.forget(args.user)
      ctx.logger.log('info', 'user_removed', { user: args.user, by: caller.record.username, address: caller.address })
      const self = args.user === caller.record.username
      return result(
        caller,
        'remove',
        { user: args.user, revokedSessions: revoked },
        self ? { next: { name: 'ready' }, end: true } : {},
      )
    },
  },

  set_role: {
    admin: true,
    action: 'user.role',
    async run(caller, args) {
      const { ctx } = caller
      const { record } = await changeRoles(caller, () =>
        changeAccount(
          caller,
          args.user,
          async (record) => {
            const why = whyNotSetRole(
              caller.record.role,
              record.role,
              args.role,
              record.username === caller.record.username,
              await systemAdminCount(ctx.store),
            )
            if (why) throw forbidden(why)
            return {
              changes: [
                userChange({ ...record, role: args.role }),
                ...(await roleIndexChangesChecked(ctx.store, record.username, record.role, args.role)),
              ],
              revoke: [],
              action: 'user.role',
              details: { from: record.role, to: args.role },
            }
          },
          managedTargetVersioned,
        ),
      )
      return result(caller, 'set_role', { user: args.user, role: args.role, previous: record.role })
    },
  },

  reset_2fa: {
    admin: true,
    action: 'user.reset_2fa',
    async run(caller, args) {
      const { ctx } = caller
      const { revoked } = await changeAccount(
        caller,
        args.user,
        async (record) => {
          mustManage(caller, record.role)
          // A system_admin's reset is the vetted way back: it lifts the hold on renewing recovery codes.
          const { recoveryResetAt, ...rest } = record
          const kept =
            caller.record.role === 'system_admin' || recoveryResetAt === undefined ? rest : { ...rest, recoveryResetAt }
          return {
            changes: [userChange({ ...kept, totpReset: true })],
            revoke: await ctx.sessions.idsOf(record.username, caller.nowMs),
            action: 'user.reset_2fa',
          }
        },
        managedTargetVersioned,
      )
      const self = args.user === caller.record.username
      return result(
        caller,
        'reset_2fa',
        { user: args.user, revokedSessions: revoked },
        self ? { next: { name: 'ready' }, end: true } : {},
      )
    },
  },

  unlock: {
    admin: true,
    action: 'user.unlock',
    async run(caller, args) {
      const { ctx } = caller
      mustManage(caller, (await managedTarget(caller, args.user)).role)
      const wasLocked = (await ctx.guard.lockedUntil(args.user)) !== null
      await ctx.guard.unlock(args.user)
      await audit(ctx, {
        actor: caller.record.username,
        action: 'user.unlock',
        target: args.user,
        address: caller.address,
        outcome: 'ok',
        details: { wasLocked },
      })
      return result(caller, 'unlock', { user: args.user, wasLocked })
    },
  },

  audit: {
    admin: true,
    action: 'audit.read',
    async run(caller, args) {
      const { ctx } = caller
      const query = {
        ...(args.user !== undefined ? { user: args.user } : {}),
        ...(args.since !== undefined ? { since: args.since } : {}),
        ...(args.limit !== undefined ? { limit: args.limit } : {}),
        ...(args.before !== undefined ? { before: args.before } : {}),
        ...(args.after !== undefined ? { after: args.after } : {}),
      }
      // A page fits one frame, with room for the head and the envelope.
      // The head first, and no entry above it: the page and its head agree, whatever other
      // processes append meanwhile.
      const head = await ctx.audit.storedHead()
      const { entries, next } = await ctx.audit.query({
        ...query,
        before: Math.min(query.before ?? Infinity, head.n + 1),
        maxBytes: MAX_FRAME_BYTES - 4096,
      })
      const page = { entries, head, ...(next !== undefined ? { next } : {}) }
      if (!args.follow) return result(caller, 'audit', page)
      // Follow: each new entry is pushed while the session lives and the caller is still an admin.
      let queue = Promise.resolve()
      const stop = ctx.audit.subscribe((entry) => {
        queue = queue.then(async () => {
          const alive = await ctx.sessions.check(caller.session.id, ctx.now())
          const role = alive && (await getUser(ctx.store, caller.record.username))?.role
          if (!alive || !role || !isAdmin(role))
            return caller.push({
              end: alive ? forbidden('following the audit log needs the admin or system_admin role') : sessionEnded(),
            })
          if (args.user !== undefined && entry.actor !== args.user && entry.target !== args.user) return
          caller.push({ type: 'audit_entry', entry })
        })
      }, head.n)
      caller.onClose(stop)
      return result(caller, 'audit', page, { follow: true })
    },
  },

  audit_verify: {
    admin: true,
    action: 'audit.verify',
    async run(caller, args) {
      const { ctx } = caller
      const report = await ctx.audit.verify(args.anchor)
      await audit(ctx, {
        actor: caller.record.username,
        action: 'audit.verify',
        target: null,
        address: caller.address,
        outcome: report.ok ? 'ok' : 'failed',
        details: { entries: report.entries, problems: report.problems.length },
      })
      return result(caller, 'audit_verify', report)
    },
  },
}
