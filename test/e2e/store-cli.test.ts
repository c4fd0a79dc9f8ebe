import { createHash } from 'node:crypto'
import {
  appendFile,
  chmod,
  link,
  lstat,
  mkdir,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { BIN, ROOT, makeTempDir } from '../helpers/env.js'
import { createStore, openStore, storeExists } from '../../src/store/index.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { generateTotp } from '../../src/auth/totp.js'
import { getRecovery } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'
import { runCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile } from '../helpers/server-process.js'

const HEADER = 160
const PASSWORD = 'violet lantern 4417 first run'
noteSecret('password', PASSWORD)

// The `securelogin store` commands as a script would run them.

let dir: string
let remove: () => Promise<void>
let store: string
let oldFile: string
let newFile: string
beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('store-cli'))
  store = join(dir, 'data', 'admin.store')
  oldFile = await writePassphraseFile(dir, 'the first admin passphrase', 'old')
  newFile = await writePassphraseFile(dir, 'the second admin passphrase', 'new')
})
afterAll(() => remove())

const cli = async (...args: string[]) => {
  const result = await runCliToEnd(['store', ...args, '--store', store, '--json'], '')
  return {
    ...result,
    out: result.stdout ? JSON.parse(result.stdout) : undefined,
    err: result.stderr ? JSON.parse(result.stderr.trim().split('\n').at(-1)!) : undefined,
  }
}

describe('securelogin store', () => {
  it('init makes a store with the KDF asked for, and refuses to make it twice', async () => {
    const made = await cli('init', '--passphrase-file', oldFile, '--kdf-logn', '11')
    expect(made.code).toBe(0)
    expect(made.out).toEqual({ event: 'store_created', path: store, kdf: { name: 'scrypt', logN: 11, r: 8, p: 1 } })
    const again = await cli('init', '--passphrase-file', oldFile)
    expect(again.code).toBe(1)
    expect(again.err).toMatchObject({ code: 'ERR_STORE_IO' })
  })

  it('info prints the plaintext header without a passphrase', async () => {
    const info = await cli('info')
    expect(info.code).toBe(0)
    expect(info.out).toMatchObject({
      event: 'store_info',
      formatVersion: 2,
      kdf: { logN: 11, r: 8, p: 1 },
      fileSize: (await readFile(store)).length,
    })
    expect(info.out.storeId).toMatch(/^[0-9a-f]{32}$/)
  })

  it('verify authenticates every record and prints the counts', async () => {
    const verified = await cli('verify', '--passphrase-file', oldFile)
    expect(verified.code).toBe(0)
    // One record: the server secret, and the marker that says the store keeps a state file.
    expect(verified.out).toMatchObject({
      event: 'store_verified',
      ok: true,
      users: 0,
      records: 1,
      entries: 2,
      live: 2,
      dead: 0,
      formatVersion: 2,
      state: { path: `${store}.state`, kept: true, ok: true },
    })
  })

  it('compact rotates the data key and keeps the state', async () => {
    const before = (await readFile(store)).subarray(68, 128)
    const compacted = await cli('compact', '--passphrase-file', oldFile)
    expect(compacted.code).toBe(0)
    expect(compacted.out).toMatchObject({ event: 'store_compacted', recordsBefore: 1, recordsAfter: 1 })
    expect((await readFile(store)).subarray(68, 128)).not.toEqual(before)
    expect((await cli('verify', '--passphrase-file', oldFile)).out).toMatchObject({ ok: true, live: 2 })
  })

  it('rekey changes the passphrase: the old one stops working, the new one opens the store', async () => {
    const rekeyed = await cli(
      'rekey',
      '--passphrase-file',
      oldFile,
      '--new-passphrase-file',
      newFile,
      '--kdf-logn',
      '10',
    )
    expect(rekeyed.code).toBe(0)
    expect(rekeyed.out).toMatchObject({ event: 'store_rekeyed', kdf: { logN: 10 } })
    const old = await cli('verify', '--passphrase-file', oldFile)
    expect(old.code).toBe(1)
    expect(old.err).toEqual({
      event: 'error',
      code: 'ERR_STORE_BAD_PASSPHRASE',
      message: 'wrong passphrase or damaged store',
      hint: expect.any(String),
    })
    expect((await cli('verify', '--passphrase-file', newFile)).out).toMatchObject({ ok: true, kdf: { logN: 10 } })
  })

  it('gives usage errors (exit 2) for a KDF cost out of range and a rekey without the new passphrase', async () => {
    const cost = await cli('init', '--passphrase-file', oldFile, '--kdf-logn', '30')
    expect(cost.code).toBe(2)
    expect(cost.err).toMatchObject({ code: 'ERR_USAGE' })
    const half = await cli('rekey', '--passphrase-file', newFile)
    expect(half.code).toBe(2)
  })

  it('says plainly when there is no store, the hint in the form the CLI was run by', async () => {
    const missing = await runCliToEnd(['store', 'info', '--store', join(dir, 'nowhere.store')], '', { cwd: ROOT })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(
      `securelogin: error: no store at ${join(dir, 'nowhere.store')} (ERR_STORE_IO)\nsecurelogin: hint: check --store, or make one with ./bin/securelogin store init\n`,
    )
    // From another directory the path is given whole: pasted, it still works.
    const elsewhere = await runCliToEnd(['store', 'info', '--store', join(dir, 'nowhere.store')], '', { cwd: dir })
    expect(elsewhere.stderr).toContain(`make one with ${BIN} store init`)
  })
})

