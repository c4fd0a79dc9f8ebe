import { execFile, spawnSync } from 'node:child_process'
import { chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { requireTool } from '../helpers/tools.js'
import { makeCerts, makeTempDir } from '../helpers/env.js'
import { runCliToEnd } from '../helpers/cli.js'
import { writePassphraseFile } from '../helpers/server-process.js'

// openssl s_client and sslscan are the outside judges of what the listener accepts.
const hasOpenssl = requireTool('openssl')
const hasSslscan = requireTool('sslscan')
let server: InProcessServer

beforeAll(async () => {
  server = await startInProcessServer()
})
afterAll(async () => {
  await server?.stop()
})

/** Async: the server under test runs in this process, so a synchronous spawn would starve it. */
function sClient(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${server.server.port}`, '-servername', 'localhost', ...args],
      { timeout: 15_000, encoding: 'utf8' },
      (error, stdout, stderr) =>
        resolve({ status: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin!.end()
  })
}

describe.runIf(hasOpenssl)('TLS as openssl sees it', () => {
  it('accepts TLS 1.3 with the ECDSA P-256 certificate whose fingerprint the server reports', async () => {
    const result = await sClient('-tls1_3', '-CAfile', server.certPath, '-verify_return_error')
    expect(result.stdout).toMatch(/Protocol\s*:\s*TLSv1\.3|New, TLSv1\.3/)
    expect(result.stdout).toContain('Verify return code: 0 (ok)')
    expect(result.stdout).toMatch(/Peer signature type: ECDSA|Server public key is 256 bit/)
    const cert = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], {
      input: result.stdout,
      encoding: 'utf8',
    })
    expect(cert.stdout.trim().split('=')[1]).toBe(server.server.fingerprint)
  })

  it.each(['-tls1_2', '-tls1_1'])('refuses %s', async (flag) => {
    const result = await sClient(flag, '-cipher', 'DEFAULT@SECLEVEL=0')
    expect(result.status).not.toBe(0)
    // s_client names the version it tried even when refused; what matters is that no cipher was agreed.
    expect(result.stdout).toContain('Cipher is (NONE)')
    expect(result.stdout).toContain('no peer certificate available')
    expect(result.stderr).toMatch(/alert protocol version|no protocols available/)
  })
})

describe.runIf(hasSslscan)('TLS as sslscan sees it', () => {
  it('accepts TLS 1.3 and nothing older', async () => {
    const out = await new Promise<string>((resolve) =>
      execFile(
        'sslscan',
        [
          '--no-colour',
          '--no-cipher-details',
          '--no-ciphersuites',
          '--no-groups',
          '--no-check-certificate',
          '--no-fallback',
          '--no-renegotiation',
          '--no-compression',
          '--no-heartbleed',
          `127.0.0.1:${server.server.port}`,
        ],
        { timeout: 30_000, encoding: 'utf8' },
        (_error, stdout) => resolve(stdout),
      ),
    )
    const versions = Object.fromEntries(
      [...out.matchAll(/^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)/gm)].map((m) => [m[1], m[2]]),
    )
    expect(versions).toEqual({
      SSLv2: 'disabled',
      SSLv3: 'disabled',
      'TLSv1.0': 'disabled',
      'TLSv1.1': 'disabled',
      'TLSv1.2': 'disabled',
      'TLSv1.3': 'enabled',
    })
  })
})

describe('the private key', () => {
  it('the server refuses to start when its key is readable by others (ERR_CONFIG), and says which file', async () => {
    const { dir, remove } = await makeTempDir('keymode')
    try {
      const { keyPath } = makeCerts(join(dir, 'certs'))
      await chmod(keyPath, 0o644)
      const passphraseFile = await writePassphraseFile(dir, 'key mode test passphrase')
      const result = await runCliToEnd(
        [
          'server',
          '--port',
          '0',
          '--store',
          join(dir, 'data', 's.store'),
          '--certs',
          join(dir, 'certs'),
          '--passphrase-file',
          passphraseFile,
          '--json',
        ],
        '',
      )
      expect(result.code).toBe(1)
      expect(result.stdout).not.toContain('listening')
      const error = JSON.parse(result.stderr.trim().split('\n').at(-1)!)
      expect(error).toMatchObject({ event: 'error', code: 'ERR_CONFIG' })
      expect(error.message).toContain('readable by others (mode 0644)')
    } finally {
      await remove()
    }
  })
})
