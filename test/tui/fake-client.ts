import { SecureLoginError } from '../../src/protocol/errors.js'
import type { Enrolment, LoginResult, TuiClient } from '../../src/tui/types.js'

export const URI = 'otpauth://totp/securelogin:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=securelogin&algorithm=SHA1&digits=6&period=30'
export const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'
export const RECOVERY_CODES = Array.from({ length: 10 }, (_, i) => `fake${i}-cafe${i}`)
export const NEW_RECOVERY_CODES = Array.from({ length: 10 }, (_, i) => `new0${i}-cafe${i}`)

/** A TuiClient that records calls and answers as each test sets it up. */
export class FakeClient implements TuiClient {
  readonly server = '127.0.0.1:7443'
  readonly calls: string[] = []
  fingerprint: string | undefined = 'AA:BB:CC'
  trusted: boolean | undefined
  enrolCodes = new Set(['123456'])
  loginPassword = 'right password'
  otp = '654321'
  closed = 0

  async connect(confirmNewServer: (fingerprint: string) => Promise<boolean>): Promise<void> {
    this.calls.push('connect')
    if (this.fingerprint === undefined) return
    this.trusted = await confirmNewServer(this.fingerprint)
    if (!this.trusted) throw new SecureLoginError('ERR_TLS_UNTRUSTED', `server ${this.server} was not trusted`)
  }

  async startRegistration(username: string, password: string): Promise<Enrolment> {
    this.calls.push(`startRegistration ${username} ${password.length}`)
    if (username === 'taken') throw new SecureLoginError('ERR_USERNAME_TAKEN', 'user name taken is taken', { hint: 'choose another user name' })
    return { otpauthUri: URI, secret: SECRET }
  }

  async confirmEnrolment(code: string): Promise<{ user: string; recoveryCodes: string[] }> {
    this.calls.push(`confirmEnrolment ${code}`)
    if (!this.enrolCodes.has(code)) throw new SecureLoginError('ERR_ENROL_CODE', 'the code did not match', { hint: "check the clocks of this machine and the phone; codes change every 30 s" })
    return { user: 'alice', recoveryCodes: RECOVERY_CODES }
  }

  async startLogin(username: string, password: string): Promise<void> {
    this.calls.push(`startLogin ${username}`)
    if (password !== this.loginPassword) throw authFailed()
  }

  async submitOtp(code: string): Promise<LoginResult> {
    this.calls.push(`submitOtp ${code}`)
    if (code !== this.otp) throw authFailed()
    return { user: 'alice', role: 'regular_user', expiresAt: '2026-11-25T00:00:00.000Z' }
  }

  async submitRecoveryCode(code: string): Promise<LoginResult> {
    this.calls.push(`submitRecoveryCode ${code}`)
    if (code !== RECOVERY_CODES[0]) throw authFailed()
    return { user: 'alice', role: 'regular_user', expiresAt: '2026-11-25T00:00:00.000Z', recoveryCodesLeft: 2 }
  }

  async renewRecoveryCodes(): Promise<string[]> {
    this.calls.push('renewRecoveryCodes')
    return NEW_RECOVERY_CODES
  }

  close(): void {
    this.closed += 1
  }
}

function authFailed() {
  return new SecureLoginError('ERR_AUTH_FAILED', 'authentication failed', { hint: "check the user name, the password, and this machine's clock; codes change every 30 s" })
}
