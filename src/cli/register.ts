import { ServerConnection } from '../client/connection.js'
import { invokedAs } from '../base/invoked.js'
import { checkToken, confirmEnrolment, describeNextCode, nextCodeAt, startRegistration } from '../client/register.js'
import { printEnrolment } from './enrolment-output.js'
import { foldedName, normalizeUsername } from '../auth/username.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { Secret } from '../auth/secret.js'
import { connectOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { stdinLines } from './stdin-lines.js'
import { printRecoveryCodes } from './recovery-output.js'
import { useTui, runTui } from './tui-mode.js'

/** `securelogin register`: the Ink TUI at a terminal, else the --password-stdin contract. */
export interface RegisterArgs extends ClientArgs {
  invite?: string | undefined
  bootstrapToken?: string | undefined
}

export async function runRegister(args: RegisterArgs): Promise<void> {
  if (args.invite !== undefined && args.bootstrapToken !== undefined)
    throw usageError('give --invite or --bootstrap-token, not both')
  const given = args.invite ?? args.bootstrapToken
  // Checked before anything else: a mistyped token should not cost a password prompt.
  const token = given !== undefined ? checkToken(given) : undefined
  if (useTui(args)) return runTui('register', args, token)
  if (args.user === undefined || !args.passwordStdin) {
    throw usageError(
      'without a terminal, register needs --user NAME and --password-stdin',
      'echo "$PASSWORD" | securelogin register --user NAME --password-stdin --json',
    )
  }
  const user = normalizeUsername(args.user)
  const folded = foldedName(args.user, user, 'registering as')
  if (folded !== undefined && !args.json) process.stderr.write(`securelogin: note: ${folded}\n`)
  const lines = stdinLines()
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    const password = new Secret(checkNewPassword(await lines.next('password'), user))
    const enrolment = await startRegistration(conn, user, password, token)
    printEnrolment(enrolment, { json: args.json })
    const code = await lines.next('code')
    const { user: registered, recoveryCodes } = await confirmEnrolment(conn, code)
    if (args.json) printJson({ event: 'registered', user: registered, recoveryCodes })
    else {
      const next = await nextCodeAt(enrolment.secret, code.replace(/\s+/g, ''), Date.now())
      process.stdout.write(`registered ${registered}: you can now log in with ${invokedAs()} login\n`)
      printRecoveryCodes(recoveryCodes, { json: false, event: 'registered', user: registered })
      process.stdout.write(`${describeNextCode(next, Date.now())}\n`)
    }
  } finally {
    conn.close()
    lines.close()
  }
}
