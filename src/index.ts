// The securelogin package for Node applications (`import { verifyToken } from 'securelogin'`):
// checking the tokens a securelogin server signs, offline, with its JWKS (docs/tokens.md).
// The server and the CLI are `securelogin server` and the other commands, not this module.

export { verifyToken, type VerifyTokenOptions } from './auth/signed-tokens.js'
export {
  Jwks,
  TokenClaims,
  TOKEN_CLOCK_TOLERANCE_SECONDS,
  TOKEN_TTL_MAX_SECONDS,
  type PublicJwk,
} from './protocol/signed-tokens.js'
export { SecureLoginError, type ErrorCode } from './protocol/errors.js'
