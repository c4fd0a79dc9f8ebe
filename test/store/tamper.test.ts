import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFile, chmod, chown, mkdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createStore, openStore, readStoreHeader, verifyStore } from '../../src/store/index.js'
import { BIN } from '../helpers/env.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { PASSPHRASE, storeFixture, user, type StoreFixture } from './fixtures.js'
import { USERS_PREFIX, addUser, getUser, hasUser, userCount } from '../helpers/records.js'

// The tamper table of issue 4: each row damages a store in one way, expects one error code, and
// proves the file is byte-for-byte what it was (except the torn tail, which is recovered).

let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(() => f.cleanup())

const flip = async (offset: number) => {
  const file = await readFile(f.path)
  file[offset]! ^= 0x01
  await writeFile(f.path, file)
}
/** Recomputes the header checksum, as an attacker who edits the header would. */
const fixChecksum = async () => {
  const file = await readFile(f.path)
  createHash('sha256').update(file.subarray(0, 128)).digest().copy(file, 128)
  await writeFile(f.path, file)
}

/** Plants scrypt logN and r in the header, as an attacker would (the header is plaintext). */
const plantKdf = async (logN: number, r: number) => {
  const file = await readFile(f.path)
  file.writeUInt8(logN, 11)
  file.writeUInt32BE(r, 12)
  await writeFile(f.path, file)
  await fixChecksum()
}

