import { authFailed, SecureLoginError } from '../protocol/errors.js'
import { deriveDecoyCredentials, isUsableA } from '../auth/srp-server.js'
import { buildOtpauthUri, verifyTotp } from '../auth/totp.js'
import { DEFAULT_PASSWORD_KDF } from '../auth/password-stretch.js'
import { StoreConflict, type StoreChange } from '../store/index.js'
import {
  AccountRecord,
  getLoginVersioned,
  getRecoveryVersioned,
  getUser,
  getUserVersioned,
  loginChange,
  recoveryChange,
  userChangeExpecting,
} from './accounts.js'
import { readStored, type Versioned } from './stored.js'
import { retryOnConflict } from './retry.js'
import type { ServerContext } from './context.js'
import type { SessionRecord } from './sessions.js'
import { findRecoveryCode, recoveryCodesLeft } from '../auth/recovery-codes.js'
import { Secret } from '../auth/secret.js'
import { audit, auditBehind } from './audit-events.js'
import { timed } from './stage-times.js'
import { checkEnrolmentCode, startEnrolment } from './enrolment.js'
import { deviceOf, issueDeviceKey } from './devices.js'
import {
  EnrolCodeRejected,
  type Account,
  type Enrolment,
  type LoginProven,
  type LoginStarted,
  type MessageOf,
  type Reply,
  type Request,
  type SecondFactor,
} from './vocabulary.js'

// Login: login_start -> challenge, login_proof -> server_proof, then a TOTP code (login_otp) or a
// recovery code (login_recovery) -> welcome; or session_resume -> welcome for a saved session.

/**
 * A record shaped like an account, made once per store (src/server/server.ts), that login_start
 * reads in place of one for a name with no account.
 */
export const DECOY_ACCOUNT_KEY = 'decoy/account'

export function decoyAccountChange(randomBytes: (size: number) => Buffer, nowMs: number): StoreChange {
  const value: AccountRecord = {
    username: 'decoy',
    salt: randomBytes(32).toString('hex'),
    verifier: randomBytes(256).toString('hex'),
    kdf: DEFAULT_PASSWORD_KDF,
    totpSecret: randomBytes(20).toString('hex').toUpperCase(),
    role: 'regular_user',
    createdAt: new Date(nowMs).toISOString(),
    enrolledStep: Math.floor(nowMs / 30_000),
  }
  return { key: DECOY_ACCOUNT_KEY, value }
}

/** Splits a stored record into what may be kept in plain sight and its secrets. */
export function splitAccount(record: AccountRecord): { user: Account; verifier: Secret; totpSecret: Secret } {
  const { verifier, totpSecret, ...user } = record
  return { user, verifier: new Secret(verifier), totpSecret: new Secret(totpSecret) }
}

/** username, A -> salt, B. An unknown name gets a decoy salt and B that look like a real user's. */
export async function handleLoginStart(
  { ctx, address }: Request<'ready'>,
  message: MessageOf<'login_start'>,
): Promise<Reply> {
  // RFC 5054 2.5.4: the server aborts when A mod N is 0. Before any lookup: the same answer for
  // every name.
  if (!isUsableA(message.A)) throw authFailed()
  try {
    ctx.budgets.takeProbe(address, {
      actor: null,
      action: 'login.start',
      target: null,
      address,
      outcome: 'refused',
      details: { reason: 'rate limited' },
    })
  } catch (error) {
    ctx.metrics?.login('rate_limited')
    throw error
  }
  const record = await getUser(ctx.store, message.username)
  // The same work for a name with no account as for a real one, or the challenge's timing says
  // which is which (0.16 ms at the median, bench/enumeration.mjs): a record of an account's
  // size read, decrypted and parsed, and the decoy credentials derived, for every name.
  if (!record) await readStored(ctx.store, DECOY_ACCOUNT_KEY, AccountRecord, 'decoy account')
  const serverSecret = ctx.store.serverSecret()
  const decoy = deriveDecoyCredentials(serverSecret, message.username)
  serverSecret.fill(0)
  // Checked for every name alike, known or not (the same work).
  const device = deviceOf(ctx, message.username, message.device, ctx.now())
  const srpFrom = ctx.metrics ? performance.now() : 0
  let login: LoginStarted
  if (record) {
    const { user, verifier, totpSecret } = splitAccount(record)
    login = {
      username: message.username,
      user,
      totpSecret,
      verifier,
      salt: user.salt,
      kdf: user.kdf,
      A: message.A,
      ephemeral: timed(ctx.stages, 'srp', () => ctx.srp.start(verifier.reveal())),
      device,
    }
  } else {
    // A name with no account is stretched with today's default, as a new account would be.
    const verifier = new Secret(decoy.verifier)
    login = {
      username: message.username,
      user: undefined,
      totpSecret: undefined,
      verifier,
      salt: decoy.salt,
      kdf: DEFAULT_PASSWORD_KDF,
      A: message.A,
      ephemeral: timed(ctx.stages, 'srp', () => ctx.srp.start(decoy.verifier)),
      device,
    }
  }
  if (ctx.metrics) login.srpMs = performance.now() - srpFrom
  ctx.logger.log('info', 'login_started', { user: message.username, address })
  return {
    message: { type: 'challenge', salt: login.salt, kdf: login.kdf, B: login.ephemeral.B },
    next: { name: 'awaiting_proof', login },
  }
}

