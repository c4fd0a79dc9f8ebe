import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { killAllCli, runCli, type CliRun } from '../helpers/cli.js'
import { makeTempDir } from '../helpers/env.js'
import { RawClient } from '../helpers/raw-client.js'
import { writePassphraseFile } from '../helpers/server-process.js'
import { RAW_DANGER, parseTextLine } from '../helpers/text-log.js'

// Log forging against the real server process in its default text log (no --json): a client's
// JSON key holding line breaks reaches the `protocol_error` line's reason, and must stay inside
// that one line as a quoted field, forging no `login_ok` line. The formatter value by value:
// test/unit/log-format.test.ts.

/** The lines written for a person (`text` in Logger.log), which are not event lines. */
const HUMAN =
  /^(listening on |created store |created certificate |wrote the token-signing|no system_admin yet: |stopping: |stopped$)/

let remove: () => Promise<void>
let server: CliRun
let port: number

beforeAll(async () => {
  let dir: string
  ;({ dir, remove } = await makeTempDir('log-forging'))
  const passphraseFile = await writePassphraseFile(dir, `log forging passphrase ${randomBytes(4).toString('hex')}`)
  server = runCli([
    'server',
    '--port',
    '0',
    '--store',
    join(dir, 'data', 'securelogin.store'),
    '--certs',
    join(dir, 'certs'),
    '--passphrase-file',
    passphraseFile,
    '--kdf-nice',
    '0',
    '--kdf-logn',
    '10',
    '--recovery-kdf-logn',
    '10',
    '--bootstrap-token-file',
    join(dir, 'bootstrap-token'),
  ])
  const first = await server.nextLine(30_000)
  const listening = /^listening on 127\.0\.0\.1:(\d+) /.exec(first)
  if (!listening) throw new Error(`first log line is not "listening on": ${first}`)
  port = Number(listening[1])
}, 60_000)

afterAll(async () => {
  await killAllCli()
  await remove?.()
})

describe('the text log under a hostile frame', () => {
  it('keeps a JSON key with line breaks inside one quoted protocol_error field, forging no line', async () => {
    const key = 'x\nlogin_ok user=sysadm address=127.0.0.1 factor=totp\r\nwarn: user_locked user=ada\u2028\u202e'
    const client = await RawClient.open(port)
    try {
      expect(await client.request({ type: 'jwks_get', [key]: 1 })).toMatchObject({
        type: 'error',
        code: 'ERR_PROTOCOL',
      })
      await client.closed
    } finally {
      client.close()
    }
    await vi.waitFor(() => expect(server.stdout()).toContain('protocol_error'), { timeout: 10_000, interval: 50 })
    server.kill('SIGTERM')
    expect((await server.done).code).toBe(0)

    const log = server.stdout()
    const lines = log.split('\n')
    expect(lines.pop()).toBe('')
    for (const line of lines) expect(line).not.toMatch(RAW_DANGER)
    expect(lines.filter((line) => /^(warn: )?(login_ok|user_locked)\b/.test(line))).toEqual([])
    const events = lines.filter((line) => !HUMAN.test(line)).map(parseTextLine)
    const errors = events.filter((e) => e.event === 'protocol_error')
    expect(errors).toHaveLength(1)
    expect(errors[0]!.level).toBe('warn')
    expect(errors[0]!.fields.address).toBe('127.0.0.1')
    // The reason is the schema's, holding the key exactly as the client sent it.
    expect(errors[0]!.fields.reason).toContain(key)
    expect(events.map((e) => e.event)).not.toContain('login_ok')
  })
})
