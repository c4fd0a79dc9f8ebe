import { connectOptions, sessionOptions, type ClientArgs } from './client-options.js'
import { createTuiClient } from './tui-client.js'
import { SavedSessions } from '../client/session.js'

/** The TUI draws only for a person at a terminal; any scripting flag picks the plain contract. */
export function useTui(args: ClientArgs): boolean {
  return !args.passwordStdin && !args.json && Boolean(process.stdin.isTTY && process.stdout.isTTY)
}

export type TuiFlow = 'register' | 'login' | 'recovery-codes' | 'home' | 'passwd' | 'reset-2fa'

/** Loads Ink and React only here, so other commands start fast. */
export async function runTui(flow: TuiFlow, args: ClientArgs, registerToken?: string): Promise<void> {
  const { runRegisterTui, runLoginTui, runHomeTui } = await import('../tui/render.js')
  const sessions = sessionOptions(args)
  const client = createTuiClient(args.server, (confirm) => connectOptions(args, confirm), {
    sessions,
    ...(registerToken !== undefined ? { registerToken } : {}),
  })
  let result
  if (flow === 'register') result = await runRegisterTui(client, args.user)
  else if (flow === 'login' || flow === 'recovery-codes')
    result = await runLoginTui(client, { renewRecoveryCodes: flow === 'recovery-codes' })
  else {
    // The home screen on the saved session; without one (or an ended one), a login first.
    const resumed = (await new SavedSessions(sessions).load()) ? await resumeQuietly(client) : undefined
    result = resumed
      ? await runHomeTui(client, resumed, flow === 'passwd' ? 'password' : flow === 'reset-2fa' ? 'totp' : 'menu')
      : await runLoginTui(client, {})
  }
  // The TUI has already shown any error in place; only the exit code is left to set.
  if ('cancelled' in result) process.exitCode = 130
  else if ('error' in result) process.exitCode = result.error.code === 'ERR_USAGE' ? 2 : 1
  // The screen is gone and every connection closed: the shell must get its prompt back now. A
  // timer still running in a connection being opened (a handshake's) must not hold it: an unref'd
  // timer fires only if something else keeps the process alive, and then ends it.
  setTimeout(() => process.exit(), 250).unref()
}

/** The saved session, resumed before the screen draws; undefined when it has ended (log in again). */
async function resumeQuietly(client: ReturnType<typeof createTuiClient>) {
  // A saved session means this server was trusted before: no prompt now.
  await client.connect(async () => false)
  try {
    return await client.resumeSession()
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_FORBIDDEN') return undefined
    throw error
  }
}
