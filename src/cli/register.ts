import { ServerConnection } from '../client/connection.js'
import { confirmEnrolment, startRegistration } from '../client/register.js'
import { normalizeUsername } from '../auth/username.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { Secret } from '../auth/secret.js'
import { connectOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { stdinLines } from './stdin-lines.js'
import { printRecoveryCodes } from './recovery-output.js'
import { useTui, runTui } from './tui-mode.js'

/** `securelogin register`: the Ink TUI at a terminal, else the --password-stdin contract. */
export async function runRegister(args: ClientArgs): Promise<void> {
  if (useTui(args)) return runTui('register', args)
  if (args.user === undefined || !args.passwordStdin) {
    throw usageError('without a terminal, register needs --user NAME and --password-stdin', 'echo "$PASSWORD" | securelogin register --user NAME --password-stdin --json')
  }
  const user = normalizeUsername(args.user)
  const lines = stdinLines()
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    const password = new Secret(checkNewPassword(await lines.next('password'), user))
    const enrolment = await startRegistration(conn, user, password)
    if (args.json) printJson({ event: 'enrol', otpauthUri: enrolment.otpauthUri })
    else {
      process.stdout.write(`add this account to your authenticator app:\n${enrolment.otpauthUri}\n`)
      process.stdout.write(`secret: ${enrolment.secret.replace(/(.{4})(?=.)/g, '$1 ')}\n`)
      process.stdout.write('then write the 6-digit code it shows on the next line of stdin\n')
    }
    const { user: registered, recoveryCodes } = await confirmEnrolment(conn, await lines.next('code'))
    if (args.json) printJson({ event: 'registered', user: registered, recoveryCodes })
    else {
      process.stdout.write(`registered ${registered}: you can now log in with securelogin login\n`)
      printRecoveryCodes(recoveryCodes, { json: false, event: 'registered', user: registered })
    }
  } finally {
    conn.close()
    lines.close()
  }
}
