import { ServerConnection } from '../client/connection.js'
import { authenticate, submitOtp } from '../client/login.js'
import { normalizeUsername } from '../auth/username.js'
import { connectOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { stdinLines } from './stdin-lines.js'
import { useTui, runTui } from './tui-mode.js'

export interface LoginArgs extends ClientArgs {
  otp?: string | undefined
}

/** `securelogin login`: the Ink TUI at a terminal, else the --password-stdin contract. */
export async function runLogin(args: LoginArgs): Promise<void> {
  if (useTui(args) && args.otp === undefined) return runTui('login', args)
  if (args.user === undefined || !args.passwordStdin) {
    throw usageError('without a terminal, login needs --user NAME and --password-stdin', 'echo "$PASSWORD" | securelogin login --user NAME --password-stdin --otp CODE --json')
  }
  const user = normalizeUsername(args.user)
  const lines = stdinLines()
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    await authenticate(conn, user, await lines.next('password'))
    const result = await submitOtp(conn, args.otp ?? (await lines.next('code')))
    if (args.json) printJson({ event: 'login', user: result.user, role: result.role, expiresAt: result.expiresAt })
    else process.stdout.write(`welcome ${result.user} (${result.role}); session expires at ${result.expiresAt}\n`)
  } finally {
    conn.close()
    lines.close()
  }
}
