import { createHash } from 'node:crypto'
import { readFile, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createStore, openStore } from '../../src/store/index.js'
import { makeTempDir } from '../helpers/env.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { runCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile } from '../helpers/server-process.js'

// The store file cut back to an earlier record boundary (write access to the file, no
// passphrase): every record of the shorter file authenticates, so only the state file beside it
// can tell. The real server refuses to start on it, and starts with --accept-rollback.

const PASSPHRASE = 'rollback test passphrase'

let dir: string
let remove: () => Promise<void>
let passphraseFile: string
const storeFile = () => join(dir, 'data', 'securelogin.store')
const sha256 = async () =>
  createHash('sha256')
    .update(await readFile(storeFile()))
    .digest('hex')

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('rollback'))
  passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  // Made and used in-process for speed, with the state file the server keeps: a change, a clean
  // stop, a second change undoing the first (as a logout deletes a session), a clean stop.
  const store = await createStore(storeFile(), PASSPHRASE, { kdf: TEST_KDF, rollback: 'refuse' })
  await store.commit([{ key: 'test/a', value: { spent: false } }])
  await store.close()
  const before = (await stat(storeFile())).size
  const again = await openStore(storeFile(), PASSPHRASE, { rollback: 'refuse' })
  await again.commit([{ key: 'test/a', value: { spent: true } }])
  await again.close()
  await truncate(storeFile(), before) // the second change undone
})
afterAll(() => remove())

describe('a store file rolled back to an earlier record', () => {
  it('stops the server with ERR_STORE_ROLLBACK, changing nothing; store verify says so too', async () => {
    const before = await sha256()
    const run = runCli([
      'server',
      '--port',
      '0',
      '--store',
      storeFile(),
      '--certs',
      join(dir, 'certs'),
      '--passphrase-file',
      passphraseFile,
      '--json',
    ])
    // A server that took the store would be listening: stop it rather than wait for it.
    const listening = await run.nextLine(30_000).catch(() => undefined)
    if (listening !== undefined) run.kill('SIGTERM')
    const server = await run.done
    expect(listening, 'the server started').toBeUndefined()
    expect(server.code).toBe(1)
    expect(JSON.parse(server.stderr.trim().split('\n').at(-1)!)).toMatchObject({
      event: 'error',
      code: 'ERR_STORE_ROLLBACK',
      message: expect.stringContaining('had been written: it was cut back or replaced by an older copy'),
      hint: expect.stringContaining('--accept-rollback'),
    })
    expect(await sha256()).toBe(before)

    const verify = await runCliToEnd(
      ['store', 'verify', '--store', storeFile(), '--passphrase-file', passphraseFile, '--json'],
      '',
    )
    expect(verify.code).toBe(1)
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: false, state: { kept: true, ok: false } })
    expect(JSON.parse(verify.stderr.trim().split('\n').at(-1)!)).toMatchObject({ code: 'ERR_STORE_ROLLBACK' })
    expect(await sha256()).toBe(before)
  })

  it('starts with --accept-rollback, logs it as a warning, and from then on the restored store is the current one', async () => {
    const server = await startServerProcess(dir, passphraseFile, ['--accept-rollback'])
    try {
      const accepted = server
        .log()
        .split('\n')
        .find((line) => line.includes('"store_rollback_accepted"'))
      expect(JSON.parse(accepted!)).toMatchObject({ level: 'warn', path: storeFile() })
    } finally {
      expect(await server.stop()).toBe(0)
    }
    const verify = await runCliToEnd(
      ['store', 'verify', '--store', storeFile(), '--passphrase-file', passphraseFile, '--json'],
      '',
    )
    expect(verify.code).toBe(0)
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, state: { kept: true, ok: true } })
  })
})
