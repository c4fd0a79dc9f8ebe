import { spawnSync } from 'node:child_process'
import { readFile, stat, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  acquireLock,
  createStore,
  StoreConflict,
  openStore,
  readStoreHeader,
  verifyStore,
  DEFAULT_KDF,
} from '../../src/store/index.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { HEADER_BYTES, PASSPHRASE, storeFixture, user, type StoreFixture } from './fixtures.js'
import { addUser, addUsers, getLogin, getUser, hasUser, recordLogin, userCount } from '../helpers/records.js'

let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(() => f.cleanup())

const wrappedKey = async () => (await readFile(f.path)).subarray(68, 128).toString('hex')

describe('store', () => {
  it('keeps users, logins and the server secret across close and open', async () => {
    const store = await f.create()
    const secret = store.serverSecret()
    await addUser(store, user('alice'))
    await addUser(store, user('bob'))
    await recordLogin(store, 'alice', { at: '2026-11-25T10:00:00.000Z', totpStep: 59_000_000 })
    await store.close()
    const again = await f.open()
    expect(await userCount(again)).toBe(2)
    expect(await getUser(again, 'alice')).toEqual(user('alice'))
    expect(await getLogin(again, 'alice')).toEqual({ at: '2026-11-25T10:00:00.000Z', totpStep: 59_000_000 })
    expect(await getLogin(again, 'bob')).toBeUndefined()
    expect(await hasUser(again, 'carol')).toBe(false)
    expect(await getUser(again, 'carol')).toBeUndefined()
    expect(again.serverSecret()).toEqual(secret)
    expect(secret).toHaveLength(32)
  })

  it('reads synchronously, yet a loop over many records lets the event loop turn', async () => {
    const store = await f.create()
    const names = Array.from({ length: 500 }, (_, i) => `u${i}`)
    await addUsers(
      store,
      names.map((name) => user(name)),
    )
    let turnedAt: number | undefined
    let read = 0
    setImmediate(() => (turnedAt = read))
    for (const name of names) {
      expect(await getUser(store, name)).toEqual(user(name))
      read += 1
    }
    // A timer's callback ran part-way through the 500 reads, not only after the last.
    expect(turnedAt).toBeGreaterThan(0)
    expect(turnedAt).toBeLessThan(names.length)
    await store.close()
  })

  it('makes the file mode 0600 in a directory of mode 0700', async () => {
    await f.make([])
    expect((await stat(f.path)).mode & 0o777).toBe(0o600)
    expect((await stat(join(f.dir, 'data'))).mode & 0o777).toBe(0o700)
  })

  it('refuses to create over an existing store', async () => {
    await f.make(['alice'])
    await expect(createStore(f.path, PASSPHRASE, { kdf: TEST_KDF })).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
  })

  it('serialises concurrent appends, and a batch is one group commit', async () => {
    const store = await f.create()
    await Promise.all(Array.from({ length: 50 }, (_, i) => addUser(store, user(`u${i}`))))
    await addUsers(
      store,
      Array.from({ length: 100 }, (_, i) => user(`batch${i}`)),
    )
    await store.close()
    const again = await f.open()
    expect(await userCount(again)).toBe(150)
    expect(await getUser(again, 'batch99')).toEqual(user('batch99'))
    expect(await again.stats()).toMatchObject({
      records: 151,
      entries: 151,
      live: 151,
      dead: 0,
      counted: { 'user/': 150 },
    })
  })

  it('reads the header without the passphrase', async () => {
    await f.make(['alice'])
    const info = await readStoreHeader(f.path)
    expect(info).toMatchObject({ formatVersion: 2, kdf: TEST_KDF })
    expect(info.storeId).toMatch(/^[0-9a-f]{32}$/)
    expect(info.fileSize).toBe((await readFile(f.path)).length)
  })

  it('never writes the passphrase, the TOTP secret, the verifier or a name in clear', async () => {
    await f.make(['alice'])
    const raw = (await readFile(f.path)).toString('latin1')
    for (const secret of [PASSPHRASE, user('alice').totpSecret, user('alice').verifier, 'alice', 'user/'])
      expect(raw).not.toContain(secret)
  })

  it('opens a store made with the default KDF', async () => {
    const store = await createStore(f.path, PASSPHRASE)
    await store.close()
    expect((await readStoreHeader(f.path)).kdf).toEqual(DEFAULT_KDF)
    expect(await userCount(await f.open())).toBe(0)
  })

  it('verify counts users, records, live and dead entries without changing the file', async () => {
    const store = await f.create({ autoCompact: false })
    await addUsers(store, [user('alice'), user('bob')])
    for (let step = 1; step <= 3; step++)
      await recordLogin(store, 'alice', { at: '2026-11-25T10:00:00.000Z', totpStep: step })
    await store.close()
    const before = await f.sha256()
    const { stats, tornTail } = await verifyStore(f.path, PASSPHRASE, { countedPrefixes: ['user/'] })
    expect(tornTail).toBeUndefined()
    // secret, alice, bob, and the last of alice's three logins are live.
    expect(stats).toMatchObject({
      counted: { 'user/': 2 },
      records: 6,
      entries: 6,
      live: 4,
      dead: 2,
      formatVersion: 2,
      kdf: TEST_KDF,
    })
    expect(stats.fileSize).toBe((await readFile(f.path)).length)
    expect(await f.sha256()).toBe(before)
  })
})

