import type { Enrolment } from '../client/register.js'
import { printJson } from './output.js'

/** A new authenticator to add, for a script (JSON: the URI and secret) or a person; the code is read next. */
export function printEnrolment(enrolment: Enrolment, opts: { json: boolean; why?: string }): void {
  if (opts.json) return printJson({ event: 'enrol', otpauthUri: enrolment.otpauthUri })
  if (opts.why) process.stdout.write(`${opts.why}\n`)
  process.stdout.write(`add this account to your authenticator app:\n${enrolment.otpauthUri}\n`)
  process.stdout.write(`secret: ${enrolment.secret.replace(/(.{4})(?=.)/g, '$1 ')}\n`)
  process.stdout.write('then write the 6-digit code it shows on the next line of stdin\n')
}
