import { stat } from 'node:fs/promises'
import { SecureLoginError } from '../base/errors.js'

/**
 * Refuses a directory that someone else may write to (group or other write permission, or owned
 * by another user): whoever can create names in it can plant the lock, the state file, or the file
 * a secret is about to be written to, and receive what the server writes there. A directory that
 * does not exist yet is left to the caller, which makes it with mode 0700.
 */
export async function refuseSharedDirectory(dir: string, what: string): Promise<void> {
  let mode: number
  let uid: number
  try {
    ;({ mode, uid } = await stat(dir))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new SecureLoginError(
      'ERR_CONFIG',
      `cannot inspect ${what} ${dir} (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    )
  }
  const me = process.getuid?.()
  if (me !== undefined && uid !== me && uid !== 0) {
    throw new SecureLoginError('ERR_CONFIG', `${what} ${dir} belongs to another user (uid ${uid})`, {
      hint: `keep it in a directory of your own: chown it, or choose another path`,
    })
  }
  if ((mode & 0o022) !== 0) {
    throw new SecureLoginError(
      'ERR_CONFIG',
      `${what} ${dir} is writable by others (mode ${(mode & 0o7777).toString(8).padStart(4, '0')})`,
      { hint: `chmod 700 ${dir}, or choose a directory only its owner can write to` },
    )
  }
}
