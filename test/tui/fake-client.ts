import { SecureLoginError } from '../../src/protocol/errors.js'
import { canInvite, canManage, whyNotRemove, whyNotSetRole } from '../../src/auth/roles.js'
import { codeRefused } from '../../src/client/login.js'
import type {
  AuditEntry,
  AuditHead,
  Enrolment,
  LoginResult,
  Role,
  SessionInfo,
  TuiClient,
  AccountSummary,
} from '../../src/tui/types.js'
import type { Notice } from '../../src/protocol/calls.js'

export const URI =
  'otpauth://totp/securelogin:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=securelogin&algorithm=SHA1&digits=6&period=30'
export const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'
export const RECOVERY_CODES = Array.from({ length: 10 }, (_, i) => `fake${i}-cafe${i}`)
export const NEW_RECOVERY_CODES = Array.from({ length: 10 }, (_, i) => `new0${i}-cafe${i}`)
export const INVITE_TOKEN = `sli_${'A'.repeat(43)}`

const MINUTE = 60_000
const iso = (ms: number) => new Date(ms).toISOString()
const hex64 = (n: number) => n.toString(16).padStart(64, '0')

/**
 * A TuiClient that records calls and answers as each test sets it up. Once logged in it keeps
 * users, the caller's sessions and an audit log in memory, and applies the real role rules
 * (src/auth/roles.ts), so a refused admin action carries the server's ERR_FORBIDDEN message.
 */
export class FakeClient implements TuiClient {
  readonly server = '127.0.0.1:7443'
  readonly calls: string[] = []
  fingerprint: string | undefined = 'AA:BB:CC'
  trusted: boolean | undefined
  enrolCodes = new Set(['123456'])
  loginPassword = 'right password'
  otp = '654321'
  closed = 0

  user = 'alice'
  role: Role = 'regular_user'
  /** Set when an admin reset this user's 2FA: the login enrols this authenticator, whose code is `newOtp`. */
  resetEnrolment: Enrolment | undefined
  newOtp = '112233'
  /** How the last login proved the second factor. */
  loggedInWith: 'totp' | 'recovery' | undefined
  /** What the last login resolved with. */
  loginResult: LoginResult | undefined

  readonly now = Date.now()
  sessions: SessionInfo[] = [
    this.session('c0ffee01', '127.0.0.1', true),
    this.session('bead0002', '10.0.0.7', false),
    this.session('dad00003', '10.0.0.9', false),
  ]
  users: AccountSummary[] = [
    this.account('alice', 'regular_user'),
    this.account('bob', 'regular_user'),
    this.account('bobby', 'regular_user', { locked: true }),
    this.account('carol', 'admin'),
    this.account('root', 'system_admin'),
  ]
  auditLog: AuditEntry[] = [
    this.entry(1, { actor: null, action: 'login', target: 'bob', outcome: 'failed' }),
    this.entry(2, { actor: 'bob', action: 'login', target: 'bob', outcome: 'ok' }),
    this.entry(3, { actor: 'carol', action: 'admin.unlock', target: 'bobby', outcome: 'ok' }),
  ]
  /** Live audit followers, and how many times a follow was stopped. */
  readonly followers = new Set<(entry: AuditEntry) => void>()
  auditStops = 0
  /** When set, an older page waits for it before answering (so a test can see it loading, or fail it). */
  auditPageWait: (() => Promise<void>) | undefined
  /** Older pages being answered now, and the most ever at once. */
  auditPagesReading = 0
  auditPagesAtOnce = 0

  async connect(confirmNewServer: (fingerprint: string) => Promise<boolean>): Promise<void> {
    this.calls.push('connect')
    if (this.fingerprint === undefined) return
    this.trusted = await confirmNewServer(this.fingerprint)
    if (!this.trusted) throw new SecureLoginError('ERR_TLS_UNTRUSTED', `server ${this.server} was not trusted`)
  }

  /** The name the invite in use was made for, as the server would check it (undefined: any name). */
  invitedFor: string | undefined

  async startRegistration(username: string, password: string): Promise<Enrolment> {
    this.calls.push(`startRegistration ${username} ${password.length}`)
    if (this.invitedFor !== undefined && username !== this.invitedFor)
      throw new SecureLoginError('ERR_FORBIDDEN', `this invite is for the user name ${this.invitedFor}`, {
        hint: `register as ${this.invitedFor}, or ask an administrator for an invite for the name you want`,
      })
    if (username === 'taken')
      throw new SecureLoginError('ERR_USERNAME_TAKEN', 'user name taken is taken', { hint: 'choose another user name' })
    return { user: username, otpauthUri: URI, secret: SECRET }
  }

