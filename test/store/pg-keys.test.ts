import { beforeEach, describe, expect, it, vi } from 'vitest'
import { openPgStore } from '../../src/store/pg.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { havePostgres, type TestDatabase } from '../helpers/postgres.js'
import { pgFixture } from './pg-fixture.js'

// Keys online and faults: a rekey, a data-key rotation while another process writes, and a
// database connection cut under a running store.

const PASSPHRASE = 'pg keys test passphrase'
const NEW_PASSPHRASE = 'pg keys test passphrase, the new one'
const run = await havePostgres()

const fixture = pgFixture(PASSPHRASE, run)
const { create, openAgain } = fixture
let db: TestDatabase
beforeEach(() => {
  if (run) db = fixture.db()
})

const keyring = () =>
  db.sql<{ key_version: number; retired: boolean }>(
    'SELECT key_version, retired FROM securelogin_keyring ORDER BY key_version',
  )
const rowKeys = async () =>
  (await db.sql<{ key_version: number }>('SELECT DISTINCT key_version FROM securelogin_kv ORDER BY 1')).map(
    (row) => row.key_version,
  )

describe.skipIf(!run)('PostgreSQL store: rekey', () => {
  it('the old passphrase stops working, the new one opens, and a store already open goes on', async () => {
    const first = await create()
    const other = await openAgain()
    await first.commit([{ key: 'k/a', value: 1 }])
    await first.rekey(NEW_PASSPHRASE, { ...TEST_KDF, logN: 11 })
    await expect(openAgain()).rejects.toMatchObject({ code: 'ERR_STORE_BAD_PASSPHRASE' })
    const fresh = await openAgain({ passphrase: NEW_PASSPHRASE })
    expect((await fresh.stats()).kdf).toEqual({ ...TEST_KDF, logN: 11 })
    expect(await fresh.get('k/a')).toBe(1)
    await other.commit([{ key: 'k/b', value: 2 }])
    expect(await other.get('k/a')).toBe(1)
    expect(await fresh.get('k/b')).toBe(2)
    // The other process read the header before the rekey: its own rekey would undo this one.
    await expect(other.rekey('a third passphrase', TEST_KDF)).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT' })
    await expect(openAgain({ passphrase: 'a third passphrase' })).rejects.toMatchObject({
      code: 'ERR_STORE_BAD_PASSPHRASE',
    })
  })
})

