import { createHash } from 'node:crypto'
import { readFile, writeFile, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createStore, openStore, readStoreHeader, DEFAULT_KDF, type Store, type UserRecord } from '../../src/store/index.js'
import { makeTempDir } from '../helpers/env.js'
import { TEST_KDF } from '../helpers/in-process-server.js'

const PASSPHRASE = 'store test passphrase'
const HEADER_BYTES = 160

let dir: string
let remove: () => Promise<void>
let path: string
const open: Store[] = []

beforeEach(async () => {
  ;({ dir, remove } = await makeTempDir('store'))
  path = join(dir, 'data', 'test.store')
})
afterEach(async () => {
  for (const store of open.splice(0)) await store.close().catch(() => {})
  await remove()
})

const user = (username: string): UserRecord => ({
  username,
  salt: 'ab'.repeat(32),
  verifier: 'cd'.repeat(256),
  totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ',
  role: 'regular_user',
  createdAt: '2026-11-24T12:00:00.000Z',
})

async function made(users: string[]): Promise<void> {
  const store = await createStore(path, PASSPHRASE, { kdf: TEST_KDF })
  for (const name of users) await store.addUser(user(name))
  await store.close()
}

async function reopen(passphrase = PASSPHRASE, reports: unknown[] = []): Promise<Store> {
  const store = await openStore(path, passphrase, { onReport: (event, fields) => reports.push({ event, ...fields }) })
  open.push(store)
  return store
}

const sha256 = async () => createHash('sha256').update(await readFile(path)).digest('hex')

/** Offsets of each record (its length prefix) after the header. */
async function recordOffsets(): Promise<number[]> {
  const file = await readFile(path)
  const offsets: number[] = []
  for (let at = HEADER_BYTES; at < file.length; at += 4 + file.readUInt32BE(at)) offsets.push(at)
  return offsets
}

describe('store', () => {
  it('keeps users and the server secret across close and open', async () => {
    const store = await createStore(path, PASSPHRASE, { kdf: TEST_KDF })
    const secret = store.serverSecret()
    await store.addUser(user('alice'))
    await store.addUser(user('bob'))
    await store.close()
    const again = await reopen()
    expect(again.userCount()).toBe(2)
    expect(again.getUser('alice')).toEqual(user('alice'))
    expect(again.hasUser('carol')).toBe(false)
    expect(again.serverSecret()).toEqual(secret)
    expect(secret).toHaveLength(32)
  })

  it('makes the file mode 0600', async () => {
    await made([])
    const { stat } = await import('node:fs/promises')
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('refuses a taken name (ERR_USERNAME_TAKEN) and to create over an existing store', async () => {
    await made(['alice'])
    const store = await reopen()
    await expect(store.addUser(user('alice'))).rejects.toMatchObject({ code: 'ERR_USERNAME_TAKEN' })
    await expect(createStore(path, PASSPHRASE, { kdf: TEST_KDF })).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
  })

  it('serialises concurrent appends', async () => {
    await made([])
    const store = await reopen()
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.addUser(user(`u${i}`))))
    await store.close()
    expect((await reopen()).userCount()).toBe(50)
  })

  it('reads the header without the passphrase', async () => {
    await made(['alice'])
    const info = await readStoreHeader(path)
    expect(info).toMatchObject({ formatVersion: 1, kdf: TEST_KDF })
    expect(info.storeId).toMatch(/^[0-9a-f]{32}$/)
    expect(info.fileSize).toBe((await readFile(path)).length)
  })

  it('never writes the passphrase, the TOTP secret or the verifier in clear', async () => {
    await made(['alice'])
    const raw = (await readFile(path)).toString('latin1')
    for (const secret of [PASSPHRASE, user('alice').totpSecret, user('alice').verifier, 'alice']) expect(raw).not.toContain(secret)
  })

  it('opens a store made with the default KDF', async () => {
    const store = await createStore(path, PASSPHRASE)
    await store.close()
    expect((await readStoreHeader(path)).kdf).toEqual(DEFAULT_KDF)
    expect((await reopen()).userCount()).toBe(0)
  })
})

