import { SecureLoginError } from '../base/errors.js'

// What the PostgreSQL store says when the database fails it. Every message names the store by
// its URL without the password, and none carries a value or the database's row data.

export function isPostgresUrl(s: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(s)
}

/** Query parameters that node-postgres reads a secret from. */
const SECRET_PARAMS = ['password', 'sslpassword']

/** The URL without any password: what `store.path` and every message show. */
export function redactUrl(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'postgres://(a URL that cannot be read)'
  }
  parsed.password = ''
  for (const name of [...parsed.searchParams.keys()])
    if (SECRET_PARAMS.includes(name.toLowerCase())) parsed.searchParams.delete(name)
  return parsed.toString()
}

/** The password a URL carries, in either place, so that a message can be scrubbed of it. */
export function secretsOf(url: string): string[] {
  try {
    const parsed = new URL(url)
    const found = [decodeURIComponent(parsed.password), parsed.password]
    for (const [name, value] of parsed.searchParams) if (SECRET_PARAMS.includes(name.toLowerCase())) found.push(value)
    return found.filter((s) => s.length > 0)
  } catch {
    return []
  }
}

/** A URL node-postgres can use, or ERR_CONFIG saying what shape it needs (the URL itself is not repeated). */
export function checkUrl(url: string): void {
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (!parsed || !isPostgresUrl(url) || parsed.pathname.length <= 1) {
    throw new SecureLoginError('ERR_CONFIG', 'the store URL cannot be read as postgres://USER@HOST:PORT/DATABASE', {
      hint: 'name the database after the host, e.g. postgres://securelogin@127.0.0.1:5432/securelogin',
    })
  }
}

interface DriverError {
  code?: unknown
  message?: unknown
  errors?: unknown
}

/** Socket errors, and the SQLSTATEs of a server that is going away or not there yet. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])
const GONE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])
const GONE_MESSAGES = new RegExp(
  [
    'connection terminated',
    'connection ended',
    'not queryable',
    'timeout exceeded when trying to connect',
    'connection error',
    'server closed the connection',
  ].join('|'),
  'i',
)

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'host name lookup failed',
  '57P01': 'the server ended the connection',
  '57P02': 'the server crashed',
  '57P03': 'the server is starting or stopping',
  '53300': 'too many connections',
}

/** Whether a failure is the database being unreachable (down, restarting, the connection cut): worth retrying. */
export function isUnreachable(error: unknown): boolean {
  const e = (error ?? {}) as DriverError
  const code = typeof e.code === 'string' ? e.code : ''
  if (SOCKET_CODES.has(code) || GONE_SQLSTATES.has(code) || code.startsWith('08')) return true
  if (Array.isArray(e.errors) && e.errors.some((inner) => isUnreachable(inner))) return true
  return typeof e.message === 'string' && GONE_MESSAGES.test(e.message)
}

export function unreachable(where: string, reason: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_UNAVAILABLE', `the store's database at ${where} is unreachable (${reason})`, {
    hint: 'retry in a moment; the server reconnects by itself',
  })
}

export function noStore(where: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_IO', `no store at ${where}`, {
    hint: 'check --store, or make one with securelogin store init',
  })
}

/**
 * Maps what node-postgres threw to the store's codes. `secrets` (the URL's password) are cut
 * out of anything the driver said, in case a future driver repeats the URL.
 */
export function databaseError(where: string, error: unknown, doing: string, secrets: string[]): SecureLoginError {
  if (error instanceof SecureLoginError) return error
  const e = (error ?? {}) as DriverError
  const code = typeof e.code === 'string' ? e.code : undefined
  let said = typeof e.message === 'string' ? e.message : String(error)
  for (const secret of secrets) said = said.split(secret).join('***')
  said = said.slice(0, 200)
  if (isUnreachable(error)) return unreachable(where, code ? `${REASONS[code] ?? 'connection failed'}, ${code}` : said)
  if (code === '28P01' || code === '28000')
    return new SecureLoginError('ERR_STORE_IO', `the database at ${where} refused the login (${code})`, {
      hint: 'check the user and password of the store URL, and pg_hba.conf',
    })
  if (code === '3D000')
    return new SecureLoginError('ERR_STORE_IO', `the database named in ${where} does not exist`, {
      hint: 'create it first (createdb), or check the store URL',
    })
  if (code === '42P01') return noStore(where)
  if (code === '42501')
    return new SecureLoginError('ERR_STORE_IO', `the database at ${where} refused ${doing}: permission denied`, {
      hint:
        "the store's user needs CREATE on the schema to make a store (PostgreSQL 15: own the database), " +
        'then rights on the securelogin_ tables',
    })
  return new SecureLoginError(
    'ERR_STORE_IO',
    `the database at ${where} failed ${doing}: ${said}${code ? ` (${code})` : ''}`,
  )
}
