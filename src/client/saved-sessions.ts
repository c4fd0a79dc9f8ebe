import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKEN_PATTERN } from '../protocol/fields.js'
import { SecureLoginError } from '../protocol/errors.js'

// One saved session per server, in DIR/sessions/HOST_PORT.json (mode 0600, directory 0700):
// later commands run as that user without a password until it expires or is revoked. The
// token is a bearer credential, like an ssh agent's key: whoever reads the file is the user
// until `securelogin logout` (which revokes it on the server too).

export interface SavedSession {
  server: string
  user: string
  role: string
  sessionId: string
  token: string
  expiresAt: string
  idleExpiresAt: string
}

export function sessionFile(home: string, server: string): string {
  return join(home, 'sessions', `${server.replace(/[^A-Za-z0-9.-]/g, '_')}.json`)
}

export async function saveSession(home: string, session: SavedSession): Promise<string> {
  const dir = join(home, 'sessions')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const file = sessionFile(home, session.server)
  const temp = `${file}.${process.pid}.tmp`
  // Written whole and renamed over: a reader never sees half a token.
  await writeFile(temp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 })
  await rename(temp, file)
  return file
}

/** The saved session for `server`, or undefined. A malformed file is refused, never guessed at. */
export async function loadSession(home: string, server: string): Promise<SavedSession | undefined> {
  const file = sessionFile(home, server)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new SecureLoginError('ERR_CONFIG', `cannot read ${file} (${(error as NodeJS.ErrnoException).code})`)
  }
  let session: SavedSession
  try {
    session = JSON.parse(text) as SavedSession
  } catch {
    throw new SecureLoginError('ERR_CONFIG', `${file} is not a saved session`, { hint: `delete it and log in again` })
  }
  if (typeof session.token !== 'string' || !TOKEN_PATTERN.test(session.token) || session.server !== server) {
    throw new SecureLoginError('ERR_CONFIG', `${file} is not a saved session for ${server}`, {
      hint: 'delete it and log in again',
    })
  }
  return session
}

export async function forgetSession(home: string, server: string): Promise<boolean> {
  const file = sessionFile(home, server)
  try {
    await rm(file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}
