import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(ROOT, 'bin', 'securelogin')
export const GEN_CERT = join(ROOT, 'scripts', 'gen-cert.sh')

export async function makeTempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `securelogin-${prefix}-`))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

/** Certificates are made by the test run (never committed), with the project's own script. */
export function makeCerts(dir: string): { certPath: string; keyPath: string; fingerprint: string } {
  const out = execFileSync('bash', [GEN_CERT, '--out', dir], { encoding: 'utf8' })
  const fingerprint = /^sha256 (\S+)$/m.exec(out)![1]!
  return { certPath: join(dir, 'server.crt'), keyPath: join(dir, 'server.key'), fingerprint }
}
