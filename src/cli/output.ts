import { asInvoked } from '../base/invoked.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ErrorEvent, StdoutEvent } from './json-events.js'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** Prints an error as the contract says and returns the exit code it calls for. */
export function reportError(error: unknown, opts: { json: boolean; write?: (line: string) => void }): number {
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`))
  const known = error instanceof SecureLoginError
  const code = known ? error.code : 'ERR_INTERNAL'
  const message = known ? error.message : `internal error: ${error instanceof Error ? error.message : String(error)}`
  // A hint's command must work when pasted (src/cli/invoked.ts); the server's hints say "securelogin".
  const hint = known && error.hint !== undefined ? asInvoked(error.hint) : undefined
  if (opts.json) {
    const line: ErrorEvent = { event: 'error', code, message, ...(hint ? { hint } : {}) }
    write(JSON.stringify(line))
  } else {
    write(`securelogin: error: ${message} (${code})`)
    if (hint) write(`securelogin: hint: ${hint}`)
  }
  return code === 'ERR_USAGE' ? EXIT_USAGE : EXIT_FAILURE
}

export function usageError(message: string, hint?: string): SecureLoginError {
  return new SecureLoginError('ERR_USAGE', message, hint === undefined ? {} : { hint })
}

/** One event on stdout with --json: its shape is one of docs/cli-json.md's (src/cli/json-events.ts). */
export function printJson(event: StdoutEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`)
}
