import { ServerConnection } from '../client/connection.js'
import { resumeSession, type LoginResult } from '../client/login.js'
import { forgetSession, loadSession, type SavedSession } from '../client/saved-sessions.js'
import { SecureLoginError } from '../protocol/errors.js'
import { connectOptions, secureloginHome, type ClientArgs } from './client-options.js'
import { serverKey } from './login.js'

/**
 * Runs `work` on a connection logged in as the session saved for this server. No saved
 * session, or one the server says has ended, is ERR_FORBIDDEN with the way out in the hint;
 * an ended session's file is deleted (it can never work again).
 */
export async function withSession<T>(
  args: ClientArgs,
  work: (conn: ServerConnection, session: LoginResult, saved: SavedSession) => Promise<T>,
): Promise<T> {
  const server = serverKey(args)
  const home = secureloginHome()
  const saved = await loadSession(home, server)
  if (!saved)
    throw new SecureLoginError('ERR_FORBIDDEN', `not logged in to ${server}`, {
      hint: 'log in first: securelogin login',
    })
  const conn = await ServerConnection.open(await connectOptions(args))
  try {
    let session: LoginResult
    try {
      session = await resumeSession(conn, saved.token)
    } catch (error) {
      if (error instanceof SecureLoginError && error.code === 'ERR_FORBIDDEN') await forgetSession(home, server)
      throw error
    }
    return await work(conn, session, saved)
  } finally {
    conn.close()
  }
}
