// The bottom of the layers: the error every layer throws, with a code that is API. It imports
// nothing of ours, so the store can throw it without knowing the protocol.

// Error codes are API: tests and scripts match on `code`, never on message text.
export const ERROR_CODES = [
  'ERR_AUTH_FAILED',
  'ERR_SERVER_AUTH_FAILED',
  'ERR_USERNAME_TAKEN',
  'ERR_INVALID_USERNAME',
  'ERR_WEAK_PASSWORD',
  'ERR_KDF_LIMIT',
  'ERR_ENROL_CODE',
  'ERR_STORE_BAD_PASSPHRASE',
  'ERR_STORE_CORRUPT',
  'ERR_STORE_LOCKED',
  'ERR_STORE_KDF_LIMIT',
  'ERR_STORE_IO',
  'ERR_STORE_CONFLICT',
  'ERR_STORE_UNAVAILABLE',
  'ERR_STORE_ROLLBACK',
  'ERR_FORBIDDEN',
  'ERR_NOT_FOUND',
  'ERR_PROTOCOL',
  'ERR_FRAME_TOO_LARGE',
  'ERR_TLS_UNTRUSTED',
  'ERR_TLS_CHANGED',
  'ERR_CONNECT',
  'ERR_TIMEOUT',
  'ERR_RATE_LIMITED',
  'ERR_SHUTTING_DOWN',
  'ERR_TOKEN_EXPIRED',
  'ERR_TOKEN_AUDIENCE',
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_REVOKED',
  'ERR_USAGE',
  'ERR_CONFIG',
  'ERR_INTERNAL',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export class SecureLoginError extends Error {
  readonly code: ErrorCode
  readonly hint?: string
  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    if (opts.hint !== undefined) this.hint = opts.hint
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value)
}
