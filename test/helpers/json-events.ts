import type { z } from 'zod'
import { Jwks } from '../../src/protocol/signed-tokens.js'
import { ListeningLine, ServerLogLine, StderrEvent, StdoutEvent } from '../../src/cli/json-events.js'

// The suite-wide check that every JSON line a CLI run prints is one docs/cli-json.md describes
// (the schemas of src/cli/json-events.ts). The CLI helpers hand each finished run's output here;
// test/setup/cli-json.ts fails the test (or, for runs in hooks, the file) that produced a line
// that is unknown or does not match its schema. It costs no extra CLI run.

const violations: string[] = []

/** An event name is code's own; anything else is shown by length only (a line may hold secrets). */
const nameOf = (value: unknown) =>
  typeof value === 'string' && /^[a-z0-9_]{1,40}$/.test(value) ? `"${value}"` : 'unnamed'

/** Zod's messages name paths and expectations, never the value that failed. */
const issuesOf = (error: z.ZodError) =>
  error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(line)'}: ${issue.message}`)
    .join('; ')

/** Only whole lines: a run ended by a signal may stop mid-line. */
const wholeLines = (text: string) => text.split('\n').slice(0, -1)

function check(
  source: string,
  stream: string,
  index: number,
  line: string,
  schemaOf: (value: unknown) => z.ZodType,
): void {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    violations.push(`${source}: ${stream} line ${index + 1} is not JSON (${line.length} characters)`)
    return
  }
  const parsed = schemaOf(value).safeParse(value)
  if (!parsed.success) {
    const event = nameOf((value as { event?: unknown } | null)?.event)
    violations.push(
      `${source}: ${stream} line ${index + 1}, event ${event}, is not as docs/cli-json.md says: ${issuesOf(parsed.error)}`,
    )
  }
}

/**
 * Checks one finished run of `securelogin ARGS`: with --json, every stdout line is an event of
 * its command (the server's, a log line; `jwks`'s, the JWKS document), and every stderr line
 * that is JSON is the error line or a store report. Lines for people on stderr (a warning) pass.
 */
export function checkJsonOutput(source: string, args: readonly string[], stdout: string, stderr: string): void {
  if (!args.includes('--json')) return
  const schemaOf: (value: unknown) => z.ZodType =
    args[0] === 'server'
      ? (value) => ((value as { event?: unknown } | null)?.event === 'listening' ? ListeningLine : ServerLogLine)
      : () => (args[0] === 'jwks' ? Jwks : StdoutEvent)
  wholeLines(stdout).forEach((line, i) => check(source, 'stdout', i, line, schemaOf))
  wholeLines(stderr).forEach((line, i) => {
    if (line.startsWith('{')) check(source, 'stderr', i, line, () => StderrEvent)
  })
}

/** What was found since the last call, and forgets it. */
export function takeJsonViolations(): string[] {
  return violations.splice(0)
}