describe('the store a server makes on first run', () => {
  it('has the KDF cost of --kdf-logn; a cost out of range is a usage error before anything is made', async () => {
    const serverDir = join(dir, 'first-run')
    const passphraseFile = await writePassphraseFile(dir, 'the first-run passphrase', 'first-run-pass')
    const storeFile = join(serverDir, 'data', 'securelogin.store')
    const bad = await runCliToEnd(
      ['server', '--port', '0', '--store', storeFile, '--passphrase-file', passphraseFile, '--kdf-logn', '9'],
      '',
    )
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--kdf-logn is an integer from 10 to 20 (ERR_USAGE)')
    expect(storeExists(storeFile)).toBe(false)
    const badRecovery = await runCliToEnd(
      ['server', '--port', '0', '--store', storeFile, '--passphrase-file', passphraseFile, '--recovery-kdf-logn', '9'],
      '',
    )
    expect(badRecovery.code).toBe(2)
    expect(badRecovery.stderr).toContain('--recovery-kdf-logn is an integer from 10 to 20 (ERR_USAGE)')
    expect(storeExists(storeFile)).toBe(false)
    // startServerProcess asks for logN 10 (the store) and 10 (recovery codes, a hidden test flag);
    // a restart asking for another store cost keeps the store's own.
    const server = await startServerProcess(serverDir, passphraseFile)
    const certFile = join(serverDir, 'certs', 'server.crt')
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: server.port,
      trust: { kind: 'ca', ca: await readFile(certFile), caFile: certFile },
    })
    try {
      // No terminal: the server wrote its bootstrap token beside the store.
      const token = (await readFile(join(serverDir, 'data', 'bootstrap-token'), 'utf8')).trim()
      const enrolment = await startRegistration(conn, 'rita', PASSWORD, token)
      noteSecret('TOTP secret', enrolment.secret)
      const { recoveryCodes } = await confirmEnrolment(conn, await generateTotp(enrolment.secret, Date.now()))
      for (const code of recoveryCodes) noteSecret('recovery code', code)
    } finally {
      conn.close()
    }
    expect(await server.stop()).toBe(0)
    const store = await openStore(storeFile, 'the first-run passphrase')
    try {
      expect((await getRecovery(store, 'rita'))?.kdf).toEqual({ name: 'scrypt', logN: 10, r: 8, p: 1 })
    } finally {
      await store.close()
    }
    const again = await startServerProcess(serverDir, passphraseFile, ['--kdf-logn', '12'])
    expect(await again.stop()).toBe(0)
    const info = await runCliToEnd(['store', 'info', '--store', storeFile, '--json'], '')
    expect(JSON.parse(info.stdout)).toMatchObject({ kdf: { name: 'scrypt', logN: 10, r: 8, p: 1 } })
  })
})

