// What the TUI needs from the network side. src/cli adapts src/client to it; tests pass fakes.
export interface LoginResult {
  user: string
  role: string
  expiresAt: string
  /** After a login with a recovery code: how many unused codes remain. */
  recoveryCodesLeft?: number
}

export interface Enrolment {
  /** otpauth://totp/securelogin:NAME?secret=...&issuer=securelogin&algorithm=SHA1&digits=6&period=30 */
  otpauthUri: string
  /** The base32 TOTP secret, as in the URI. */
  secret: string
}

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
  /** SRP: A -> salt, B -> M1 -> M2 (checked). Rejects with ERR_AUTH_FAILED / ERR_SERVER_AUTH_FAILED. */
  startLogin(username: string, password: string): Promise<void>
  /** Sends the TOTP code after startLogin; rejects with ERR_AUTH_FAILED. */
  submitOtp(code: string): Promise<LoginResult>
  /** Sends a recovery code in place of the TOTP code after startLogin; rejects with ERR_AUTH_FAILED. */
  submitRecoveryCode(code: string): Promise<LoginResult>
  /** After a login with a TOTP code: ten new recovery codes replace the old ones. */
  renewRecoveryCodes(): Promise<string[]>
  close(): void
}
