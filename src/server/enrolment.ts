import { encodeTotpSecret, verifyTotp, TOTP_SECRET_BYTES } from '../auth/totp.js'
import { Secret } from '../auth/secret.js'
import type { ServerContext } from './context.js'
import { EnrolCodeRejected, type Enrolment } from './vocabulary.js'

// A TOTP secret shown to a person (registration, `totp_reset`, a login after `admin reset-2fa`)
// becomes theirs only once a code from it comes back: one check for all three.

/** A fresh TOTP secret, base32, wrapped. */
export function freshTotpSecret(ctx: ServerContext): Secret {
  const seed = ctx.randomBytes(TOTP_SECRET_BYTES)
  const secret = new Secret(encodeTotpSecret(seed))
  seed.fill(0)
  return secret
}

export function startEnrolment(ctx: ServerContext): Enrolment {
  return { secret: freshTotpSecret(ctx), attempts: 0 }
}

/**
 * The time step of a code typed for a secret just shown. A wrong code counts against the
 * enrolment and is refused with EnrolCodeRejected; the last allowed attempt ends the connection.
 */
export async function checkEnrolmentCode(
  ctx: ServerContext,
  who: { user: string; address: string },
  enrolment: Enrolment,
  code: string,
  nowMs: number,
): Promise<number> {
  const check = await verifyTotp({ secret: enrolment.secret.reveal(), code, nowMs })
  if (check.valid) return check.timeStep
  enrolment.attempts += 1
  ctx.logger.log('info', 'enrol_code_rejected', { ...who, attempts: enrolment.attempts })
  throw new EnrolCodeRejected(enrolment.attempts >= ctx.limits.enrolAttempts)
}