describe.skipIf(!run)('PostgreSQL store: data-key rotation', () => {
  it('re-seals every row while another store writes: nothing lost, all readable, the old key retired', async () => {
    const rotator = await create({ rotateBatch: 7 })
    await rotator.commitEach(Array.from({ length: 120 }, (_, i) => ({ key: `fill/${i}`, value: { i, round: 0 } })))
    const writer = await openAgain({ poolSize: 2 })
    const written = new Map<string, unknown>()
    let rotated = false
    let afterRotation = 0
    const writing = (async () => {
      for (let n = 0; afterRotation < 5 && n < 2000; n++) {
        const value = { i: n % 120, round: n }
        await writer.commit([
          { key: `fill/${n % 120}`, value },
          { key: `new/${n}`, value: n, expect: null },
        ])
        written.set(`fill/${n % 120}`, value)
        written.set(`new/${n}`, n)
        if (rotated) afterRotation += 1
      }
    })()
    const result = await rotator.rotateDataKey()
    rotated = true
    await writing
    expect(result).toMatchObject({ keyVersion: 2, retired: [1] })
    expect(afterRotation).toBe(5)
    expect(await keyring()).toEqual([
      { key_version: 1, retired: true },
      { key_version: 2, retired: false },
    ])
    expect(await rowKeys()).toEqual([2])
    const reader = await openAgain()
    for (const [key, value] of written) expect(await reader.get(key), key).toEqual(value)
    expect(await reader.count('fill/')).toBe(120)
    const made = [...written.keys()].filter((key) => key.startsWith('new/')).length
    expect((await reader.verify()).records).toBe(1 + 120 + made)
    // The writer, opened before the rotation, reads rows under the new key and commits under it.
    expect(await writer.get('fill/0')).toEqual(written.get('fill/0') ?? { i: 0, round: 0 })
    await writer.commit([{ key: 'after/1', value: 1 }])
    expect(await rowKeys()).toEqual([2])
  })

  it('a store that missed a rotation reloads the keyring when its commit is refused, and retries', async () => {
    const first = await create()
    const stale = await openAgain()
    await first.commit([{ key: 'k/a', value: 1 }])
    await first.rotateDataKey()
    await first.rotateDataKey()
    await stale.commit([{ key: 'k/b', value: 2, expect: null }])
    expect(await rowKeys()).toEqual([3])
    expect(await stale.get('k/a')).toBe(1)
    expect(await keyring()).toEqual([
      { key_version: 1, retired: true },
      { key_version: 2, retired: true },
      { key_version: 3, retired: false },
    ])
  })

  it('rotates by itself once a data key has sealed its share of puts; compact rotates too', async () => {
    const reports: string[] = []
    const store = await create({ maxPutsPerKey: 20, onReport: (event) => reports.push(event) })
    for (let i = 0; i < 25; i++) await store.commit([{ key: `k/${i}`, value: i }])
    await vi.waitFor(async () =>
      expect(await keyring()).toEqual(expect.arrayContaining([{ key_version: 1, retired: true }])),
    )
    expect(reports).toContain('store_data_key_rotated')
    const compacted = await store.compact()
    expect(compacted).toMatchObject({ recordsBefore: 26, recordsAfter: 26 })
    expect((await keyring()).at(-1)).toEqual({ key_version: 3, retired: false })
    expect(await rowKeys()).toEqual([3])
  })
})

describe.skipIf(!run)('PostgreSQL store: the database goes away', () => {
  it('connections cut mid-commit: a call may fail ERR_STORE_UNAVAILABLE, later calls succeed without reopening', async () => {
    const reports: string[] = []
    const store = await create({ poolSize: 3, onReport: (event) => reports.push(event) })
    await Promise.all(Array.from({ length: 6 }, (_, i) => store.commit([{ key: `k/${i}`, value: i }])))
    const inFlight = Array.from({ length: 30 }, (_, i) =>
      store.commit([{ key: `during/${i}`, value: i }]).then(
        () => ({ i, ok: true as const }),
        (error: unknown) => ({ i, ok: false as const, error }),
      ),
    )
    const killed = await db.sql(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [db.name],
    )
    expect(killed.length).toBeGreaterThan(0)
    const outcomes = await Promise.all(inFlight)
    const failures: unknown[] = outcomes.flatMap((outcome) => (outcome.ok ? [] : [outcome.error]))
    let ok = false
    for (let attempt = 0; attempt < 20 && !ok; attempt++) {
      try {
        await store.commit([{ key: 'k/after', value: attempt }])
        ok = true
      } catch (error) {
        failures.push(error)
      }
    }
    expect(ok).toBe(true)
    for (const failure of failures)
      expect(failure).toMatchObject({
        code: 'ERR_STORE_UNAVAILABLE',
        hint: 'retry in a moment; the server reconnects by itself',
      })
    // Every acknowledged commit is there; an unacknowledged one may or may not be.
    for (const outcome of outcomes) if (outcome.ok) expect(await store.get(`during/${outcome.i}`)).toBe(outcome.i)
    for (let i = 0; i < 6; i++) expect(await store.get(`k/${i}`)).toBe(i)
    expect(await store.has('k/after')).toBe(true)
  })

  it('a database that is not there: ERR_STORE_UNAVAILABLE with the retry hint', async () => {
    await expect(openPgStore('postgres://postgres@127.0.0.1:1/test', PASSPHRASE)).rejects.toMatchObject({
      code: 'ERR_STORE_UNAVAILABLE',
      message: expect.stringContaining('postgres://postgres@127.0.0.1:1/test'),
    })
  })
})
