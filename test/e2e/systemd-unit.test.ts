import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BIN, ROOT, makeTempDir } from '../helpers/env.js'
import { runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile } from '../helpers/server-process.js'
import { requireTool } from '../helpers/tools.js'

// deploy/securelogin.service as systemd reads it, and the server as that unit runs it: no
// --passphrase-file, the passphrase in the credential LoadCredential= puts in $CREDENTIALS_DIRECTORY.

const UNIT = join(ROOT, 'deploy', 'securelogin.service')
const hasSystemdAnalyze = requireTool('systemd-analyze')
const temps: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const remove of temps) await remove()
})

async function tempDir(prefix: string): Promise<string> {
  const { dir, remove } = await makeTempDir(prefix)
  temps.push(remove)
  return dir
}

/** The unit's ExecStart= command line, its continuation lines joined. */
function execStart(unit: string): string[] {
  const line = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)![1]!
  return line.replace(/\\\n/g, ' ').trim().split(/\s+/)
}

/**
 * The unit names its program as `npm install -g .` puts it on systemd's search path; where it is
 * not installed (CI, a checkout), a copy that differs only in naming this checkout's bin/securelogin.
 */
async function unitToVerify(): Promise<string> {
  const installed = ['/usr/local/bin/securelogin', '/usr/bin/securelogin'].some((path) => existsSync(path))
  if (installed) return UNIT
  const text = await readFile(UNIT, 'utf8')
  const copy = text.replace(/^ExecStart=securelogin /m, `ExecStart=${BIN} `)
  expect(copy.split('\n').filter((line, i) => line !== text.split('\n')[i])).toEqual([
    expect.stringMatching(/^ExecStart=\/\S+\/bin\/securelogin server /),
  ])
  const file = join(await tempDir('unit'), 'securelogin.service')
  await writeFile(file, copy)
  return file
}

describe('deploy/securelogin.service', () => {
  it.runIf(hasSystemdAnalyze)('passes systemd-analyze verify with no complaint about its lines', async () => {
    const file = await unitToVerify()
    const result = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' })
    // Lines about other units (a container's missing ones) are not this file's business.
    expect(result.stderr.split('\n').filter((line) => line.includes('securelogin'))).toEqual([])
    expect(result.status).toBe(0)
  })

  it.runIf(hasSystemdAnalyze)("is rated by systemd-analyze security as 'OK' or better", async () => {
    const file = await unitToVerify()
    const result = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], {
      encoding: 'utf8',
    })
    const overall = /Overall exposure level for securelogin\.service: ([\d.]+) (\S+)/.exec(result.stdout)
    expect(overall, result.stdout + result.stderr).not.toBeNull()
    // 0 is fully locked down, 10 not at all; node needs the network, W+X memory for its JIT, /proc.
    expect(Number(overall![1])).toBeLessThanOrEqual(2)
  })

  it('runs the server with options the server has, and never a passphrase on its command line', async () => {
    const unit = await readFile(UNIT, 'utf8')
    const command = execStart(unit)
    expect(command.slice(0, 2)).toEqual(['securelogin', 'server'])
    expect(command).not.toContain('--passphrase-file')
    expect(unit).toMatch(/^LoadCredential=passphrase:\/etc\/securelogin\/passphrase$/m)
    const help = await runCliToEnd(['server', '--help'], '')
    expect(help.code).toBe(0)
    for (const option of command.filter((word) => word.startsWith('--'))) expect(help.stdout).toContain(`${option} `)
  })

  it('has the sandbox it promises, and leaves W^X memory to V8', async () => {
    const unit = await readFile(UNIT, 'utf8')
    for (const line of [
      'User=securelogin',
      'StateDirectory=securelogin',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'NoNewPrivileges=yes',
      'CapabilityBoundingSet=',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'SystemCallFilter=@system-service',
      'UMask=0077',
      'ExecReload=/bin/kill -HUP $MAINPID',
    ])
      expect(unit.split('\n')).toContain(line)
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=(yes|true|1)/m)
  })
})

describe('the passphrase from a systemd credential', () => {
  const passphrase = 'credential passphrase of the systemd test'

  /** A store made by a server given `passphrase` by file, and a credential (mode 0400) holding `credential`. */
  async function storeWithCredential(name: string, credential: string) {
    const dir = await tempDir(name)
    const first = await startServerProcess(dir, await writePassphraseFile(dir, passphrase))
    expect(await first.stop()).toBe(0)
    const credentials = join(dir, 'credentials')
    await mkdir(credentials, { mode: 0o700 })
    await chmod(await writePassphraseFile(credentials, credential), 0o400)
    return { dir, credentials }
  }

  it('opens the store with it, and it is in neither argv nor the environment', async () => {
    const { dir, credentials } = await storeWithCredential('credential', passphrase)
    const server = await startServerProcess(dir, undefined, [], { env: { CREDENTIALS_DIRECTORY: credentials } })
    try {
      const pid = server.run.child.pid!
      const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8')
      const environ = await readFile(`/proc/${pid}/environ`, 'utf8')
      expect(argv).not.toContain('--passphrase-file')
      expect(argv.includes(passphrase)).toBe(false)
      expect(environ).toContain(`CREDENTIALS_DIRECTORY=${credentials}\0`)
      expect(environ.includes(passphrase)).toBe(false)
      expect(server.run.stderr()).toContain(
        `admin passphrase read from the systemd credential ${join(credentials, 'passphrase')}`,
      )
    } finally {
      expect(await server.stop()).toBe(0)
    }
  })

  it("names the credential's source, not systemd's copy, when its passphrase is wrong", async () => {
    const { dir, credentials } = await storeWithCredential('credential-wrong', 'not the passphrase of this store')
    const refused = startServerProcess(dir, undefined, [], { env: { CREDENTIALS_DIRECTORY: credentials } })
    await expect(refused).rejects.toThrow(/ERR_STORE_BAD_PASSPHRASE/)
    await expect(refused).rejects.toThrow(/LoadCredential=passphrase:\.\.\. names \(deploy\/securelogin.service/)
  })

  it('refuses a credential that others can read, as it refuses such a passphrase file', async () => {
    const dir = await tempDir('credential-mode')
    const credentials = join(dir, 'credentials')
    await mkdir(credentials, { mode: 0o700 })
    await chmod(await writePassphraseFile(credentials, passphrase), 0o404)
    await expect(
      startServerProcess(dir, undefined, [], { env: { CREDENTIALS_DIRECTORY: credentials } }),
    ).rejects.toThrow(/passphrase file \S+\/credentials\/passphrase is readable by others \(mode 0404\)/)
    expect(existsSync(join(dir, 'data', 'securelogin.store'))).toBe(false)
  })
})
