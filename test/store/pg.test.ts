import { beforeEach, describe, expect, it } from 'vitest'
import { pgStoreExists, readPgStoreHeader, verifyPgStore, type PgStore } from '../../src/store/pg.js'
import { StoreConflict } from '../../src/store/index.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { havePostgres, type TestDatabase } from '../helpers/postgres.js'
import { pgFixture } from './pg-fixture.js'

// The Store interface on PostgreSQL: the same semantics as the journal file (commit all or
// nothing, compare-and-set on versions that never repeat), across separate Store instances with
// separate pools, as separate server processes would have.

const PASSPHRASE = 'pg store test passphrase'
const run = await havePostgres()

const fixture = pgFixture(PASSPHRASE, run)
const { create, openAgain } = fixture
let db: TestDatabase
beforeEach(() => {
  if (run) db = fixture.db()
})

describe.skipIf(!run)('PostgreSQL store: create and open', () => {
  it('creates, reopens with the passphrase, and keeps what was committed', async () => {
    expect(await pgStoreExists(db.url)).toBe(false)
    const store = await create()
    expect(await pgStoreExists(db.url)).toBe(true)
    expect(store.path).toBe(db.url)
    const secret = store.serverSecret()
    expect(secret).toHaveLength(32)
    await store.commit([{ key: 'user/alice', value: { role: 'admin', n: 1 } }])
    await store.close()
    const again = await openAgain()
    expect(await again.get('user/alice')).toEqual({ role: 'admin', n: 1 })
    expect(again.serverSecret().equals(secret)).toBe(true)
    const header = await readPgStoreHeader(db.url)
    expect(header).toMatchObject({ formatVersion: 1, kdf: TEST_KDF })
    expect(header.storeId).toMatch(/^[0-9a-f]{32}$/)
    expect(header.fileSize).toBeGreaterThan(0)
  })

  it('refuses a wrong passphrase with the file store code, and changes nothing', async () => {
    await (await create()).close()
    await expect(openAgain({ passphrase: 'not the passphrase' })).rejects.toMatchObject({
      code: 'ERR_STORE_BAD_PASSPHRASE',
      message: 'wrong passphrase or damaged store',
    })
    expect(await (await openAgain()).has('server/secret')).toBe(true)
  })

  it('refuses to create over an existing store, and to open where there is none', async () => {
    await expect(openAgain()).rejects.toMatchObject({ code: 'ERR_STORE_IO', message: `no store at ${db.url}` })
    await (await create()).close()
    await expect(create()).rejects.toMatchObject({ code: 'ERR_STORE_IO', message: `${db.url} already exists` })
  })

  it('refuses KDF parameters under the floor before any KDF work', async () => {
    await (await create()).close()
    await db.sql(`UPDATE securelogin_header SET kdf = '{"name":"scrypt","logN":4,"r":8,"p":1}'`)
    await expect(openAgain()).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    await expect(readPgStoreHeader(db.url)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
  })
})

describe.skipIf(!run)('PostgreSQL store: reads and commits', () => {
  it('puts, reads, deletes', async () => {
    const store = await create()
    await store.commit([
      { key: 'session/a', value: { n: 1 } },
      { key: 'session/b', value: 'two' },
      { key: 'invite/x', value: [3] },
    ])
    expect(await store.get('session/a')).toEqual({ n: 1 })
    expect(await store.get('session/b')).toBe('two')
    expect(await store.has('invite/x')).toBe(true)
    await store.commit([
      { key: 'session/a', delete: true },
      { key: 'session/c', value: null },
    ])
    expect(await store.get('session/a')).toBeUndefined()
    expect(await store.has('session/a')).toBe(false)
    expect(await store.version('session/a')).toBeNull()
    expect(await store.has('session/c')).toBe(true)
    expect((await store.keys('session/')).sort()).toEqual(['session/b', 'session/c'])
  })

  it('commits with expect: a version, or null for absent; a conflict names the key and writes nothing', async () => {
    const store = await create()
    await store.commit([{ key: 'k/a', value: 1, expect: null }])
    const a = await store.getVersioned<number>('k/a')
    expect(a?.value).toBe(1)
    expect(await store.version('k/a')).toBe(a!.version)

    await store.commit([{ key: 'k/a', value: 2, expect: a!.version }])
    const cases: { name: string; changes: Parameters<PgStore['commit']>[0]; key: string }[] = [
      { name: 'a stale version', changes: [{ key: 'k/a', value: 3, expect: a!.version }], key: 'k/a' },
      { name: 'absent expected, present found', changes: [{ key: 'k/a', value: 3, expect: null }], key: 'k/a' },
      {
        name: 'a version expected, absent found',
        changes: [{ key: 'k/none', value: 3, expect: a!.version }],
        key: 'k/none',
      },
      {
        name: 'a delete with a stale version',
        changes: [{ key: 'k/a', delete: true, expect: a!.version }],
        key: 'k/a',
      },
      { name: 'a delete expecting absent', changes: [{ key: 'k/a', delete: true, expect: null }], key: 'k/a' },
      { name: 'a version no store makes', changes: [{ key: 'k/a', value: 3, expect: '0.12' }], key: 'k/a' },
    ]
    for (const { name, changes, key } of cases) {
      // Earlier changes of the same commit must be undone with it.
      const all = [{ key: 'k/side', value: name }, { key: 'k/gone', delete: true as const }, ...changes]
      await store.commit([{ key: 'k/gone', value: 'still here' }])
      const error = await store.commit(all).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error, name).toBeInstanceOf(StoreConflict)
      expect(error, name).toMatchObject({ code: 'ERR_STORE_CONFLICT', key })
      expect(await store.has('k/side'), name).toBe(false)
      expect(await store.get('k/gone'), name).toBe('still here')
      expect(await store.get('k/a'), name).toBe(2)
    }
    const now = await store.version('k/a')
    await store.commit([{ key: 'k/a', delete: true, expect: now }])
    expect(await store.has('k/a')).toBe(false)
    await store.commit([{ key: 'k/a', delete: true, expect: null }])
  })

  it('never repeats a version: a key deleted and made again does not match its old version', async () => {
    const store = await create()
    await store.commit([{ key: 'k/a', value: 'first' }])
    const first = await store.version('k/a')
    await store.commit([{ key: 'k/a', delete: true }])
    await store.commit([{ key: 'k/a', value: 'first' }])
    const second = await store.version('k/a')
    expect(second).not.toBe(first)
    await expect(store.commit([{ key: 'k/a', value: 'x', expect: first }])).rejects.toBeInstanceOf(StoreConflict)
    const seen = new Set([first, second])
    for (let i = 0; i < 5; i++) {
      await store.commit([{ key: 'k/a', value: 'first' }])
      seen.add(await store.version('k/a'))
    }
    expect(seen.size).toBe(7)
  })

  it('of 50 commits racing on one version from 10 stores with their own pools, exactly one wins', async () => {
    const first = await create()
    await first.commit([{ key: 'race/code', value: { used: false } }])
    const { version } = (await first.getVersioned('race/code'))!
    const stores = [first, ...(await Promise.all(Array.from({ length: 9 }, () => openAgain({ poolSize: 2 }))))]
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        stores[i % stores.length]!.commit([
          { key: 'race/code', value: { used: true, by: i }, expect: version },
          { key: `race/winner/${i}`, value: i },
        ]),
      ),
    )
    const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []))
    expect(won).toHaveLength(1)
    for (const result of results)
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'ERR_STORE_CONFLICT' })
    expect(await first.keys('race/winner/')).toEqual([`race/winner/${won[0]}`])
    expect(await stores[5]!.get('race/code')).toEqual({ used: true, by: won[0] })
  })

  it('of 50 stores racing to make one absent key, exactly one wins (no duplicate-key error)', async () => {
    const first = await create()
    const stores = [first, ...(await Promise.all(Array.from({ length: 9 }, () => openAgain({ poolSize: 2 }))))]
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        stores[i % stores.length]!.commit([{ key: 'user/carol', value: { by: i }, expect: null }]),
      ),
    )
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1)
    for (const result of results)
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'ERR_STORE_CONFLICT' })
  })

  it('lists, tests and counts by a prefix of one segment, two, any other, and none', async () => {
    const store = await create({ countedPrefixes: ['user/', 'role/admin/'] })
    await store.commitEach([
      { key: 'user/alice', value: 1 },
      { key: 'user/bob', value: 2 },
      { key: 'user/albert', value: 3 },
      { key: 'users/x', value: 4 },
      { key: 'role/admin/alice', value: {} },
      { key: 'role/admin/bob', value: {} },
      { key: 'role/system_admin/alice', value: {} },
      { key: 'bootstrap', value: {} },
      { key: 'audit-head', value: {} },
    ])
    const sorted = async (prefix: string) => (await store.keys(prefix)).sort()
    expect(await sorted('user/')).toEqual(['user/albert', 'user/alice', 'user/bob'])
    expect(await sorted('user/al')).toEqual(['user/albert', 'user/alice'])
    expect(await sorted('role/admin/')).toEqual(['role/admin/alice', 'role/admin/bob'])
    expect(await sorted('role/')).toEqual(['role/admin/alice', 'role/admin/bob', 'role/system_admin/alice'])
    expect(await sorted('role/system_admin/al')).toEqual(['role/system_admin/alice'])
    expect(await sorted('boot')).toEqual(['bootstrap'])
    expect(await sorted('nothing/')).toEqual([])
    expect(await sorted('')).toEqual(
      [
        'audit-head',
        'bootstrap',
        'role/admin/alice',
        'role/admin/bob',
        'role/system_admin/alice',
        'server/secret',
        'user/albert',
        'user/alice',
        'user/bob',
        'users/x',
      ].sort(),
    )
    expect(await store.count('user/')).toBe(3)
    expect(await store.count('user/al')).toBe(2)
    expect(await store.count('role/admin/')).toBe(2)
    expect(await store.count('role/')).toBe(3)
    expect(await store.count('')).toBe(10)
    expect(await store.count('u')).toBe(4)
    expect(await store.has('user/alice')).toBe(true)
    expect(await store.has('user/al')).toBe(false)
    const stats = await store.stats()
    expect(stats).toMatchObject({ records: 10, live: 10, dead: 0, counted: { 'user/': 3, 'role/admin/': 2 } })
    expect(await store.verify()).toMatchObject({ records: 10 })
  })
})

describe.skipIf(!run)('PostgreSQL store: verify, bulk and close', () => {
  it('verifyPgStore authenticates every row and hands inspect a view of the state', async () => {
    const store = await create()
    await store.commitEach(
      Array.from({ length: 30 }, (_, i) => ({ key: `audit/${String(i).padStart(12, '0')}`, value: i })),
    )
    const { stats, tornTail, inspected } = await verifyPgStore(db.url, PASSPHRASE, {
      countedPrefixes: ['audit/'],
      inspect: async (view) => ({
        keys: (await view.keys('audit/')).length,
        first: await view.get('audit/000000000000'),
      }),
    })
    expect(tornTail).toBeUndefined()
    expect(stats).toMatchObject({ records: 31, counted: { 'audit/': 30 } })
    expect(inspected).toEqual({ keys: 30, first: 0 })
  })

  it('commitEach refuses expect; a closed store refuses every call', async () => {
    const store = await create()
    await expect(store.commitEach([{ key: 'k/a', value: 1, expect: null }])).rejects.toMatchObject({
      code: 'ERR_INTERNAL',
    })
    await store.close()
    await expect(store.get('k/a')).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await expect(store.commit([{ key: 'k/a', value: 1 }])).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await store.close()
  })
})