  async confirmEnrolment(code: string): Promise<{ user: string; recoveryCodes: string[] }> {
    this.calls.push(`confirmEnrolment ${code}`)
    if (!this.enrolCodes.has(code)) throw enrolCode()
    return { user: 'alice', recoveryCodes: RECOVERY_CODES }
  }

  /**
   * Whether a login's SRP part is done on an open connection, ready for a code. The server ends
   * the connection on a refused code, so the next code needs startLoginAgain first.
   */
  proven = false
  /** Set to make startLoginAgain fail (the name got locked meanwhile). */
  lockOnRetry = false
  /** Codes accepted so far, as the server keeps them: each works once. */
  readonly usedCodes = new Set<string>()

  async startLogin(username: string, password: string): Promise<{ enrol?: Enrolment }> {
    this.calls.push(`startLogin ${username}`)
    this.proven = false
    if (password !== this.loginPassword) throw authFailed()
    this.proven = true
    return this.resetEnrolment ? { enrol: this.resetEnrolment } : {}
  }

  async startLoginAgain(): Promise<{ enrol?: Enrolment }> {
    this.calls.push('startLoginAgain')
    if (this.lockOnRetry) throw authFailed()
    this.proven = true
    // The server makes a new secret for every login that enrols: a new QR code each try.
    if (this.resetEnrolment)
      this.resetEnrolment = { ...this.resetEnrolment, secret: `${SECRET.slice(0, -4)}NEW${this.calls.length % 10}` }
    return this.resetEnrolment ? { enrol: this.resetEnrolment } : {}
  }

  async submitOtp(code: string): Promise<LoginResult> {
    this.calls.push(`submitOtp ${code}`)
    if (!this.proven) throw new SecureLoginError('ERR_CONNECT', 'connection to 127.0.0.1:7443 closed')
    if (code !== (this.resetEnrolment ? this.newOtp : this.otp) || this.usedCodes.has(code)) {
      this.proven = false
      throw codeRefused('totp', { reused: this.usedCodes.has(code), nowMs: Date.now() })
    }
    this.usedCodes.add(code)
    this.resetEnrolment = undefined
    this.loggedInWith = 'totp'
    return this.logIn()
  }

  async submitRecoveryCode(code: string): Promise<LoginResult> {
    this.calls.push(`submitRecoveryCode ${code}`)
    if (!this.proven) throw new SecureLoginError('ERR_CONNECT', 'connection to 127.0.0.1:7443 closed')
    if (code !== RECOVERY_CODES[0]) {
      this.proven = false
      throw codeRefused('recovery', { reused: false, nowMs: Date.now() })
    }
    this.loggedInWith = 'recovery'
    return this.logIn({ recoveryCodesLeft: 2 })
  }

  async renewRecoveryCodes(): Promise<string[]> {
    this.calls.push('renewRecoveryCodes')
    if (this.loggedInWith === 'recovery')
      throw forbidden('new recovery codes need a login with a TOTP code, not a recovery code')
    return NEW_RECOVERY_CODES
  }

  async resumeSession(): Promise<LoginResult> {
    this.calls.push('resumeSession')
    return this.logIn()
  }

  async whoami(): Promise<{ user: string; role: Role; session: SessionInfo }> {
    this.calls.push('whoami')
    // As the server does: a notice left for the session rides on its next call's result.
    if (this.pendingNotice) [this.heard, this.pendingNotice] = [this.pendingNotice, undefined]
    return { user: this.user, role: this.role, session: this.currentSession() }
  }

  /** A notice the server has left for this session, delivered with the next call. */
  pendingNotice: Notice | undefined
  heard: Notice | undefined

  notice(): Notice | undefined {
    return this.heard
  }

  async logout(): Promise<void> {
    this.calls.push('logout')
    this.sessions = this.sessions.filter((s) => !s.current)
  }

  async listSessions(): Promise<SessionInfo[]> {
    this.calls.push('listSessions')
    return [...this.sessions]
  }

  async revokeSession(id: string): Promise<number> {
    this.calls.push(`revokeSession ${id}`)
    const before = this.sessions.length
    this.sessions = this.sessions.filter((s) => s.id !== id)
    return before - this.sessions.length
  }

