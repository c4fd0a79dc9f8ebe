import { handleCall } from './calls.js'
import {
  handleLoginOtp,
  handleLoginProof,
  handleLoginRecovery,
  handleLoginStart,
  handleSessionResume,
} from './login.js'
import { handleRecoveryRenew } from './recovery.js'
import { handleRegisterConfirm, handleRegisterStart } from './register.js'
import { handleJwksGet, handleTokenCheck } from './signed-tokens.js'
import { route, type MessageType, type Route } from './vocabulary.js'

/**
 * Every client message: the states that accept it, and its handler. A message in any other state
 * ends the connection (src/server/conversation.ts). A new message is a row here, its schema in
 * src/protocol/messages.ts, and its handler (docs/architecture.md, "Adding a client message").
 */
export const ROUTES: { [T in MessageType]: Route<T> } = {
  register_start: route(['ready'], handleRegisterStart),
  register_confirm: route(['awaiting_enrol_code'], handleRegisterConfirm),
  login_start: route(['ready'], handleLoginStart),
  login_proof: route(['awaiting_proof'], handleLoginProof),
  login_otp: route(['awaiting_otp'], handleLoginOtp),
  login_recovery: route(['awaiting_otp'], handleLoginRecovery),
  session_resume: route(['ready'], handleSessionResume),
  recovery_codes_renew: route(['authenticated'], handleRecoveryRenew),
  jwks_get: route(['ready', 'authenticated'], handleJwksGet),
  token_check: route(['ready', 'authenticated'], handleTokenCheck),
  // Accepted before a login too, to answer "not logged in" rather than a protocol error.
  call: route(['ready', 'authenticated'], handleCall),
}