/** M1 -> M2: the client proved the password, the server proves it holds the verifier. */
export async function handleLoginProof(
  { ctx, address, state: { login } }: Request<'awaiting_proof'>,
  message: MessageOf<'login_proof'>,
): Promise<Reply> {
  // A proof, right or wrong, gives back the probe its login_start spent: a wrong one is the
  // guard's to count.
  ctx.budgets.proved(address)
  let M2: string | undefined
  const proof = {
    ephemeral: login.ephemeral,
    A: login.A,
    salt: login.salt,
    username: login.username,
    verifier: login.verifier.reveal(),
    M1: message.M1,
  }
  const srpFrom = ctx.metrics ? performance.now() : 0
  try {
    if (login.user) ({ M2 } = timed(ctx.stages, 'srp', () => ctx.srp.finish(proof)))
    // the same work for a name with no account; it always fails
    else timed(ctx.stages, 'srp', () => ctx.srp.finish(proof))
  } catch {
    M2 = undefined
  }
  // One observation a login: login_start's part and this one.
  ctx.metrics?.stageSeconds('srp', ((login.srpMs ?? 0) + performance.now() - srpFrom) / 1000)
  // A locked name fails here whatever the proof, with the same answer, after the same wait, as a
  // wrong password: neither the words nor the timing tell a guesser that the password was right.
  if (M2 !== undefined && (await ctx.guard.isLocked(login.username, true, login.device))) {
    ctx.logger.log('info', 'login_refused', { user: login.username, address, reason: 'locked' })
    return failure(ctx, login, address, 'locked')
  }
  if (M2 === undefined || login.user === undefined) return failure(ctx, login, address, 'proof')
  const proven: LoginProven = { ...login, user: login.user, totpSecret: login.totpSecret }
  if (proven.user.totpReset) {
    // The password is proven and an admin reset the second factor: enrol a new one now.
    const newTotp = startEnrolment(ctx)
    const enrol = buildOtpauthUri(login.username, newTotp.secret.reveal())
    return {
      message: { type: 'server_proof', M2, enrol },
      next: { name: 'awaiting_otp', login: { ...proven, newTotp } },
    }
  }
  return { message: { type: 'server_proof', M2 }, next: { name: 'awaiting_otp', login: proven } }
}