describe('the server on a damaged store', () => {
  let serverDir: string
  let passphraseFile: string
  const storeFile = () => join(serverDir, 'data', 'securelogin.store')
  beforeAll(async () => {
    serverDir = join(dir, 'server')
    passphraseFile = await writePassphraseFile(dir, 'the server store passphrase', 'server-pass')
    const made = await runCliToEnd(
      ['store', 'init', '--store', storeFile(), '--passphrase-file', passphraseFile, '--kdf-logn', '10'],
      '',
    )
    expect(made.code).toBe(0)
  })

  it('cuts off a torn last record, logs its offset and length, and starts', async () => {
    const before = await readFile(storeFile())
    const size = before.length
    await appendFile(storeFile(), Buffer.from([0, 0, 1, 0, 7, 7, 7, 7, 7, 7])) // a 256-byte record cut after 6 bytes
    const server = await startServerProcess(serverDir, passphraseFile)
    try {
      await vi.waitFor(() => expect(server.log()).toContain('"event":"store_torn_tail"'), { timeout: 30_000 })
      const line = server
        .log()
        .split('\n')
        .find((l) => l.includes('store_torn_tail'))!
      expect(JSON.parse(line)).toMatchObject({
        event: 'store_torn_tail',
        level: 'warn',
        offset: size,
        length: 10,
        cut: true,
      })
    } finally {
      expect(await server.stop()).toBe(0)
    }
    // The torn bytes are gone; what was there before is untouched (the server then appends its
    // bootstrap token record after it, a new store having no system_admin).
    const after = await readFile(storeFile())
    expect(after.subarray(0, size)).toEqual(before)
    expect(after.subarray(size, size + 10)).not.toEqual(Buffer.from([0, 0, 1, 0, 7, 7, 7, 7, 7, 7]))
  })

  it('refuses to start on a record that fails to authenticate (ERR_STORE_CORRUPT, index and offset), changing nothing', async () => {
    const file = await readFile(storeFile())
    file[HEADER + 40]! ^= 0x04 // inside record 0
    await writeFile(storeFile(), file)
    const before = createHash('sha256').update(file).digest('hex')
    const result = await runCliToEnd(
      [
        'server',
        '--port',
        '0',
        '--store',
        storeFile(),
        '--certs',
        join(serverDir, 'certs'),
        '--passphrase-file',
        passphraseFile,
        '--json',
      ],
      '',
    )
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({
      event: 'error',
      code: 'ERR_STORE_CORRUPT',
      message: `record 0 at offset ${HEADER} of ${storeFile()} fails to authenticate`,
    })
    expect(
      createHash('sha256')
        .update(await readFile(storeFile()))
        .digest('hex'),
    ).toBe(before)
  })
})