describe('a damaged or foreign store is refused and left byte-for-byte as it was', () => {
  it.each([
    ['a wrong passphrase', async () => {}, 'not the passphrase', 'ERR_STORE_BAD_PASSPHRASE'],
    ['a flipped byte in the header (the salt)', () => flip(30), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['a flipped byte in the wrapped key', () => flip(100), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    [
      'a flipped byte in the wrapped key, checksum recomputed',
      async () => {
        await flip(100)
        await fixChecksum()
      },
      PASSPHRASE,
      'ERR_STORE_BAD_PASSPHRASE',
    ],
    [
      'a flipped byte in the header, checksum recomputed',
      async () => {
        await flip(30)
        await fixChecksum()
      },
      PASSPHRASE,
      'ERR_STORE_BAD_PASSPHRASE',
    ],
    [
      'a flipped byte in a middle record',
      async () => flip((await f.recordOffsets())[2]! + 20),
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      "a flipped bit in a middle record's length",
      async () => flip((await f.recordOffsets())[2]! + 2),
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      'two records swapped',
      async () => {
        const file = await readFile(f.path)
        const [, a, b, c] = await f.recordOffsets()
        await writeFile(
          f.path,
          Buffer.concat([file.subarray(0, a), file.subarray(b, c), file.subarray(a, b), file.subarray(c)]),
        )
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      'a record duplicated',
      async () => {
        const file = await readFile(f.path)
        const [, a, b] = await f.recordOffsets()
        await writeFile(f.path, Buffer.concat([file.subarray(0, b), file.subarray(a, b), file.subarray(b)]))
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      'the last record duplicated',
      async () => {
        const file = await readFile(f.path)
        const last = (await f.recordOffsets()).at(-1)!
        await appendFile(f.path, file.subarray(last))
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      'a record dropped from the middle',
      async () => {
        const file = await readFile(f.path)
        const [, a, b] = await f.recordOffsets()
        await writeFile(f.path, Buffer.concat([file.subarray(0, a), file.subarray(b)]))
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    ['the file truncated inside the header', () => truncate(f.path, 90), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    [
      'an unknown format version',
      async () => {
        const file = await readFile(f.path)
        file.writeUInt16BE(9, 8)
        await writeFile(f.path, file)
        await fixChecksum()
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    [
      'the development format version 1',
      async () => {
        const file = await readFile(f.path)
        file.writeUInt16BE(1, 8)
        await writeFile(f.path, file)
      },
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    ['a KDF cost under the floor (logN 1), checksum recomputed', () => plantKdf(1, 8), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    [
      'logN 17 with r 1, which scrypt itself refuses (N < 2^(16 r)), checksum recomputed',
      () => plantKdf(17, 1),
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
    ['an empty file', () => writeFile(f.path, ''), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    [
      'not a store at all',
      () => writeFile(f.path, 'hello, this is a text file and not a securelogin store at all\n'.repeat(4)),
      PASSPHRASE,
      'ERR_STORE_CORRUPT',
    ],
  ])('%s', async (_name, damage, passphrase, code) => {
    await f.make(['alice', 'bob', 'carol'])
    await damage()
    const before = await f.sha256()
    await expect(openStore(f.path, passphrase)).rejects.toMatchObject({ code })
    await expect(verifyStore(f.path, passphrase)).rejects.toMatchObject({ code })
    expect(await f.sha256()).toBe(before)
  })

  it('names the index and offset of a record that fails to authenticate', async () => {
    await f.make(['alice', 'bob', 'carol'])
    const offset = (await f.recordOffsets())[2]!
    await flip(offset + 30)
    await expect(openStore(f.path, PASSPHRASE)).rejects.toThrow(
      `record 2 at offset ${offset} of ${f.path} fails to authenticate`,
    )
  })

  it('a KDF cost above the cap (ERR_STORE_KDF_LIMIT), refused before any KDF work', async () => {
    await f.make(['alice'])
    const file = await readFile(f.path)
    file.writeUInt8(30, 11) // logN 30: 128 GiB of scrypt memory
    await writeFile(f.path, file)
    await fixChecksum()
    const before = await f.sha256()
    // ERR_STORE_KDF_LIMIT comes from the parameter check alone (src/store/kdf.ts), which runs
    // before the KDF; scrypt itself would fail with another code. No timing: that depends on the machine.
    await expect(openStore(f.path, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_KDF_LIMIT' })
    expect(await f.sha256()).toBe(before)
  })

  it('a KDF cost under the floor is refused by the header reader too (store info), with no passphrase', async () => {
    await f.make([])
    await plantKdf(1, 8)
    await expect(readStoreHeader(f.path)).rejects.toMatchObject({
      code: 'ERR_STORE_CORRUPT',
      message: expect.stringContaining('invalid scrypt parameters (logN 1, r 8, p 1)'),
    })
  })

  it('a record from another store spliced in at the same index', async () => {
    await f.make([])
    const other = join(f.dir, 'other.store')
    const foreign = await createStore(other, PASSPHRASE, { kdf: TEST_KDF })
    await addUser(foreign, user('mallory'))
    await foreign.close()
    const otherFile = await readFile(other)
    // mallory's record is record 1 of the other store; here it would be record 1 too.
    const [, mallory] = await f.recordOffsets(other)
    await appendFile(f.path, otherFile.subarray(mallory))
    const before = await f.sha256()
    await expect(openStore(f.path, PASSPHRASE)).rejects.toThrow(/record 1 at offset \d+ .* fails to authenticate/)
    expect(await f.sha256()).toBe(before)
  })

  it('a directory instead of a file (ERR_STORE_IO)', async () => {
    await mkdir(f.path, { recursive: true })
    await expect(openStore(f.path, PASSPHRASE)).rejects.toMatchObject({
      code: 'ERR_STORE_IO',
      message: expect.stringContaining('is a directory'),
    })
  })

  it('no read permission (ERR_STORE_IO), checked as an unprivileged user', async () => {
    await f.make(['alice'])
    await chmod(f.path, 0o000)
    const before = await f.sha256()
    if (process.getuid?.() === 0) {
      // root reads anything: run the real CLI as nobody, in directories of its own (a directory
      // others may write to is refused) holding a store it may not read.
      await chown(f.dir, 65534, 65534)
      await chown(join(f.dir, 'data'), 65534, 65534)
      const passphraseFile = join(f.dir, 'passphrase')
      await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 })
      await chown(passphraseFile, 65534, 65534)
      const result = spawnSync(
        process.execPath,
        [BIN, 'store', 'verify', '--store', f.path, '--passphrase-file', passphraseFile, '--json'],
        { uid: 65534, gid: 65534, encoding: 'utf8' },
      )
      expect(result.status).toBe(1)
      expect(JSON.parse(result.stderr.trim().split('\n').at(-1)!)).toMatchObject({
        event: 'error',
        code: 'ERR_STORE_IO',
        message: `no permission to read ${f.path} (EACCES)`,
      })
    } else {
      await expect(openStore(f.path, PASSPHRASE)).rejects.toMatchObject({
        code: 'ERR_STORE_IO',
        message: `no permission to read ${f.path} (EACCES)`,
      })
    }
    expect(await f.sha256()).toBe(before)
  })
})

describe('a torn last record (a crash mid-append)', () => {
  it('is reported with its offset and length, cut off, and everything before it kept', async () => {
    await f.make(['alice', 'bob', 'carol'])
    const last = (await f.recordOffsets()).at(-1)!
    const size = (await readFile(f.path)).length
    await truncate(f.path, last + 40) // carol's record, cut inside
    const reports: unknown[] = []
    const store = await f.open({ onReport: (event, fields) => reports.push({ event, ...fields }) })
    expect(reports).toEqual([{ event: 'store_torn_tail', path: f.path, offset: last, length: 40, cut: true }])
    expect((await readFile(f.path)).length).toBe(last)
    expect(await userCount(store)).toBe(2)
    expect(await getUser(store, 'bob')).toEqual(user('bob'))
    expect(await hasUser(store, 'carol')).toBe(false)
    await addUser(store, user('carol'))
    await store.close()
    expect(await userCount(await f.open())).toBe(3)
    expect(size).toBeGreaterThan(last + 40)
  })

  it('is only reported by verify, which changes nothing', async () => {
    await f.make(['alice', 'bob'])
    const last = (await f.recordOffsets()).at(-1)!
    await truncate(f.path, last + 3) // inside the length prefix
    const before = await f.sha256()
    const { stats, tornTail } = await verifyStore(f.path, PASSPHRASE, { countedPrefixes: [USERS_PREFIX] })
    expect(tornTail).toEqual({ offset: last, length: 3 })
    expect(stats.counted).toEqual({ [USERS_PREFIX]: 1 })
    expect(await f.sha256()).toBe(before)
  })

  it('space a crash allocated but never wrote (zeros) is a torn tail too', async () => {
    await f.make(['alice'])
    const size = (await readFile(f.path)).length
    await appendFile(f.path, Buffer.alloc(4096))
    const reports: Array<{ event: string }> = []
    const store = await f.open({ onReport: (event, fields) => reports.push({ event, ...fields }) })
    expect(reports).toMatchObject([{ event: 'store_torn_tail', offset: size, length: 4096 }])
    expect(await userCount(store)).toBe(1)
  })
})
