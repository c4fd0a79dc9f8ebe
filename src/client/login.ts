import { deriveClientSession, derivePrivateKey, startClientLogin, verifyServerProof } from '../auth/srp-client.js'
import { checkPasswordKdf, type PasswordKdf } from '../auth/password-stretch.js'
import { normalizeUsername } from '../auth/username.js'
import type { Role, ServerMessageOf } from '../protocol/messages.js'
import type { ServerConnection } from './connection.js'
import { checkCodeShape, enrolmentOf, type Enrolment } from './register.js'
import { normalizeRecoveryCode } from '../auth/recovery-codes.js'
import { Secret, revealInput, type SecretInput } from '../auth/secret.js'
import { TOTP_PERIOD_SECONDS } from '../auth/totp.js'
import { SecureLoginError, authFailed } from '../protocol/errors.js'

export interface LoginResult {
  user: string
  role: Role
  /** The session's absolute expiry. */
  expiresAt: string
  /** When the session ends unless used before; the earlier of the two is the real end. */
  idleExpiresAt: string
  sessionId: string
  /** The session's bearer token: after a login, not after a resume. Save it (session.ts), never print it. */
  token?: string
  /** After a login with a recovery code: how many unused codes remain. */
  recoveryCodesLeft?: number
  /** After a login: this client's device key for the name (devices.ts keeps it), never printed. */
  device?: string
}

/**
 * SRP-6a: username, A -> salt, B -> M1 -> M2. Resolves only once the server has proved it
 * holds the verifier; the TOTP code is sent after that, never to an unproven server.
 */
export async function authenticate(
  conn: ServerConnection,
  username: string,
  password: SecretInput,
  opts: { device?: string | undefined } = {},
): Promise<{ enrol?: Enrolment }> {
  const user = normalizeUsername(username)
  return authenticateWith(
    conn,
    user,
    ({ salt, kdf }) =>
      derivePrivateKey({ salt, username: user, password: revealInput(password).normalize('NFKC'), kdf }),
    opts,
  )
}

/**
 * The same exchange with the private key x derived by `deriveX` from the challenge's salt and
 * (already checked) stretching parameters. `username` must be normalised. `device`: the key an
 * earlier login of this name here was given (src/client/devices.ts).
 */
export async function authenticateWith(
  conn: ServerConnection,
  username: string,
  deriveX: (challenge: { salt: string; kdf: PasswordKdf }) => Promise<string>,
  opts: { device?: string | undefined } = {},
): Promise<{ enrol?: Enrolment }> {
  const ephemeral = startClientLogin()
  const start = {
    type: 'login_start' as const,
    username,
    A: ephemeral.A,
    ...(opts.device ? { device: opts.device } : {}),
  }
  const { salt, kdf, B } = await conn.request(start, 'challenge')
  // Held between this client's floor and cap before any work: a server cannot make the stretch
  // cheap (its transcript would then be cheap to attack) nor make it cost minutes.
  const x = await deriveX({ salt, kdf: checkPasswordKdf(kdf) })
  const session = deriveClientSession({ ephemeral, salt, B, username, x })
  const { M2, enrol } = await conn.request({ type: 'login_proof', M1: session.M1 }, 'server_proof')
  verifyServerProof({ A: ephemeral.A, session, M2 })
  // After an admin reset the 2FA: the code sent next must come from this new authenticator.
  return enrol !== undefined ? { enrol: enrolmentOf(username, enrol) } : {}
}

/** The stretched password of a login in progress (x), kept wrapped until the flow ends. */
export interface KeptPassword {
  username: string
  salt: string
  kdf: PasswordKdf
  x: Secret<string>
}

/**
 * authenticate(), keeping x. The server ends the connection on any failed login, a wrong code
 * included; with x kept, authenticateAgain() proves the password on a new connection without
 * asking for it and without stretching it again. The caller wipes `kept.x` when the flow ends.
 */
export async function authenticateKeeping(
  conn: ServerConnection,
  username: string,
  password: SecretInput,
  opts: { device?: string | undefined } = {},
): Promise<{ enrol?: Enrolment; kept: KeptPassword }> {
  const user = normalizeUsername(username)
  let kept: KeptPassword | undefined
  try {
    const { enrol } = await authenticateWith(
      conn,
      user,
      async ({ salt, kdf }) => {
        const x = await derivePrivateKey({
          salt,
          username: user,
          password: revealInput(password).normalize('NFKC'),
          kdf,
        })
        kept = { username: user, salt, kdf, x: new Secret(x) }
        return x
      },
      opts,
    )
    return enrol !== undefined ? { enrol, kept: kept! } : { kept: kept! }
  } catch (error) {
    kept?.x.wipe()
    throw error
  }
}

/** The SRP exchange again with a kept x; ERR_AUTH_FAILED when the salt or stretch changed since. */
export async function authenticateAgain(
  conn: ServerConnection,
  kept: KeptPassword,
  opts: { device?: string | undefined } = {},
): Promise<{ enrol?: Enrolment }> {
  return authenticateWith(
    conn,
    kept.username,
    async ({ salt, kdf }) => {
      const same = salt === kept.salt && JSON.stringify(kdf) === JSON.stringify(kept.kdf)
      // The password was changed (or the account made anew) since it was typed: x is stale.
      if (!same) throw new SecureLoginError('ERR_AUTH_FAILED', authFailed().message, { hint: 'log in again' })
      return kept.x.reveal()
    },
    opts,
  )
}

/**
 * A second factor refused after the server proved the password right (M2): the server says only
 * "authentication failed", whose hint must cover a wrong password too; this one is about the
 * code. `reused`: this client had that very code accepted a moment ago (a code works once).
 */
export function codeRefused(kind: 'totp' | 'recovery', opts: { reused: boolean; nowMs: number }): SecureLoginError {
  const period = TOTP_PERIOD_SECONDS * 1000
  const wait = Math.ceil((period - (opts.nowMs % period)) / 1000)
  const hint =
    kind === 'recovery'
      ? 'the password was right; that recovery code is wrong or already used: ' +
        'try another, or a code from your authenticator'
      : opts.reused
        ? `that code was used a moment ago and a code works once: wait for the next one (in ${wait} s)`
        : 'the password was right, the code was not: type the one your authenticator shows now ' +
          "(a code works once, so not one already used); if codes keep failing, check the phone's clock"
  return new SecureLoginError('ERR_AUTH_FAILED', authFailed().message, { hint })
}

export async function submitOtp(conn: ServerConnection, code: string): Promise<LoginResult> {
  return loginResult(await conn.request({ type: 'login_otp', code: checkCodeShape(code) }, 'welcome'))
}

/** Runs the connection as a saved session; ERR_FORBIDDEN when it has ended. */
export async function resumeSession(conn: ServerConnection, token: string): Promise<LoginResult> {
  return loginResult(await conn.request({ type: 'session_resume', token }, 'welcome'))
}

function loginResult(welcome: ServerMessageOf<'welcome'>): LoginResult {
  const { type: _, ...result } = welcome
  return result
}

/** A recovery code in place of the TOTP code; the server spends it whether or not more follow. */
export async function submitRecoveryCode(conn: ServerConnection, code: string): Promise<LoginResult> {
  return loginResult(await conn.request({ type: 'login_recovery', code: normalizeRecoveryCode(code) }, 'welcome'))
}

/** After a login with a TOTP code: ten new recovery codes replace all the old ones. */
export async function renewRecoveryCodes(conn: ServerConnection): Promise<string[]> {
  const { codes } = await conn.request({ type: 'recovery_codes_renew' }, 'recovery_codes')
  return codes
}