/** The second factor: a TOTP code one 30 s step either side of now. */
export async function handleLoginOtp(
  { ctx, address, state: { login } }: Request<'awaiting_otp'>,
  message: MessageOf<'login_otp'>,
): Promise<Reply> {
  const { user } = login
  const nowMs = ctx.now()
  if (login.newTotp) return enrolAtLogin(ctx, message.code, login, login.newTotp, address, nowMs)
  const checkFrom = ctx.metrics ? performance.now() : 0
  const check = await timed(ctx.stages, 'totp', () =>
    verifyTotp({ secret: login.totpSecret.reveal(), code: message.code, nowMs }),
  )
  ctx.metrics?.stageSince('second_factor', checkFrom)
  if (!check.valid) return failure(ctx, login, address, 'otp')
  // RFC 6238 5.2: a code accepted once is never accepted again, even after a restart, by any
  // process on this store. The last accepted step is in the store (enrolment's in the user
  // record, each login's in its own); the login commits expecting both records as read here, so
  // of two logins with one code (in this process or two) the second finds the step used.
  const outcome = await ctx.perUser
    .run(user.username, () =>
      retryOnConflict(async (): Promise<{ stale: 'account_changed' | 'otp_replayed' } | { done: LoggedIn }> => {
        const current = await currentAccount(ctx, login)
        if (!current) return { stale: 'account_changed' }
        const last = await getLoginVersioned(ctx.store, user.username)
        const floor = Math.max(current.value.enrolledStep ?? -1, last?.value.totpStep ?? -1)
        if (check.timeStep <= floor) return { stale: 'otp_replayed' }
        // Durable before the client hears "welcome": in the same commit as the session and its audit
        // entry (one fsync a login).
        const used = loginChange(
          user.username,
          { at: new Date(nowMs).toISOString(), totpStep: check.timeStep },
          last?.version ?? null,
        )
        return { done: await commitLogin(ctx, login, address, nowMs, 'totp', [used, unchanged(current)]) }
      }),
    )
    .catch(replayedOnConflict)
  if ('stale' in outcome) return failure(ctx, login, address, outcome.stale)
  return welcome(ctx, login, address, outcome.done)
}

/** A recovery code in place of the TOTP code: each works once, and is spent before "welcome". */
export async function handleLoginRecovery(
  { ctx, address, state: { login } }: Request<'awaiting_otp'>,
  message: MessageOf<'login_recovery'>,
): Promise<Reply> {
  const { user } = login
  const nowMs = ctx.now()
  if (login.newTotp)
    throw new SecureLoginError('ERR_PROTOCOL', 'this login must enrol the new authenticator: send a code from it')
  // The spent code, the login and the session are one commit that expects the recovery record as
  // read here: of two logins with one code, in this process or two, the second finds it spent.
  const outcome = await ctx.perUser
    .run(user.username, () =>
      retryOnConflict(async (): Promise<{ done: LoggedIn; left: number } | undefined> => {
        const current = await currentAccount(ctx, login)
        if (!current) return undefined
        const stored = await getRecoveryVersioned(ctx.store, user.username)
        const checkFrom = ctx.metrics ? performance.now() : 0
        const index = stored ? await findRecoveryCode(stored.value, message.code, ctx.kdf) : -1
        ctx.metrics?.stageSince('second_factor', checkFrom)
        if (!stored || index < 0) return undefined
        const spent = { ...stored.value, hashes: stored.value.hashes.map((hash, i) => (i === index ? null : hash)) }
        // The TOTP floor stays where it was: a recovery code accepts no TOTP step.
        const last = await getLoginVersioned(ctx.store, user.username)
        const record = {
          at: new Date(nowMs).toISOString(),
          totpStep: last?.value.totpStep ?? current.value.enrolledStep ?? -1,
        }
        const left = recoveryCodesLeft(spent)
        const changes = [
          recoveryChange(user.username, spent, stored.version),
          loginChange(user.username, record, last?.version ?? null),
          unchanged(current),
        ]
        return { done: await commitLogin(ctx, login, address, nowMs, 'recovery_code', changes), left }
      }),
    )
    .catch(replayedOnConflict)
  if (outcome === undefined || 'stale' in outcome) return failure(ctx, login, address, 'recovery_code')
  ctx.logger.log('info', 'recovery_code_used', { user: user.username, address, left: outcome.left })
  return welcome(ctx, login, address, outcome.done, { recoveryCodesLeft: outcome.left })
}

/**
 * A login whose commit kept meeting others' (CONFLICT_ATTEMPTS times) fails as a used code
 * would: the one generic answer, never a welcome on a code that may have been spent.
 */
function replayedOnConflict(error: unknown): { stale: 'otp_replayed' } {
  if (error instanceof StoreConflict) return { stale: 'otp_replayed' }
  throw error
}

