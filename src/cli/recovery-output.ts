import { printJson } from './output.js'
import { invokedAs } from '../base/invoked.js'

/** Recovery codes as a person or a script needs them: shown once, never again. */
export function printRecoveryCodes(
  codes: string[],
  opts: { json: boolean; event: 'registered' | 'recovery_codes'; user: string },
): void {
  if (opts.json) return printJson({ event: opts.event, user: opts.user, recoveryCodes: codes })
  process.stdout.write(
    'recovery codes (each works once in place of a code; they are not shown again, keep them somewhere safe):\n',
  )
  for (const code of codes) process.stdout.write(`  ${code}\n`)
}

/** A warning on stderr when few recovery codes are left after one was used. */
export function warnRecoveryCodesLeft(left: number | undefined): void {
  if (left === undefined || left > 3) return
  process.stderr.write(
    `securelogin: warning: ${left} recovery code${left === 1 ? '' : 's'} left; \`${invokedAs()} recovery-codes\` ` +
      `makes ten new ones\n`,
  )
}
