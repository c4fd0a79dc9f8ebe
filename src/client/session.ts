import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKEN_PATTERN } from '../protocol/fields.js'
import { SecureLoginError } from '../protocol/errors.js'
import { ServerConnection, type ConnectOptions } from './connection.js'
import { resumeSession, type LoginResult } from './login.js'
import { call } from './calls.js'
import { loadDeviceKey, saveDeviceKey } from './devices.js'

// One saved session per server, in HOME/sessions/HOST_PORT.json (mode 0600, directory 0700):
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

/** Where a session lives and how to reach the server it belongs to. */
export interface SessionOptions {
  /** The directory that holds `sessions/` ($SECURELOGIN_HOME). */
  home: string
  /** The server as sessions are filed under (serverKey). */
  server: string
  /** Called only when a connection is opened: building the options can fail (an unreadable --ca). */
  connect: () => Promise<ConnectOptions>
}

/** The server's address as sessions are filed under: HOST:PORT. */
export function serverKey(address: { host: string; port: number }): string {
  return `${address.host}:${address.port}`
}

/** The session saved for one server: load it, save a new one over it, forget it. */
export class SavedSessions {
  readonly #options: SessionOptions

  constructor(options: SessionOptions) {
    this.#options = options
  }

  /** The device key an earlier login of `user` here was given, to send with the next login. */
  deviceKey(user: string): Promise<string | undefined> {
    return loadDeviceKey(this.#options.home, this.#options.server, user)
  }

  /** The saved session, or undefined. A malformed file is refused, never guessed at. */
  load(): Promise<SavedSession | undefined> {
    return loadSession(this.#options.home, this.#options.server)
  }

  /**
   * Saves a new session's token (never printed) so later commands run as this user. The
   * session saved before is revoked: its token is about to be forgotten here, and a token
   * nobody holds any more should not stay valid on the server until it idles out.
   */
  async save(result: LoginResult): Promise<void> {
    if (result.token === undefined) return
    const { home, server } = this.#options
    if (result.device !== undefined) await saveDeviceKey(home, server, result.user, result.device)
    const replaced = await this.load().catch(() => undefined)
    await saveSession(home, {
      server,
      user: result.user,
      role: result.role,
      sessionId: result.sessionId,
      token: result.token,
      expiresAt: result.expiresAt,
      idleExpiresAt: result.idleExpiresAt,
    })
    if (replaced && replaced.token !== result.token) await this.#revoke(replaced.token)
  }

  /** Deletes the saved session; false when there was none. */
  async forget(): Promise<boolean> {
    const file = sessionFile(this.#options.home, this.#options.server)
    try {
      await rm(file)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw error
    }
  }

  /** Best effort: the replaced session may have ended already, or the server be gone; the login stands either way. */
  async #revoke(token: string): Promise<void> {
    let conn: ServerConnection | undefined
    try {
      conn = await ServerConnection.open(await this.#options.connect())
      await resumeSession(conn, token)
      await call(conn, 'logout', {})
    } catch {
      // Ended, revoked or unreachable: nothing left to revoke, or nothing we can do now.
    } finally {
      conn?.close()
    }
  }
}

/**
 * Runs `work` on a connection logged in as the session saved for this server, and closes it
 * after. No saved session, or one the server says has ended, is ERR_FORBIDDEN with the way out
 * in the hint; an ended session's file is deleted (it can never work again). An ERR_FORBIDDEN
 * from `work` itself leaves the file alone: the session is fine, the caller may not do that.
 */
export async function withSession<T>(
  options: SessionOptions,
  work: (conn: ServerConnection, session: LoginResult, saved: SavedSession) => Promise<T>,
): Promise<T> {
  const sessions = new SavedSessions(options)
  const saved = await sessions.load()
  if (!saved)
    throw new SecureLoginError('ERR_FORBIDDEN', `not logged in to ${options.server}`, {
      hint: 'log in first: securelogin login',
    })
  const conn = await ServerConnection.open(await options.connect())
  try {
    let session: LoginResult
    try {
      session = await resumeSession(conn, saved.token)
    } catch (error) {
      if (error instanceof SecureLoginError && error.code === 'ERR_FORBIDDEN') await sessions.forget()
      throw error
    }
    return await work(conn, session, saved)
  } finally {
    conn.close()
  }
}

function sessionFile(home: string, server: string): string {
  return join(home, 'sessions', `${server.replace(/[^A-Za-z0-9.-]/g, '_')}.json`)
}

/** Writes `session` as the one saved for its server, whatever was there (no revoking: see SavedSessions.save). */
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

async function loadSession(home: string, server: string): Promise<SavedSession | undefined> {
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