/**
 * The account as it is now, with its version, if this login may still finish: an admin may have
 * removed it or reset its 2FA, or the person may have changed the password or authenticator,
 * since it began.
 */
async function currentAccount(ctx: ServerContext, login: LoginProven): Promise<Versioned<AccountRecord> | undefined> {
  const current = await getUserVersioned(ctx.store, login.username)
  if (
    !current ||
    current.value.totpReset ||
    current.value.verifier !== login.verifier.reveal() ||
    current.value.totpSecret !== login.totpSecret.reveal()
  )
    return undefined
  return current
}

/**
 * The account written back unchanged, expecting the version this login checked: a login and a
 * change of the account made at the same moment on two processes (a password change that revokes
 * the other sessions, an admin's reset-2fa or removal) cannot both commit, so the change either
 * comes first and this login fails, or comes after and revokes the session this login made.
 */
function unchanged(current: Versioned<AccountRecord>): StoreChange {
  return userChangeExpecting(current.value, current.version)
}

/** A code from the authenticator enrolled in place of the one an admin reset: stored, then welcome. */
async function enrolAtLogin(
  ctx: ServerContext,
  code: string,
  login: LoginProven,
  newTotp: Enrolment,
  address: string,
  nowMs: number,
): Promise<Reply> {
  const { user } = login
  let timeStep: number
  try {
    timeStep = await checkEnrolmentCode(ctx, { user: user.username, address }, newTotp, code, nowMs)
  } catch (error) {
    // Here a wrong code is a failed login like any other: counted, and the connection ends.
    if (error instanceof EnrolCodeRejected) return failure(ctx, login, address, 'enrol_code')
    throw error
  }
  const done = await ctx.perUser
    .run(user.username, () =>
      retryOnConflict(async () => {
        const read = await getUserVersioned(ctx.store, user.username)
        if (!read?.value.totpReset) return false // reset again, or removed, or enrolled elsewhere, meanwhile
        const { totpReset: _, ...rest } = read.value
        const last = await getLoginVersioned(ctx.store, user.username)
        await audit(
          ctx,
          {
            actor: user.username,
            action: 'totp.enrol',
            target: user.username,
            address,
            outcome: 'ok',
            details: { after: 'admin_reset' },
          },
          [
            userChangeExpecting({ ...rest, totpSecret: newTotp.secret.reveal(), enrolledStep: timeStep }, read.version),
            loginChange(
              user.username,
              { at: new Date(nowMs).toISOString(), totpStep: timeStep },
              last?.version ?? null,
            ),
          ],
        )
        return true
      }),
    )
    .catch((error: unknown) => {
      if (error instanceof StoreConflict) return false
      throw error
    })
  if (!done) {
    newTotp.secret.wipe()
    return failure(ctx, login, address, 'enrol_stale')
  }
  ctx.logger.log('info', 'totp_enrolled', { user: user.username, address })
  const { totpReset: _, ...enrolled } = user
  const enrolledLogin = { ...login, user: enrolled }
  const loggedIn = await ctx.perUser.run(user.username, () =>
    retryOnConflict(async () => {
      const current = await getUserVersioned(ctx.store, user.username)
      // The account as this enrolment left it: anything else changed it since, and this login ends.
      if (!current || current.value.totpSecret !== newTotp.secret.reveal() || current.value.totpReset) return undefined
      return commitLogin(ctx, enrolledLogin, address, nowMs, 'totp', [unchanged(current)])
    }),
  )
  newTotp.secret.wipe()
  if (!loggedIn) return failure(ctx, login, address, 'enrol_stale')
  return welcome(ctx, enrolledLogin, address, loggedIn)
}

/** `session_resume`: the connection runs as a saved session, without a password. */
export async function handleSessionResume(
  { ctx, address }: Request<'ready'>,
  message: MessageOf<'session_resume'>,
): Promise<Reply> {
  const nowMs = ctx.now()
  const session = await ctx.sessions.resume(message.token, nowMs)
  const record = session && (await getUser(ctx.store, session.user))
  if (!session || !record) {
    ctx.logger.log('info', 'session_refused', { address })
    throw sessionEnded()
  }
  const { user } = splitAccount(record)
  ctx.logger.log('info', 'session_resumed', { user: user.username, address, session: session.id })
  return sessionWelcome(ctx, user, session, 'session')
}