  async revokeOtherSessions(): Promise<number> {
    this.calls.push('revokeOtherSessions')
    const before = this.sessions.length
    this.sessions = this.sessions.filter((s) => s.current)
    return before - this.sessions.length
  }

  async changePassword(current: string, code: string, newPassword: string): Promise<{ revokedSessions: number }> {
    this.calls.push(`changePassword ${code} ${newPassword.length}`)
    if (current !== this.loginPassword || code !== this.otp) throw authFailed()
    this.loginPassword = newPassword
    return { revokedSessions: await this.revokeOtherSessions() }
  }

  async startTotpReset(password: string, code: string): Promise<Enrolment> {
    this.calls.push(`startTotpReset ${code}`)
    if (password !== this.loginPassword || (code !== this.otp && code !== RECOVERY_CODES[0])) throw authFailed()
    // The login before the reset spends a recovery code at once.
    return {
      user: this.user,
      otpauthUri: URI,
      secret: SECRET,
      ...(code === RECOVERY_CODES[0] ? { recoveryCodesLeft: 9 } : {}),
    }
  }

  async confirmTotpReset(code: string): Promise<void> {
    this.calls.push(`confirmTotpReset ${code}`)
    if (!this.enrolCodes.has(code)) throw enrolCode()
  }

  async listUsers(): Promise<AccountSummary[]> {
    this.calls.push('listUsers')
    this.mustBeAdmin()
    return this.users.map((u) => (u.user === this.user ? { ...u, role: this.role } : u))
  }

  async removeUser(user: string): Promise<{ revokedSessions: number }> {
    this.calls.push(`removeUser ${user}`)
    const target = this.target(user)
    const why = whyNotRemove(this.role, target.role, this.systemAdmins())
    if (why) throw forbidden(why)
    this.users = this.users.filter((u) => u.user !== user)
    return { revokedSessions: 2 }
  }

  async setRole(user: string, role: Role): Promise<{ previous: Role }> {
    this.calls.push(`setRole ${user} ${role}`)
    const target = this.target(user)
    const why = whyNotSetRole(this.role, target.role, role, user === this.user, this.systemAdmins())
    if (why) throw forbidden(why)
    const previous = target.role
    target.role = role
    return { previous }
  }

  async resetUser2fa(user: string): Promise<{ revokedSessions: number }> {
    this.calls.push(`resetUser2fa ${user}`)
    const target = this.managed(user)
    target.twoFactor = 'reset'
    return { revokedSessions: 1 }
  }

  async unlockUser(user: string): Promise<{ wasLocked: boolean }> {
    this.calls.push(`unlockUser ${user}`)
    const target = this.managed(user)
    const wasLocked = target.locked
    target.locked = false
    target.lockedUntil = null
    return { wasLocked }
  }

  async revokeUserSessions(user: string): Promise<number> {
    this.calls.push(`revokeUserSessions ${user}`)
    this.managed(user)
    return 3
  }

  async invite(
    role: Role,
    opts: { user?: string; ttlSeconds?: number } = {},
  ): Promise<{ token: string; expiresAt: string }> {
    this.calls.push(`invite ${role}${opts.user ? ` ${opts.user}` : ''}`)
    this.mustBeAdmin()
    if (!canInvite(this.role, role)) throw forbidden(`${this.role} cannot give the role ${role}`)
    return { token: INVITE_TOKEN, expiresAt: iso(this.now + 24 * 60 * MINUTE) }
  }

  async audit(
    query: { user?: string; limit?: number },
    onEntry?: (entry: AuditEntry) => void,
  ): Promise<{ entries: AuditEntry[]; head: AuditHead; stop: () => void }> {
    this.calls.push(`audit ${query.limit ?? ''}${onEntry ? ' follow' : ''}`)
    this.mustBeAdmin()
    if (onEntry) this.followers.add(onEntry)
    const stop = () => {
      if (onEntry) this.followers.delete(onEntry)
      this.auditStops += 1
    }
    const head = { n: this.auditLog.length, hash: hex64(this.auditLog.length) }
    return { entries: this.auditLog.slice(-(query.limit ?? this.auditLog.length)), head, stop }
  }