describe('one writer: the lock', () => {
  it('keeps a second opener off with ERR_STORE_LOCKED naming the holder pid, and lets go at close', async () => {
    const store = await f.create()
    await expect(openStore(f.path, PASSPHRASE)).rejects.toMatchObject({
      code: 'ERR_STORE_LOCKED',
      message: expect.stringContaining(`in use by process ${process.pid}`),
    })
    await store.close()
    await expect(readdir(join(f.dir, 'data'))).resolves.toEqual(['test.store'])
    await (await f.open()).close()
  })

  it('keeps a store command in another process off, before it asks for a passphrase', async () => {
    const store = await f.create()
    const result = spawnSync(
      process.execPath,
      [
        join(import.meta.dirname, '../../bin/securelogin'),
        'store',
        'compact',
        '--store',
        f.path,
        '--passphrase-file',
        join(f.dir, 'never-read'),
        '--json',
      ],
      { encoding: 'utf8', input: '' },
    )
    expect(result.status).toBe(1)
    expect(JSON.parse(result.stderr.trim())).toMatchObject({
      code: 'ERR_STORE_LOCKED',
      message: expect.stringContaining(`in use by process ${process.pid}`),
    })
    await store.close()
  })

  it('takes over a stale lock left by a killed process, and reports it', async () => {
    await f.make(['alice'])
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' })
    const pid = Number(dead.stdout.trim())
    await writeFile(
      `${f.path}.lock`,
      JSON.stringify({
        pid,
        startTicks: null,
        host: (await import('node:os')).hostname(),
        token: 'stale',
        since: '2026-01-01T00:00:00Z',
      }),
    )
    const reports: Array<Record<string, unknown>> = []
    const store = await f.open({ onReport: (event, fields) => reports.push({ event, ...fields }) })
    expect(reports).toContainEqual({ event: 'store_lock_taken_over', path: `${f.path}.lock`, pid })
    expect(await userCount(store)).toBe(1)
  })

  it('does not mistake a new process that reuses the pid for the holder', async () => {
    await f.make([])
    // Our own pid, but a start time that is not ours: the process that took the lock is gone.
    await writeFile(
      `${f.path}.lock`,
      JSON.stringify({
        pid: process.pid,
        startTicks: 1,
        host: (await import('node:os')).hostname(),
        token: 'old',
        since: '2026-01-01T00:00:00Z',
      }),
    )
    await (await f.open()).close()
  })

  it('lets exactly one of two racing openers take a stale lock', async () => {
    await f.make([])
    await writeFile(`${f.path}.lock`, '') // empty: a crash between creating and writing it
    const old = new Date(Date.now() - 60_000)
    await (await import('node:fs/promises')).utimes(`${f.path}.lock`, old, old)
    const results = await Promise.allSettled([acquireLock(f.path), acquireLock(f.path), acquireLock(f.path)])
    const won = results.filter((r) => r.status === 'fulfilled')
    expect(won).toHaveLength(1)
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(
      ['ERR_STORE_LOCKED', 'ERR_STORE_LOCKED'],
    )
    await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release()
  })
})

