import { ServerConnection } from '../client/connection.js'
import { authenticate, renewRecoveryCodes, submitOtp, submitRecoveryCode, type LoginResult } from '../client/login.js'
import { SavedSessions } from '../client/session.js'
import { normalizeUsername } from '../auth/username.js'
import { normalizeRecoveryCode } from '../auth/recovery-codes.js'
import { Secret } from '../auth/secret.js'
import { connectOptions, sessionOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { stdinLines } from './stdin-lines.js'
import { useTui, runTui } from './tui-mode.js'
import { printRecoveryCodes, warnRecoveryCodesLeft } from './recovery-output.js'
import { printEnrolment } from './enrolment-output.js'

export interface LoginArgs extends ClientArgs {
  otp?: string | undefined
  /** A recovery code in place of --otp; "" (the flag alone) or "-" reads it from the next stdin line. */
  recoveryCode?: string | undefined
}

/** `securelogin login`: the Ink TUI at a terminal, else the --password-stdin contract. */
export async function runLogin(args: LoginArgs): Promise<void> {
  if (useTui(args) && args.otp === undefined && args.recoveryCode === undefined) return runTui('login', args)
  await loggedIn(args, 'login', async (_conn, result) => {
    if (args.json)
      printJson({
        event: 'login',
        user: result.user,
        role: result.role,
        sessionId: result.sessionId,
        expiresAt: result.expiresAt,
        idleExpiresAt: result.idleExpiresAt,
        ...(result.recoveryCodesLeft !== undefined ? { recoveryCodesLeft: result.recoveryCodesLeft } : {}),
      })
    else
      process.stdout.write(
        `welcome ${result.user} (${result.role}); session expires at ${result.expiresAt}, or after 30 min unused\n`,
      )
    warnRecoveryCodesLeft(result.recoveryCodesLeft)
  })
}

/** `securelogin recovery-codes`: log in with a TOTP code, then replace every recovery code. */
export async function runRecoveryCodes(args: LoginArgs): Promise<void> {
  if (args.recoveryCode !== undefined)
    throw usageError(
      'renewing recovery codes needs a code from your authenticator, not a recovery code',
      'use --otp CODE, or the next stdin line',
    )
  if (useTui(args) && args.otp === undefined) return runTui('recovery-codes', args)
  await loggedIn(args, 'recovery codes', async (conn, result) => {
    printRecoveryCodes(await renewRecoveryCodes(conn), { json: args.json, event: 'recovery_codes', user: result.user })
  })
}

export type StdinLines = ReturnType<typeof stdinLines>

/**
 * The --password-stdin contract: password on the first line, then the code (or a recovery
 * code) if no flag gave it. After an admin reset the 2FA, the new authenticator's enrolment is
 * printed and its first code read from the next line. The session is saved before `then`.
 */
export async function loggedIn(
  args: LoginArgs,
  what: string,
  then: (conn: ServerConnection, result: LoginResult, lines: StdinLines) => Promise<void>,
  opts: { user?: string; afterPassword?: (lines: StdinLines, user: string) => Promise<void> } = {},
): Promise<void> {
  const name = args.user ?? opts.user
  if (name === undefined || !args.passwordStdin) {
    throw usageError(
      `without a terminal, ${what} needs --user NAME and --password-stdin`,
      'echo "$PASSWORD" | securelogin login --user NAME --password-stdin --otp CODE --json',
    )
  }
  if (args.otp !== undefined && args.recoveryCode !== undefined)
    throw usageError('give --otp or --recovery-code, not both')
  const user = normalizeUsername(name)
  // Checked before connecting: a mistyped code must not cost a login attempt.
  const fromFlag =
    args.recoveryCode !== undefined && args.recoveryCode !== '' && args.recoveryCode !== '-'
      ? normalizeRecoveryCode(args.recoveryCode)
      : undefined
  const lines = stdinLines()
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    const password = new Secret(await lines.next('password'))
    await opts.afterPassword?.(lines, user)
    const sessions = new SavedSessions(sessionOptions(args))
    const { enrol } = await authenticate(conn, user, password, { device: await sessions.deviceKey(user) })
    let result: LoginResult
    if (enrol) {
      printEnrolment(enrol, {
        json: args.json,
        why: 'an administrator reset your two-factor authentication: enrol a new authenticator',
      })
      result = await submitOtp(conn, await lines.next('code from the new authenticator'))
    } else {
      result =
        args.recoveryCode !== undefined
          ? await submitRecoveryCode(conn, fromFlag ?? (await lines.next('recovery code')))
          : await submitOtp(conn, args.otp ?? (await lines.next('code')))
    }
    await sessions.save(result)
    await then(conn, result, lines)
  } finally {
    conn.close()
    lines.close()
  }
}
