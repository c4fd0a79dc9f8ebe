import { execFile, spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { requireTool } from '../helpers/tools.js'

// openssl s_client is the outside judge of what the listener accepts.
const hasOpenssl = requireTool('openssl')
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
      (error, stdout, stderr) => resolve({ status: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
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
    const cert = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: result.stdout, encoding: 'utf8' })
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
