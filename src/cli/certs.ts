import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { SecureLoginError } from '../protocol/errors.js'

const GEN_CERT = fileURLToPath(new URL('../../scripts/gen-cert.sh', import.meta.url))

export interface CertificatePair {
  cert: Buffer
  key: Buffer
  created: boolean
}

/**
 * Loads DIR/server.crt and DIR/server.key, making them with scripts/gen-cert.sh when neither
 * exists (first run). Refuses a private key that others can read.
 */
export async function loadOrCreateCertificate(dir: string): Promise<CertificatePair> {
  const certPath = join(dir, 'server.crt')
  const keyPath = join(dir, 'server.key')
  const haveCert = existsSync(certPath)
  const haveKey = existsSync(keyPath)
  let created = false
  if (!haveCert && !haveKey) {
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
  } else if (!haveCert || !haveKey) {
    throw new SecureLoginError(
      'ERR_CONFIG',
      `${haveCert ? keyPath : certPath} is missing (the other file of the pair exists)`,
      {
        hint: `restore it, or make a new pair with scripts/gen-cert.sh --force --out ${dir}`,
      },
    )
  }
  const mode = (await stat(keyPath)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new SecureLoginError(
      'ERR_CONFIG',
      `private key ${keyPath} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
      {
        hint: `chmod 600 ${keyPath}`,
      },
    )
  }
  return { cert: await readFile(certPath), key: await readFile(keyPath), created }
}
