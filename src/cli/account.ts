import { call, changePassword, confirmTotpReset, startTotpReset } from '../client/calls.js'
import { SavedSessions, withSession } from '../client/session.js'
import type { SessionInfo } from '../protocol/calls.js'
import { SecureLoginError } from '../protocol/errors.js'
import { Secret } from '../auth/secret.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { sessionOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { sessionJson } from './json-events.js'
import { fromNow } from './duration.js'
import { loggedIn, type LoginArgs } from './login.js'
import { printEnrolment } from './enrolment-output.js'
import { useTui, runTui } from './tui-mode.js'

// Commands that act on one's own account and sessions (docs: README, "Accounts and sessions").

export async function runWhoami(args: ClientArgs): Promise<void> {
  const options = sessionOptions(args)
  await withSession(options, async (conn) => {
    const { user, role, session } = await call(conn, 'whoami', {})
    if (args.json)
      return printJson({ event: 'whoami', user, role, server: options.server, session: sessionJson(session) })
    process.stdout.write(`${user} (${role}) on ${options.server}\n`)
    process.stdout.write(
      `session ${session.id.slice(0, 8)}, logged in ${session.createdAt}, ends ${fromNow(session.expiresAt)} ` +
        `(${session.expiresAt})\n`,
    )
  })
}

/** Revokes the saved session on the server, then forgets it here. */
export async function runLogout(args: ClientArgs): Promise<void> {
  const options = sessionOptions(args)
  const { server } = options
  const saved = new SavedSessions(options)
  if (!(await saved.load())) {
    if (args.json) printJson({ event: 'logout', server, revoked: 0 })
    else process.stdout.write(`not logged in to ${server}\n`)
    return
  }
  let revoked = 0
  try {
    revoked = (await withSession(options, (conn) => call(conn, 'logout', {}))).revoked
  } catch (error) {
    // Already ended on the server (withSession deleted the file): logged out all the same.
    if (!(error instanceof SecureLoginError && error.code === 'ERR_FORBIDDEN')) throw error
  }
  await saved.forget()
  if (args.json) printJson({ event: 'logout', server, revoked })
  else
    process.stdout.write(
      revoked
        ? `logged out of ${server}; the session is revoked\n`
        : `logged out of ${server}; the session had already ended\n`,
    )
}

export interface SessionsArgs extends ClientArgs {
  revoke?: string | undefined
  revokeOthers: boolean
}

export async function runSessions(args: SessionsArgs): Promise<void> {
  if (args.revoke !== undefined && args.revokeOthers) throw usageError('give --revoke ID or --revoke-others, not both')
  await withSession(sessionOptions(args), async (conn) => {
    if (args.revoke !== undefined || args.revokeOthers) {
      const id = args.revoke !== undefined ? await resolveSessionId(conn, args.revoke) : undefined
      const { revoked } = await call(conn, 'revoke', id !== undefined ? { id } : { others: true })
      if (args.json) printJson({ event: 'revoked', revoked })
      else process.stdout.write(`revoked ${revoked} session${revoked === 1 ? '' : 's'}\n`)
      return
    }
    const { sessions } = await call(conn, 'sessions', {})
    printSessions(sessions, args.json)
  })
}

/**
 * A session id as a person types it: the whole 32 digits, or a prefix of at least 6 that names
 * one session among the caller's own, or (`everyone`, for admins) all those the caller manages.
 */
export async function resolveSessionId(
  conn: Parameters<typeof call>[0],
  given: string,
  everyone = false,
): Promise<string> {
  const prefix = given.trim().toLowerCase()
  if (!/^[0-9a-f]{6,32}$/.test(prefix))
    throw usageError('a session id is 6 to 32 hex digits (as `securelogin sessions` shows)')
  if (prefix.length === 32) return prefix
  const { sessions } = await call(conn, 'sessions', everyone ? { all: true } : {})
  const matches = sessions.filter((s) => s.id.startsWith(prefix))
  if (matches.length !== 1)
    throw new SecureLoginError(
      matches.length ? 'ERR_USAGE' : 'ERR_NOT_FOUND',
      matches.length ? `${prefix} names ${matches.length} sessions` : `no session ${prefix}`,
      { hint: 'give more digits of the id' },
    )
  return matches[0]!.id
}