describe('compaction', () => {
  it('keeps exactly the live state, drops dead entries, rotates the data key, and shrinks the file', async () => {
    const store = await f.create({ autoCompact: false })
    const secret = store.serverSecret()
    for (let i = 0; i < 20; i++) await addUser(store, user(`u${i}`))
    for (let step = 1; step <= 30; step++)
      await recordLogin(store, `u${step % 3}`, { at: '2026-11-25T10:00:00.000Z', totpStep: step })
    const keyBefore = await wrappedKey()
    const sizeBefore = (await stat(f.path)).size
    const result = await store.compact()
    expect(result).toMatchObject({ recordsBefore: 51, bytesBefore: sizeBefore })
    expect(result.recordsAfter).toBeLessThan(5) // 24 live entries packed into 32 KiB records
    expect(await store.stats()).toMatchObject({ entries: 24, live: 24, dead: 0, counted: { 'user/': 20 } })
    expect(await wrappedKey()).not.toBe(keyBefore)
    expect((await stat(f.path)).size).toBeLessThan(sizeBefore)
    expect(await getLogin(store, 'u0')).toEqual({ at: '2026-11-25T10:00:00.000Z', totpStep: 30 })
    await addUser(store, user('after'))
    await store.close()
    const again = await f.open()
    expect(again.serverSecret()).toEqual(secret)
    expect(await userCount(again)).toBe(21)
    for (let i = 0; i < 20; i++) expect(await getUser(again, `u${i}`)).toEqual(user(`u${i}`))
    expect(await getLogin(again, 'u1')).toEqual({ at: '2026-11-25T10:00:00.000Z', totpStep: 28 })
    expect(await getLogin(again, 'u2')).toEqual({ at: '2026-11-25T10:00:00.000Z', totpStep: 29 })
  })

  it('loses nothing appended while it runs', async () => {
    const store = await f.create({ autoCompact: false })
    await addUsers(
      store,
      Array.from({ length: 2000 }, (_, i) => user(`old${i}`)),
    )
    const during = Promise.all(Array.from({ length: 40 }, (_, i) => addUser(store, user(`new${i}`))))
    const logins = Promise.all(
      Array.from({ length: 40 }, (_, i) => recordLogin(store, `old${i}`, { at: 'x', totpStep: i })),
    )
    await Promise.all([store.compact(), during, logins])
    expect(await userCount(store)).toBe(2040)
    await store.close()
    const again = await f.open()
    expect(await userCount(again)).toBe(2040)
    for (let i = 0; i < 40; i++) {
      expect(await getUser(again, `new${i}`)).toEqual(user(`new${i}`))
      expect(await getLogin(again, `old${i}`)).toEqual({ at: 'x', totpStep: i })
    }
  })

  it('runs by itself once dead entries outnumber live ones, and says so', async () => {
    const reports: Array<Record<string, unknown>> = []
    const store = await f.create({ onReport: (event, fields) => reports.push({ event, ...fields }) })
    await addUser(store, user('alice'))
    for (let step = 1; step <= 4; step++) await recordLogin(store, 'alice', { at: 'x', totpStep: step })
    // live: secret, alice, her login (3); dead after the 4th login: 3 logins; the 5th tips it.
    expect(reports.filter((r) => r.event === 'store_compacted')).toHaveLength(0)
    await recordLogin(store, 'alice', { at: 'x', totpStep: 5 })
    await vi.waitFor(() => expect(reports.filter((r) => r.event === 'store_compacted')).toHaveLength(1), {
      timeout: 30_000,
    })
    expect(reports.find((r) => r.event === 'store_compacted')).toMatchObject({
      reason: 'dead entries outnumber live ones',
    })
    expect(await store.stats()).toMatchObject({ live: 3, dead: 0 })
  })

  it('removes the temporary file a crash left behind', async () => {
    await f.make(['alice'])
    const leftover = join(f.dir, 'data', '.test.store.compact.999.abcd.tmp')
    await writeFile(leftover, 'half a compaction')
    const reports: Array<Record<string, unknown>> = []
    await f.open({ onReport: (event, fields) => reports.push({ event, ...fields }) })
    expect(reports).toContainEqual({ event: 'store_leftover_removed', path: leftover })
    await expect(stat(leftover)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('nonces: no data key seals more records than its limit', () => {
  it('rotates the data key by compaction before the limit, and every record stays readable', async () => {
    const LIMIT = 8
    const store = await f.create({ maxRecordsPerKey: LIMIT, autoCompact: false })
    const keys = new Set([await wrappedKey()])
    for (let i = 0; i < 40; i++) {
      await addUser(store, user(`u${i}`))
      await recordLogin(store, `u${i}`, { at: 'x', totpStep: i })
      // Every record in the file is sealed under the one data key in its header.
      expect((await f.recordOffsets()).length).toBeLessThanOrEqual(LIMIT)
      keys.add(await wrappedKey())
    }
    expect(keys.size).toBeGreaterThan(5)
    await store.close()
    const again = await f.open({ maxRecordsPerKey: LIMIT })
    expect(await userCount(again)).toBe(40)
    for (let i = 0; i < 40; i++) expect(await getLogin(again, `u${i}`)).toEqual({ at: 'x', totpStep: i })
  })
})

describe('rekey', () => {
  it('re-wraps the data key only: the old passphrase stops working, the new one opens everything', async () => {
    await f.make(['alice', 'bob'])
    const recordsBefore = (await readFile(f.path)).subarray(HEADER_BYTES)
    const store = await f.open()
    await store.rekey('a brand new passphrase', TEST_KDF)
    await store.close()
    expect((await readFile(f.path)).subarray(HEADER_BYTES)).toEqual(recordsBefore)
    await expect(openStore(f.path, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_BAD_PASSPHRASE' })
    const again = await f.open({ passphrase: 'a brand new passphrase' })
    expect(await getUser(again, 'bob')).toEqual(user('bob'))
    await addUser(again, user('carol'))
    expect(await userCount(again)).toBe(3)
    expect((await stat(f.path)).mode & 0o777).toBe(0o600)
  })
})

describe('the KDF', () => {
  it('runs off the event loop: timers keep firing while the default scrypt works', async () => {
    const { deriveKek } = await import('../../src/store/kdf.js')
    let ticks = 0
    const timer = setInterval(() => (ticks += 1), 5)
    const started = performance.now()
    await deriveKek('a passphrase', Buffer.alloc(32, 1), DEFAULT_KDF)
    const elapsed = performance.now() - started
    clearInterval(timer)
    // A blocked loop would fire the timer at most once, after the KDF; a free one fires it all
    // along (how often depends on the machine's load, so only "more than once" is checked).
    expect(ticks).toBeGreaterThanOrEqual(2)
    console.log(
      `default KDF (scrypt logN ${DEFAULT_KDF.logN}): ${Math.round(elapsed)} ms, ${ticks} timer ticks meanwhile`,
    )
  })
})

describe('compare-and-set', () => {
  it('commits only while every named key is at the version it expects; a lost race writes nothing', async () => {
    const store = await f.create({ autoCompact: false })
    expect(await store.version('k/a')).toBeNull()
    await store.commit([{ key: 'k/a', value: 1, expect: null }])
    const read = await store.getVersioned<number>('k/a')
    expect(read?.value).toBe(1)
    expect(await store.version('k/a')).toBe(read!.version)
    // Absent was the expectation: the key exists now.
    await expect(store.commit([{ key: 'k/a', value: 9, expect: null }])).rejects.toMatchObject({
      code: 'ERR_STORE_CONFLICT',
      key: 'k/a',
    })
    await expect(store.commit([{ key: 'k/a', value: 2, expect: read!.version }])).resolves.toBeUndefined()
    expect(await store.version('k/a')).not.toBe(read!.version)
    // The old version no longer matches, and nothing of a conflicting commit is written.
    const records = (await store.stats()).records
    await expect(
      store.commit([
        { key: 'k/b', value: 'not written' },
        { key: 'k/a', value: 3, expect: read!.version },
      ]),
    ).rejects.toBeInstanceOf(StoreConflict)
    expect(await store.has('k/b')).toBe(false)
    expect(await store.get('k/a')).toBe(2)
    expect((await store.stats()).records).toBe(records)
    await store.close()
  })

  it('lets exactly one of many commits racing on one version win, however they interleave', async () => {
    const store = await f.create({ autoCompact: false })
    await store.commit([{ key: 'k/used', value: 0 }])
    const version = await store.version('k/used')
    // All sent in the same tick, before any is written: the check runs in the append queue.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.commit([{ key: 'k/used', value: i + 1, expect: version }])),
    )
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i + 1] : []))
    expect(won).toHaveLength(1)
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(
      Array(9).fill('ERR_STORE_CONFLICT'),
    )
    expect(await store.get('k/used')).toBe(won[0])
    await store.close()
  })

  it('does not match a version read before a compaction: the caller reads again (never a stale match)', async () => {
    const store = await f.create({ autoCompact: false })
    for (let i = 0; i < 50; i++) await store.commit([{ key: 'k/churn', value: i }])
    await store.commit([{ key: 'k/still', value: 'same' }])
    const before = await store.version('k/still')
    await store.compact()
    // A false conflict (read again, retry) is allowed; a false match would let a stale write in.
    await expect(store.commit([{ key: 'k/still', value: 'x', expect: before }])).rejects.toMatchObject({
      code: 'ERR_STORE_CONFLICT',
    })
    const now = await store.version('k/still')
    await store.commit([{ key: 'k/still', value: 'x', expect: now }])
    expect(await store.get('k/still')).toBe('x')
    await store.close()
  })

  it('refuses an expectation in commitEach, which is not atomic', async () => {
    const store = await f.create()
    await expect(store.commitEach([{ key: 'k/a', value: 1, expect: null }])).rejects.toMatchObject({
      code: 'ERR_INTERNAL',
    })
    expect(await store.has('k/a')).toBe(false)
    await store.close()
  })
})
