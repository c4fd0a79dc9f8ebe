export { ERROR_CODES, SecureLoginError, isErrorCode, type ErrorCode } from '../base/errors.js'
import { SecureLoginError } from '../base/errors.js'

// One code and one message for every way a login can fail (STYLE.md: like jose's JWEDecryptionFailed).
export const AUTH_FAILED_MESSAGE = 'authentication failed'

export function authFailed(): SecureLoginError {
  return new SecureLoginError('ERR_AUTH_FAILED', AUTH_FAILED_MESSAGE, {
    hint: "check the user name, the password, and this machine's clock; codes change every 30 s",
  })
}