describe('files a secret is read from or written to', () => {
  const lastJson = (stderr: string) => JSON.parse(stderr.trim().split('\n').at(-1)!)
  /** A server expected to refuse to start; one that listens instead is stopped, and the test fails. */
  const refusedServer = async (args: string[]) => {
    const run = runCli(['server', '--port', '0', '--json', ...args])
    const listening = await run.nextLine(30_000).catch(() => undefined)
    if (listening !== undefined) run.kill('SIGTERM')
    const result = await run.done
    expect(listening, 'the server started').toBeUndefined()
    return result
  }

  it('refuses a passphrase file others may read (ERR_CONFIG, with the chmod hint), as it refuses server.key', async () => {
    const file = await writePassphraseFile(dir, 'a passphrase others can read', 'readable-pass')
    await chmod(file, 0o644)
    const storeFile = join(dir, 'readable', 'data', 'securelogin.store')
    const result = await refusedServer(['--store', storeFile, '--passphrase-file', file])
    expect(result.code).toBe(1)
    expect(lastJson(result.stderr)).toEqual({
      event: 'error',
      code: 'ERR_CONFIG',
      message: `passphrase file ${file} is readable by others (mode 0644)`,
      hint: `chmod 600 ${file}`,
    })
    expect(storeExists(storeFile)).toBe(false)
  })

  it('refuses a store directory others may write to (ERR_CONFIG), before writing anything in it', async () => {
    const shared = join(dir, 'shared')
    await mkdir(shared)
    await chmod(shared, 0o777)
    const passphraseFile = await writePassphraseFile(dir, 'the shared directory passphrase', 'shared-pass')
    const storeFile = join(shared, 'securelogin.store')
    const result = await refusedServer(['--store', storeFile, '--passphrase-file', passphraseFile])
    expect(result.code).toBe(1)
    expect(lastJson(result.stderr)).toEqual({
      event: 'error',
      code: 'ERR_CONFIG',
      message: `store directory ${shared} is writable by others (mode 0777)`,
      hint: `chmod 700 ${shared}, or choose a directory only its owner can write to`,
    })
    expect(await readdir(shared)).toEqual([])
  })

  it('replaces a planted bootstrap-token file (a kept hard link, a symbolic link) and never writes through it', async () => {
    const serverDir = join(dir, 'planted')
    const data = join(serverDir, 'data')
    await mkdir(data, { recursive: true, mode: 0o700 })
    const passphraseFile = await writePassphraseFile(dir, 'the planted token passphrase', 'planted-pass')
    const tokenFile = join(data, 'bootstrap-token')
    // Planted before the first start, mode 0666, with a second name its planter keeps.
    await writeFile(tokenFile, 'planted\n')
    await chmod(tokenFile, 0o666)
    const kept = join(data, 'kept')
    await link(tokenFile, kept)
    const tokenIn = async () => {
      const file = await lstat(tokenFile)
      expect(file.isFile()).toBe(true)
      expect(file.mode & 0o777).toBe(0o600)
      const text = await readFile(tokenFile, 'utf8')
      expect(text).toMatch(/^slb_[A-Za-z0-9_-]{43}\n$/)
      return file.ino
    }
    const first = await startServerProcess(serverDir, passphraseFile)
    try {
      expect(await tokenIn()).not.toBe((await stat(kept)).ino)
      expect(await readFile(kept, 'utf8')).toBe('planted\n')
    } finally {
      expect(await first.stop()).toBe(0)
    }
    // No system_admin yet, so a restart writes a new token: through a symbolic link, it would land elsewhere.
    const elsewhere = join(dir, 'elsewhere')
    await writeFile(elsewhere, 'elsewhere\n')
    await rm(tokenFile)
    await symlink(elsewhere, tokenFile)
    const second = await startServerProcess(serverDir, passphraseFile)
    try {
      await tokenIn()
      expect(await readFile(elsewhere, 'utf8')).toBe('elsewhere\n')
    } finally {
      expect(await second.stop()).toBe(0)
    }
  })

  it('refuses a planted KDF cost under the floor (logN 1) as ERR_STORE_CORRUPT, before any KDF work', async () => {
    const storeFile = join(dir, 'cheap', 'data', 'securelogin.store')
    const passphrase = 'the cheap kdf passphrase'
    const passphraseFile = await writePassphraseFile(dir, passphrase, 'cheap-pass')
    await (await createStore(storeFile, passphrase, { kdf: TEST_KDF })).close()
    const file = await readFile(storeFile)
    file.writeUInt8(1, 11) // logN 1, with the header checksum recomputed as an attacker would
    createHash('sha256').update(file.subarray(0, 128)).digest().copy(file, 128)
    await writeFile(storeFile, file)
    const verify = await runCliToEnd(
      ['store', 'verify', '--store', storeFile, '--passphrase-file', passphraseFile, '--json'],
      '',
    )
    expect(verify.code).toBe(1)
    expect(lastJson(verify.stderr)).toMatchObject({
      code: 'ERR_STORE_CORRUPT',
      message: expect.stringContaining('invalid scrypt parameters (logN 1, r 8, p 1)'),
    })
  })
})