describe('a damaged or foreign store is refused and left byte-for-byte as it was', () => {
  const flip = async (offset: number) => {
    const file = await readFile(path)
    file[offset]! ^= 0x01
    await writeFile(path, file)
  }

  it.each([
    ['a wrong passphrase', async () => {}, 'not the passphrase', 'ERR_STORE_BAD_PASSPHRASE'],
    ['a flipped byte in the header', () => flip(30), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['a flipped byte in the wrapped key', () => flip(130), PASSPHRASE, 'ERR_STORE_BAD_PASSPHRASE'],
    ['a flipped byte in a middle record', async () => flip((await recordOffsets())[1]! + 20), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['two records swapped', async () => {
      const file = await readFile(path)
      const [, a, b, c] = await recordOffsets()
      await writeFile(path, Buffer.concat([file.subarray(0, a), file.subarray(b, c), file.subarray(a, b), file.subarray(c)]))
    }, PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['a record duplicated', async () => {
      const file = await readFile(path)
      const [, a, b] = await recordOffsets()
      await writeFile(path, Buffer.concat([file.subarray(0, b), file.subarray(a, b), file.subarray(b)]))
    }, PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['the file truncated inside the header', async () => writeFile(path, (await readFile(path)).subarray(0, 90)), PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['an unknown format version', async () => {
      const file = await readFile(path)
      file.writeUInt16BE(9, 8)
      await writeFile(path, file)
    }, PASSPHRASE, 'ERR_STORE_CORRUPT'],
    ['an empty file', async () => writeFile(path, ''), PASSPHRASE, 'ERR_STORE_CORRUPT'],
  ])('%s', async (_name, damage, passphrase, code) => {
    await made(['alice', 'bob', 'carol'])
    await damage()
    const before = await sha256()
    await expect(openStore(path, passphrase)).rejects.toMatchObject({ code })
    expect(await sha256()).toBe(before)
  })

  it('a KDF cost above the cap (ERR_STORE_KDF_LIMIT), refused before any KDF work', async () => {
    await made(['alice'])
    const file = await readFile(path)
    file.writeUInt8(30, 11) // logN 30: 128 GiB of scrypt memory
    // Keep the header checksum valid, as a deliberate attacker would.
    createHash('sha256').update(file.subarray(0, 68)).digest().copy(file, 68)
    await writeFile(path, file)
    const before = await sha256()
    const started = performance.now()
    await expect(openStore(path, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_KDF_LIMIT' })
    expect(performance.now() - started).toBeLessThan(1000)
    expect(await sha256()).toBe(before)
  })

  it('a record from another store spliced in', async () => {
    await made(['alice'])
    const other = join(dir, 'other.store')
    const foreign = await createStore(other, PASSPHRASE, { kdf: TEST_KDF })
    await foreign.addUser(user('mallory'))
    await foreign.close()
    const otherFile = await readFile(other)
    const mine = await readFile(path)
    // mallory's record is the second record of the other store, at the same index as here.
    const secretLength = otherFile.readUInt32BE(HEADER_BYTES)
    await writeFile(path, Buffer.concat([mine, otherFile.subarray(HEADER_BYTES + 4 + secretLength)]))
    const before = await sha256()
    await expect(openStore(path, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    expect(await sha256()).toBe(before)
  })

  it.each([
    ['a directory instead of a file', async () => dir],
    ['a missing file', async () => join(dir, 'nothing-here.store')],
  ])('%s (ERR_STORE_IO)', async (_name, target) => {
    await expect(openStore(await target(), PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
  })
})

describe('a torn last record (a crash mid-append)', () => {
  it('is reported with its offset and length, cut off, and everything before it kept', async () => {
    await made(['alice', 'bob'])
    const whole = (await readFile(path)).length
    await appendFile(path, Buffer.from([0, 0, 1, 0, 9, 9, 9])) // a length prefix of 256 and 3 bytes of body
    const reports: unknown[] = []
    const store = await reopen(PASSPHRASE, reports)
    expect(reports).toEqual([{ event: 'store_torn_tail', offset: whole, length: 7 }])
    expect(store.userCount()).toBe(2)
    await store.addUser(user('carol'))
    await store.close()
    expect((await reopen()).userCount()).toBe(3)
  })
})
