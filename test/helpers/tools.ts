import { execFileSync, spawnSync } from 'node:child_process'

/**
 * Outside tools the tests use as real peers. In CI a missing tool fails the test; on a
 * developer's machine the test is skipped and names the tool.
 */
export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

export function requireTool(name: string): boolean {
  if (haveTool(name)) return true
  if (process.env['CI']) throw new Error(`${name} is not installed (CI must install it: see .ci/run)`)
  console.warn(`skipping: ${name} is not installed`)
  return false
}

/** `oathtool --totp -b SECRET --now @EPOCH`: an independent RFC 6238 implementation. */
export function oathtoolCode(secret: string, epochSeconds: number): string {
  return execFileSync('oathtool', ['--totp', '-b', secret, '--now', `@${epochSeconds}`], { encoding: 'utf8' }).trim()
}
