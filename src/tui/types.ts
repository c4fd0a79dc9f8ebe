// What the TUI needs from the network side. src/cli adapts src/client to it; tests pass fakes.
import type { AuditEntry, AuditHead, SessionInfo, AccountSummary, Notice } from '../protocol/calls.js'
import type { Role } from '../protocol/fields.js'
import type { LoginResult } from '../client/login.js'
import type { Enrolment } from '../client/register.js'

export type { AuditEntry, AuditHead, SessionInfo, AccountSummary, Role, LoginResult, Enrolment }

export interface TuiClient {
  /** "HOST:PORT", for display. */
  readonly server: string
  /**
   * Opens TLS and checks the server's certificate. When the server is not yet known, calls
   * confirmNewServer with its SHA-256 fingerprint and goes on only if it resolves true.
   * Rejects with a SecureLoginError (ERR_CONNECT, ERR_TLS_UNTRUSTED, ERR_TLS_CHANGED, ...).
   */
  connect(confirmNewServer: (fingerprint: string) => Promise<boolean>): Promise<void>
  /** Sends salt + verifier (never the password); resolves with the enrolment to show. */
  startRegistration(username: string, password: string): Promise<Enrolment>
  /** Sends one TOTP code; rejects with ERR_ENROL_CODE when it does not match (the person may retry). */
  confirmEnrolment(code: string): Promise<{ user: string; recoveryCodes: string[] }>
  /**
   * SRP: A -> salt, B -> M1 -> M2 (checked). Rejects with ERR_AUTH_FAILED / ERR_SERVER_AUTH_FAILED.
   * Resolves with `enrol` when an admin reset this user's 2FA: the code sent next (submitOtp)
   * must come from the new authenticator, which the TUI shows as a QR code first.
   */
  startLogin(username: string, password: string): Promise<{ enrol?: Enrolment }>
  /**
   * After submitOtp or submitRecoveryCode was refused: the server has ended that connection, so
   * a new one proves the password again from what startLogin kept (its stretched form, wrapped,
   * until the login ends), without asking for it. Resolves as startLogin does (after an admin
   * reset, with a new enrolment: the server makes a new secret for every try); rejects with
   * ERR_AUTH_FAILED when the proof fails now (the name got locked, the password changed).
   */
  startLoginAgain(): Promise<{ enrol?: Enrolment }>
  /**
   * Sends the TOTP code after startLogin; rejects with ERR_AUTH_FAILED, whose hint is about the
   * code (the password was proven): "a code works once" when this client had it accepted a
   * moment ago.
   */
  submitOtp(code: string): Promise<LoginResult>
  /** Sends a recovery code in place of the TOTP code after startLogin; rejects with ERR_AUTH_FAILED. */
  submitRecoveryCode(code: string): Promise<LoginResult>
  /** After a login with a TOTP code: ten new recovery codes replace the old ones. */
  renewRecoveryCodes(): Promise<string[]>
  /**
   * Runs as the session saved by an earlier login (no password); rejects with ERR_FORBIDDEN when
   * it expired or was revoked.
   */
  resumeSession(): Promise<LoginResult>

  // Logged in (after submitOtp, submitRecoveryCode or resumeSession):
  whoami(): Promise<{ user: string; role: Role; session: SessionInfo }>
  /**
   * The last notice the server left for this session (docs/protocol.md, "Notices"), heard on any
   * call so far: shown on the home screen until the app ends.
   */
  notice?(): Notice | undefined
  /** Revokes this session on the server and forgets the saved token. */
  logout(): Promise<void>
  /** Own sessions; with `user` that user's, with `all` everyone's the caller manages (admins). */
  listSessions(opts?: { user?: string; all?: boolean }): Promise<SessionInfo[]>
  /** Revokes one session by id; resolves with how many were revoked (0 or 1). */
  revokeSession(id: string): Promise<number>
  /** Revokes every session of the caller but this one. */
  revokeOtherSessions(): Promise<number>
  /**
   * Proves the current password and a TOTP code afresh, then sets the new password (new salt
   * and verifier) and revokes every other session. Rejects with ERR_AUTH_FAILED or ERR_WEAK_PASSWORD.
   */
  changePassword(current: string, code: string, newPassword: string): Promise<{ revokedSessions: number }>
  /**
   * Proves the password and a code (TOTP or recovery code) afresh, then starts enrolling a new
   * authenticator: resolves with the enrolment to show; confirmTotpReset finishes it. A recovery
   * code is spent by that login (`recoveryCodesLeft`: how many remain), confirmed or not.
   */
  startTotpReset(password: string, code: string): Promise<Enrolment & { recoveryCodesLeft?: number }>
  /** One code from the new authenticator; rejects with ERR_ENROL_CODE when it does not match (retry). */
  confirmTotpReset(code: string): Promise<void>

  // Admins (the server refuses the rest with ERR_FORBIDDEN):
  listUsers(): Promise<AccountSummary[]>
  removeUser(user: string): Promise<{ revokedSessions: number }>
  setRole(user: string, role: Role): Promise<{ previous: Role }>
  /** Forces re-enrolment of the user's authenticator at their next login; revokes their sessions. */
  resetUser2fa(user: string): Promise<{ revokedSessions: number }>
  unlockUser(user: string): Promise<{ wasLocked: boolean }>
  revokeUserSessions(user: string): Promise<number>
  /** A single-use registration token for `role` (bound to `user` when given). */
  invite(role: Role, opts?: { user?: string; ttlSeconds?: number }): Promise<{ token: string; expiresAt: string }>
  /**
   * The audit log, oldest first (the last `limit` entries), and the head it was read under (its
   * `n` is the number of the newest entry: the log's length). With `onEntry`, new entries arrive
   * there as they are written until `stop()` (which closes that follow connection).
   */
  audit(
    query: { user?: string; limit?: number },
    onEntry?: (entry: AuditEntry) => void,
  ): Promise<{ entries: AuditEntry[]; head: AuditHead; stop: () => void }>
  /**
   * One older page of the audit log, oldest first: the newest entries numbered below `before`,
   * at most `limit` and as many as fit one frame. `next` is the `before` of the page older than
   * this one; absent, the page reaches the start of the log.
   */
  auditPage(query: { before: number; limit?: number }): Promise<{ entries: AuditEntry[]; next?: number }>
  close(): void
}