  /** As the server answers `audit {before, limit}`: entries are numbered from 1, so n is the index + 1. */
  async auditPage(query: { before: number; limit?: number }): Promise<{ entries: AuditEntry[]; next?: number }> {
    this.calls.push(`auditPage ${query.before} ${query.limit ?? ''}`)
    this.mustBeAdmin()
    this.auditPagesReading += 1
    this.auditPagesAtOnce = Math.max(this.auditPagesAtOnce, this.auditPagesReading)
    try {
      await this.auditPageWait?.()
      const end = Math.min(query.before - 1, this.auditLog.length)
      const entries = this.auditLog.slice(Math.max(0, end - (query.limit ?? end)), end)
      return entries[0] !== undefined && entries[0].n > 1 ? { entries, next: entries[0].n } : { entries }
    } finally {
      this.auditPagesReading -= 1
    }
  }

  close(): void {
    this.closed += 1
  }

  /** Writes an audit entry, as the server would, and hands it to every follower. */
  appendAudit(fields: Pick<AuditEntry, 'actor' | 'action' | 'target' | 'outcome'>): AuditEntry {
    const entry = this.entry(this.auditLog.length + 1, fields)
    this.auditLog.push(entry)
    for (const follow of this.followers) follow(entry)
    return entry
  }

  private logIn(extra: Partial<LoginResult> = {}): LoginResult {
    // The idle expiry (30 min) comes before the absolute one (12 h): the TUI shows the earlier.
    const result: LoginResult = {
      user: this.user,
      role: this.role,
      expiresAt: iso(Date.now() + 12 * 60 * MINUTE),
      idleExpiresAt: iso(Date.now() + 30 * MINUTE),
      sessionId: 'c0ffee01'.padEnd(32, '0'),
      ...extra,
    }
    this.loginResult = result
    return result
  }

  private currentSession(): SessionInfo {
    const current = this.sessions.find((s) => s.current)
    if (!current) throw forbidden('the session has expired or was revoked')
    return { ...current, expiresAt: this.loginResult?.idleExpiresAt ?? current.expiresAt }
  }

  private session(prefix: string, address: string, current: boolean): SessionInfo {
    return {
      id: prefix.padEnd(32, '0'),
      user: this.user,
      createdAt: iso(this.now - 60 * MINUTE),
      lastSeenAt: iso(this.now - 5 * MINUTE),
      expiresAt: iso(this.now + 30 * MINUTE),
      absoluteExpiresAt: iso(this.now + 11 * 60 * MINUTE),
      address,
      current,
    }
  }

  private account(user: string, role: Role, opts: { locked?: boolean } = {}): AccountSummary {
    return {
      user,
      role,
      createdAt: iso(this.now - 7 * 24 * 60 * MINUTE),
      lastLoginAt: user === 'bob' ? null : iso(this.now - 60 * MINUTE),
      locked: opts.locked ?? false,
      lockedUntil: opts.locked ? iso(this.now + 15 * MINUTE) : null,
      twoFactor: 'enrolled',
      recoveryCodesLeft: 10,
    }
  }

  private entry(n: number, fields: Pick<AuditEntry, 'actor' | 'action' | 'target' | 'outcome'>): AuditEntry {
    return { n, at: iso(this.now + n * 1000), address: '127.0.0.1', ...fields, prev: hex64(n - 1), hash: hex64(n) }
  }

  private mustBeAdmin(): void {
    if (this.role === 'regular_user') throw forbidden('regular_user may not do that')
  }

  private target(user: string): AccountSummary {
    this.mustBeAdmin()
    const target = this.users.find((u) => u.user === user)
    if (!target) throw new SecureLoginError('ERR_NOT_FOUND', `no user ${user}`)
    return target
  }

  private managed(user: string): AccountSummary {
    const target = this.target(user)
    if (!canManage(this.role, target.role)) throw forbidden(`${this.role} cannot manage ${target.role} accounts`)
    return target
  }

  private systemAdmins(): number {
    return this.users.filter((u) => u.role === 'system_admin').length
  }
}

function authFailed() {
  return new SecureLoginError('ERR_AUTH_FAILED', 'authentication failed', {
    hint: "check the user name, the password, and this machine's clock; codes change every 30 s",
  })
}

function enrolCode() {
  return new SecureLoginError('ERR_ENROL_CODE', 'the code did not match', {
    hint: 'check the clocks of this machine and the phone; codes change every 30 s',
  })
}

function forbidden(message: string) {
  return new SecureLoginError('ERR_FORBIDDEN', message)
}