/** The answer when a saved session or this connection's session is no longer live. */
export function sessionEnded(): SecureLoginError {
  return new SecureLoginError('ERR_FORBIDDEN', 'your session has ended (expired, logged out or revoked)', {
    hint: 'log in again: securelogin login',
  })
}

/** A committed login: its session and the token that goes to the client once. */
interface LoggedIn {
  token: string
  record: SessionRecord
}

/**
 * The login's session, its audit entry and `changes` (the used code, the account as checked),
 * in one commit; a StoreConflict means another commit changed what the login was decided on.
 */
async function commitLogin(
  ctx: ServerContext,
  { user }: Pick<LoginProven, 'user'>,
  address: string,
  nowMs: number,
  factor: Exclude<SecondFactor, 'session'>,
  changes: StoreChange[],
): Promise<LoggedIn> {
  const { token, record, change } = ctx.sessions.create(user.username, factor, address, nowMs, ctx.randomBytes)
  const details = { factor, session: record.id }
  const commitFrom = ctx.metrics ? performance.now() : 0
  await timed(ctx.stages, 'store', () =>
    audit(ctx, { actor: user.username, action: 'login.ok', target: user.username, address, outcome: 'ok', details }, [
      change,
      ...changes,
    ]),
  )
  ctx.metrics?.stageSince('commit', commitFrom)
  return { token, record }
}

/** The login is complete: the guard's count cleared, then welcome with a new device key. */
async function welcome(
  ctx: ServerContext,
  { user, device }: Pick<LoginProven, 'user' | 'device'>,
  address: string,
  { token, record }: LoggedIn,
  extra: { recoveryCodesLeft?: number } = {},
): Promise<Reply> {
  await ctx.guard.succeeded(user.username, address, device)
  const factor = record.factor
  ctx.metrics?.login('ok')
  ctx.logger.log('info', 'login_ok', { user: user.username, address, factor, session: record.id })
  // A new device key at every login: a device in use never reaches the key's expiry.
  const deviceKey = issueDeviceKey(ctx, user.username, record.createdAt)
  return sessionWelcome(ctx, user, record, factor, { token, ...extra, device: deviceKey })
}

/**
 * `welcome` for a session (a new one after a login, with its token; a resumed one, without), and
 * the state it opens.
 */
export function sessionWelcome(
  ctx: ServerContext,
  user: Account,
  session: SessionRecord,
  factor: SecondFactor,
  extra: { token?: string; recoveryCodesLeft?: number; device?: string } = {},
): Reply {
  return {
    message: {
      type: 'welcome',
      user: user.username,
      role: user.role,
      expiresAt: new Date(session.absoluteExpiresAt).toISOString(),
      idleExpiresAt: new Date(ctx.sessions.endsAt(session)).toISOString(),
      sessionId: session.id,
      ...extra,
    },
    next: { name: 'authenticated', user, factor, sessionId: session.id },
  }
}

/** Counts the failure, waits as long as the guard says, then fails with the one generic answer. */
async function failure(ctx: ServerContext, login: LoginStarted, address: string, stage: string): Promise<never> {
  const { delayMs, written } = ctx.guard.failed(login.username, address, login.user !== undefined, login.device)
  if (ctx.metrics) {
    ctx.metrics.login(stage === 'locked' ? 'locked' : 'failed')
    ctx.metrics.guardDelay(delayMs)
  }
  ctx.logger.log('info', 'login_failed', { user: login.username, address, stage, delayMs })
  // Written behind the answer, for a known name and an unknown one alike: the store's fsync
  // must not make one name's failure slower than another's.
  auditBehind(ctx, {
    actor: null,
    action: 'login.failed',
    target: login.username,
    address,
    outcome: 'failed',
    details: { stage },
  })
  // An answer that waits anyway also waits for its count to be stored (src/server/guard.ts), so
  // the guesser's next try meets it on every process; one that does not wait does not wait for it.
  await Promise.all([ctx.sleep(delayMs), delayMs > 0 ? written : undefined])
  throw authFailed()
}
