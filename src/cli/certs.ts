import { execFile } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { SecureLoginError } from '../protocol/errors.js'
import type { Logger } from '../server/logger.js'

const GEN_CERT = fileURLToPath(new URL('../../scripts/gen-cert.sh', import.meta.url))

export interface CertificateFiles {
  cert: Buffer
  key: Buffer
  /** SHA-256 of the certificate's DER, as the `listening` line shows it. */
  fingerprint: string
}

export interface CertificatePair extends CertificateFiles {
  created: boolean
}

/**
 * Loads DIR/server.crt and DIR/server.key, making them with scripts/gen-cert.sh when neither
 * exists (first run). The checks are readCertificatePair's.
 */
export async function loadOrCreateCertificate(dir: string): Promise<CertificatePair> {
  const certPath = join(dir, 'server.crt')
  const keyPath = join(dir, 'server.key')
  let created = false
  if (!existsSync(certPath) && !existsSync(keyPath)) {
    try {
      await promisify(execFile)('bash', [GEN_CERT, '--out', dir])
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? '').trim()
      throw new SecureLoginError(
        'ERR_CONFIG',
        `cannot make a certificate in ${dir}: ${stderr || 'gen-cert.sh failed'}`,
        {
          hint: 'is openssl installed? scripts/gen-cert.sh makes the certificate by hand',
          cause: error,
        },
      )
    }
    created = true
  }
  return { ...(await readCertificatePair(dir)), created }
}

/**
 * Reads DIR/server.crt and DIR/server.key as the server uses them, at start and on SIGHUP: both
 * there, a key that nobody but its owner can read, a certificate and a key that parse, and the
 * key the certificate's. Errors name files and modes, never anything read from them.
 */
export async function readCertificatePair(dir: string): Promise<CertificateFiles> {
  const certPath = join(dir, 'server.crt')
  const keyPath = join(dir, 'server.key')
  const haveCert = existsSync(certPath)
  const haveKey = existsSync(keyPath)
  if (!haveCert || !haveKey) {
    throw new SecureLoginError(
      'ERR_CONFIG',
      haveCert || haveKey
        ? `${haveCert ? keyPath : certPath} is missing (the other file of the pair exists)`
        : `${certPath} and ${keyPath} are missing`,
      { hint: `restore it, or make a new pair with scripts/gen-cert.sh --force --out ${dir}` },
    )
  }
  const key = await readPrivateFile(keyPath)
  const cert = await readFile(certPath)
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (error) {
    throw new SecureLoginError('ERR_CONFIG', `${certPath} is not a certificate (PEM)`, {
      hint: `make a new pair with scripts/gen-cert.sh --force --out ${dir}`,
      cause: error,
    })
  }
  let matches: boolean
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key))
  } catch (error) {
    throw new SecureLoginError('ERR_CONFIG', `${keyPath} is not a private key (PEM, unencrypted)`, {
      hint: `make a new pair with scripts/gen-cert.sh --force --out ${dir}`,
      cause: error,
    })
  }
  if (!matches) {
    throw new SecureLoginError('ERR_CONFIG', `${keyPath} is not the key of ${certPath}`, {
      hint:
        'put the key that belongs to the certificate beside it, or make a new pair with ' +
        `scripts/gen-cert.sh --force --out ${dir}`,
    })
  }
  return { cert, key, fingerprint: x509.fingerprint256 }
}

/**
 * The private key, refused when others can read it. Its mode is read from the file opened, so a
 * file swapped in between cannot pass the check for another.
 */
async function readPrivateFile(path: string): Promise<Buffer> {
  const handle = await open(path, 'r')
  try {
    const mode = (await handle.stat()).mode & 0o777
    if ((mode & 0o077) !== 0) {
      throw new SecureLoginError(
        'ERR_CONFIG',
        `private key ${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
        { hint: `chmod 600 ${path}` },
      )
    }
    return await handle.readFile()
  } finally {
    await handle.close()
  }
}

/**
 * `securelogin server --print-fingerprint`: the fingerprint of DIR/server.crt, for scripts. No
 * passphrase, no store, no certificate made: a missing file is an error.
 */
export async function certificateFingerprint(dir: string): Promise<{ path: string; fingerprint: string }> {
  const path = join(dir, 'server.crt')
  let cert: Buffer
  try {
    cert = await readFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new SecureLoginError(
      'ERR_CONFIG',
      code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path} (${code ?? 'error'})`,
      {
        hint: `the server makes it on its first start; or give --certs the directory that holds it`,
        cause: error,
      },
    )
  }
  try {
    return { path, fingerprint: new X509Certificate(cert).fingerprint256 }
  } catch (error) {
    throw new SecureLoginError('ERR_CONFIG', `${path} is not a certificate (PEM)`, { cause: error })
  }
}

/** What SIGHUP reloads: the TLS listener (and whatever else serves with the same pair). */
export interface CertificateUser {
  /** The fingerprint of the pair in use. */
  readonly fingerprint: string
  /** New connections use this pair; throws, keeping the pair in use, when it cannot be used. */
  setCertificate(cert: Buffer, key: Buffer): unknown
}

/**
 * What SIGHUP does: reads the pair again with the start's checks and hands it to `user` (new
 * connections use it, established ones keep theirs). A pair that fails a check is refused and
 * logged, and the one in use stays. Reloads run one at a time.
 */
export function certificateReloader(dir: string, logger: Logger, user: CertificateUser): () => Promise<void> {
  const path = join(dir, 'server.crt')
  let queue: Promise<void> = Promise.resolve()
  const reload = async () => {
    const previous = user.fingerprint
    try {
      const pair = await readCertificatePair(dir)
      user.setCertificate(pair.cert, pair.key)
      logger.log(
        'info',
        'certificate_reloaded',
        { path, fingerprint: pair.fingerprint, previous },
        `reloaded ${path} (sha256 ${pair.fingerprint}): new connections use it`,
      )
    } catch (error) {
      const reason = error instanceof SecureLoginError ? error.message : 'the new pair could not be used'
      logger.log(
        'warn',
        'certificate_reload_refused',
        { path, reason, fingerprint: previous },
        `certificate not reloaded: ${reason}; still serving the previous one (sha256 ${previous})`,
      )
    }
  }
  return () => (queue = queue.then(reload))
}

/**
 * SIGHUP, heard from the process's start (unhandled, it would end a Node process): one that comes
 * before the server serves is kept, and acted on once `serving` says what to reload.
 */
export function onHangup(): { hangup(): void; serving(reload: () => unknown): void } {
  let reload: (() => unknown) | undefined
  let asked = false
  const hangup = () => {
    if (reload) void reload()
    else asked = true
  }
  process.on('SIGHUP', hangup)
  return {
    hangup,
    serving(given) {
      reload = given
      if (asked) hangup()
    },
  }
}