export function printSessions(sessions: SessionInfo[], json: boolean): void {
  if (json) return printJson({ event: 'sessions', sessions: sessions.map(sessionJson) })
  if (sessions.length === 0) return void process.stdout.write('no sessions\n')
  process.stdout.write(`${'ID'.padEnd(10)}${'USER'.padEnd(16)}${'FROM'.padEnd(18)}${'LOGGED IN'.padEnd(22)}ENDS\n`)
  for (const s of sessions) {
    process.stdout.write(
      `${(s.id.slice(0, 8) + (s.current ? '*' : '')).padEnd(10)}${s.user.padEnd(16)}${s.address.padEnd(18)}` +
        `${s.createdAt.slice(0, 19).padEnd(22)}${fromNow(s.expiresAt)}\n`,
    )
  }
}

/** Who `passwd` and `reset-2fa` are for: --user, else the saved session's user. */
async function whoFor(args: ClientArgs): Promise<string | undefined> {
  return args.user ?? (await new SavedSessions(sessionOptions(args)).load())?.user
}

/**
 * `securelogin passwd`: a fresh login with the current password and a TOTP code, then the new
 * password's salt and verifier; every other session is revoked. Lines of stdin: current
 * password, new password, then the code if --otp did not give it.
 */
export async function runPasswd(args: LoginArgs): Promise<void> {
  if (args.recoveryCode !== undefined)
    throw usageError('changing the password needs a code from your authenticator, not a recovery code')
  if (useTui(args)) return runTui('passwd', args)
  const user = await whoFor(args)
  const nextPassword: { value?: Secret } = {}
  await loggedIn(
    { ...args, otp: args.otp ?? undefined },
    'passwd',
    async (conn, result) => {
      const { revokedSessions } = await changePassword(conn, result.user, nextPassword.value!)
      nextPassword.value!.wipe()
      if (args.json) printJson({ event: 'password_changed', user: result.user, revokedSessions })
      else
        process.stdout.write(
          `password changed for ${result.user}; ${revokedSessions} other ` +
            `session${revokedSessions === 1 ? '' : 's'} revoked\n`,
        )
    },
    {
      ...(user !== undefined ? { user } : {}),
      afterPassword: async (lines, name) => {
        // Read and checked before the login: a weak new password must not cost a TOTP code.
        nextPassword.value = new Secret(checkNewPassword(await lines.next('new password'), name))
      },
    },
  )
}

/**
 * `securelogin reset-2fa`: a fresh login with the password and a code (TOTP or recovery code),
 * then a new authenticator to enrol; its first code (the next stdin line) finishes it.
 */
export async function runReset2fa(args: LoginArgs): Promise<void> {
  if (useTui(args)) return runTui('reset-2fa', args)
  const user = await whoFor(args)
  await loggedIn(
    args,
    'reset-2fa',
    async (conn, result, lines) => {
      const enrolment = await startTotpReset(conn, result.user)
      printEnrolment(enrolment, { json: args.json })
      await confirmTotpReset(conn, await lines.next('code from the new authenticator'))
      if (args.json) printJson({ event: 'totp_reset', user: result.user })
      else
        process.stdout.write(
          `two-factor authentication re-enrolled for ${result.user}; the old authenticator no longer works\n`,
        )
    },
    user !== undefined ? { user } : {},
  )
}

/** `securelogin home`: the TUI's home screen on the saved session. */
export async function runHome(args: ClientArgs): Promise<void> {
  if (!useTui(args))
    throw usageError(
      'securelogin home is the terminal UI: run it at a terminal',
      'without one, use whoami, sessions, passwd, admin ...',
    )
  return runTui('home', args)
}
