import { existsSync, statSync, type Stats } from 'node:fs'
import { open } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { SecureLoginError } from '../protocol/errors.js'
import { promptHidden } from './prompt-hidden.js'
import { usageError } from './output.js'

export const MIN_PASSPHRASE_CHARS = 8

/** The name deploy/securelogin.service's LoadCredential= gives the passphrase. */
export const PASSPHRASE_CREDENTIAL = 'passphrase'

/**
 * `securelogin server`'s passphrase file: --passphrase-file when given, else the systemd
 * credential $CREDENTIALS_DIRECTORY/passphrase when the unit loaded one, so that the passphrase
 * is in neither the command line nor the environment. Undefined: a terminal prompt.
 */
export function serverPassphraseFile(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const dir = credentialsDirectory(env)
  if (file !== undefined || dir === undefined) return file
  const credential = join(dir, PASSPHRASE_CREDENTIAL)
  return existsSync(credential) ? credential : undefined
}

const credentialsDirectory = (env: NodeJS.ProcessEnv) => env['CREDENTIALS_DIRECTORY'] || undefined

/** A file systemd put in this service's credentials directory. */
export function isCredential(file: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const dir = credentialsDirectory(env)
  return dir !== undefined && dirname(resolve(file)) === resolve(dir)
}

/**
 * The admin passphrase: the first line of --passphrase-file, or typed without echo at a
 * terminal (twice for a new store). No terminal and no file is a usage error.
 */
export async function readPassphrase(opts: {
  file: string | undefined
  isNew: boolean
  storePath: string
}): Promise<string> {
  const passphrase = opts.file !== undefined ? await readPassphraseFile(opts.file) : await promptPassphrase(opts)
  // Where it came from (never what it is), for the operator reading the journal.
  if (opts.file !== undefined && isCredential(opts.file))
    process.stderr.write(`securelogin: admin passphrase read from the systemd credential ${opts.file}\n`)
  if (opts.isNew && [...passphrase].length < MIN_PASSPHRASE_CHARS) {
    throw usageError(
      `a new store's passphrase must be at least ${MIN_PASSPHRASE_CHARS} characters`,
      'it protects every account: use several words',
    )
  }
  return passphrase
}

/** Checks up front that a passphrase can be had at all, before anything is made on disk. */
export function checkPassphraseSource(file: string | undefined): void {
  if (file !== undefined) {
    let stats: Stats | undefined
    try {
      stats = statSync(file)
    } catch {
      // Reported with its cause when the file is read.
    }
    if (stats) refuseIfReadableByOthers(file, stats)
  }
  if (file === undefined && !process.stdin.isTTY) {
    throw usageError(
      'no passphrase: stdin is not a terminal and no --passphrase-file was given',
      credentialsDirectory(process.env) === undefined
        ? 'pass --passphrase-file FILE (its first line is the passphrase), or run in a terminal'
        : `no credential named ${PASSPHRASE_CREDENTIAL} in $CREDENTIALS_DIRECTORY: ` +
            `give the unit LoadCredential=${PASSPHRASE_CREDENTIAL}:FILE`,
    )
  }
}

/**
 * The passphrase opens every account, so a file that holds it is refused on the same terms as
 * server.key (src/cli/certs.ts): any permission for group or others. Only regular files: a pipe
 * (`--passphrase-file /dev/stdin`, `<(...)`) is not left lying on disk.
 *
 * One exception, in the credentials directory systemd made for this service: a credential is
 * 0400, and where systemd grants the service's user read access by an ACL, the group bits stat
 * shows are the ACL's mask, so it reads 0440 though no group can read it. Group read is let
 * through there only; any permission for others, or group write, is still refused.
 */
function refuseIfReadableByOthers(file: string, stats: Stats): void {
  const mode = stats.mode & 0o777
  const allowed = isCredential(file) ? 0o040 : 0
  if (stats.isFile() && (mode & 0o077 & ~allowed) !== 0) {
    throw new SecureLoginError(
      'ERR_CONFIG',
      `passphrase file ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
      { hint: `chmod 600 ${file}` },
    )
  }
}

async function readPassphraseFile(file: string): Promise<string> {
  let text: string
  const cannotRead = (error: unknown) =>
    new SecureLoginError(
      'ERR_USAGE',
      `cannot read passphrase file ${file} (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    )
  const handle = await open(file, 'r').catch((error: unknown) => {
    throw cannotRead(error)
  })
  try {
    // Checked on the open file itself, so the file read is the file checked.
    refuseIfReadableByOthers(file, await handle.stat())
    text = await handle.readFile('utf8').catch((error: unknown) => {
      throw cannotRead(error)
    })
  } finally {
    await handle.close()
  }
  const line = text.split(/\r?\n/, 1)[0] ?? ''
  if (line === '') throw usageError(`passphrase file ${file} has an empty first line`)
  return line
}

async function promptPassphrase(opts: { isNew: boolean; storePath: string }): Promise<string> {
  checkPassphraseSource(undefined)
  if (!opts.isNew) return promptHidden(`admin passphrase for ${opts.storePath}: `)
  for (let attempt = 0; attempt < 3; attempt++) {
    const first = await promptHidden(`new admin passphrase for ${opts.storePath}: `)
    if ([...first].length < MIN_PASSPHRASE_CHARS) {
      process.stderr.write(`securelogin: the passphrase must be at least ${MIN_PASSPHRASE_CHARS} characters\n`)
      continue
    }
    const second = await promptHidden('repeat the passphrase: ')
    if (first === second) return first
    process.stderr.write('securelogin: the passphrases do not match\n')
  }
  throw usageError('no passphrase agreed after 3 attempts')
}
