import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BIN } from '../helpers/env.js'
import { runCliToEnd } from '../helpers/cli.js'

// Start-up (issue 7): `--version` is answered by bin/securelogin itself, `--help` by yargs, and
// neither loads Ink, React or the server. How fast: docs/performance.md ("Cold start"); the suite
// never times anything.

const version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string

/** The ES modules a run of the CLI loaded, from Node's own module debug output. */
function loadedModules(args: string[]): string[] {
  const run = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, NODE_DEBUG: 'esm' },
    encoding: 'utf8',
  })
  expect(run.status, run.stderr).toBe(0)
  return run.stderr.split('\n').filter((line) => line.includes('file://'))
}

describe('cold start', () => {
  it("--version and -V print package.json's version, as yargs does for a subcommand", async () => {
    for (const flag of ['--version', '-V']) {
      const run = await runCliToEnd([flag], '')
      expect(run).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' })
    }
    expect((await runCliToEnd(['store', '--version'], '')).stdout).toBe(`${version}\n`)
  })

  it('--version loads neither yargs nor anything of dist/', () => {
    const loaded = loadedModules(['--version'])
    expect(loaded.filter((line) => /node_modules\/yargs|\/dist\//.test(line))).toEqual([])
  })

  it('--help loads yargs and the CLI but not Ink, React or the server', () => {
    const loaded = loadedModules(['--help'])
    expect(loaded.some((line) => line.includes('/dist/cli/main.js'))).toBe(true)
    expect(loaded.filter((line) => /node_modules\/(ink|react)\/|\/dist\/(tui|server|store)\//.test(line))).toEqual([])
  })
})
