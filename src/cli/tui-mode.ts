import { connectOptions, type ClientArgs } from './client-options.js'
import { createTuiClient } from './tui-client.js'

/** The TUI draws only for a person at a terminal; any scripting flag picks the plain contract. */
export function useTui(args: ClientArgs): boolean {
  return !args.passwordStdin && !args.json && Boolean(process.stdin.isTTY && process.stdout.isTTY)
}

/** Loads Ink and React only here, so other commands start fast. */
export async function runTui(flow: 'register' | 'login' | 'recovery-codes', args: ClientArgs): Promise<void> {
  const { runRegisterTui, runLoginTui } = await import('../tui/render.js')
  const client = createTuiClient(args.server, (confirm) => connectOptions(args, confirm))
  const result = flow === 'register' ? await runRegisterTui(client) : await runLoginTui(client, { renewRecoveryCodes: flow === 'recovery-codes' })
  // The TUI has already shown any error in place; only the exit code is left to set.
  if ('cancelled' in result) process.exitCode = 130
  else if ('error' in result) process.exitCode = result.error.code === 'ERR_USAGE' ? 2 : 1
}
