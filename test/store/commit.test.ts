import { readFile, truncate } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { storeFixture, user, type StoreFixture } from './fixtures.js'
import { getUser, userCount } from '../helpers/records.js'

// Store.commit: several puts and deletes sealed as one record (the server's sessions, invites,
// role changes and audit entries rely on it landing whole or not at all).

let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(() => f.cleanup())

describe('store commit', () => {
  it('writes puts and deletes as one record, which a reopen replays', async () => {
    const store = await f.create()
    await store.commit([
      { key: 'session/a', value: { n: 1 } },
      { key: 'session/b', value: { n: 2 } },
      { key: 'invite/x', value: { n: 3 } },
    ])
    const records = (await f.recordOffsets()).length
    await store.commit([
      { key: 'session/a', delete: true },
      { key: 'session/c', value: { n: 4 } },
      { key: 'user/carol', value: user('carol') },
    ])
    expect((await f.recordOffsets()).length).toBe(records + 1)
    expect((await store.keys('session/')).sort()).toEqual(['session/b', 'session/c'])
    expect(await userCount(store)).toBe(1)
    await store.close()
    const again = await f.open()
    expect((await again.keys('session/')).sort()).toEqual(['session/b', 'session/c'])
    expect(await again.keys('invite/')).toEqual(['invite/x'])
    expect(await again.get('session/c')).toEqual({ n: 4 })
    expect(await again.has('session/a')).toBe(false)
    expect(await userCount(again)).toBe(1)
    expect(await getUser(again, 'carol')).toEqual(user('carol'))
  })

  it('is all or nothing: a record torn by a crash loses every change in it, and nothing before it', async () => {
    const store = await f.create()
    await store.commit([{ key: 'kept/1', value: 1 }])
    await store.commit([
      { key: 'torn/1', value: 'x'.repeat(200) },
      { key: 'torn/2', value: 2 },
      { key: 'kept/1', delete: true },
    ])
    await store.close()
    const size = (await readFile(f.path)).length
    await truncate(f.path, size - 7) // the last record cut short, as a crash mid-write leaves it
    const again = await f.open()
    expect(await again.keys('torn/')).toEqual([])
    expect(await again.keys('kept/')).toEqual(['kept/1'])
  })

  it('survives compaction: the live entries of packed records are copied, deleted ones are not', async () => {
    const store = await f.create({ autoCompact: false })
    await store.commit([
      { key: 'session/a', value: 'a' },
      { key: 'session/b', value: 'b' },
    ])
    await store.commit([
      { key: 'session/a', delete: true },
      { key: 'session/c', value: 'c' },
    ])
    await store.compact()
    expect((await store.keys('session/')).sort()).toEqual(['session/b', 'session/c'])
    await store.close()
    const again = await f.open()
    expect((await again.keys('session/')).sort()).toEqual(['session/b', 'session/c'])
    expect(await again.get('session/c')).toBe('c')
  })

  it('lists keys by prefix without confusing longer or shorter names', async () => {
    const store = await f.create()
    await store.commit([
      { key: 'role/admin/ann', value: {} },
      { key: 'role/system_admin/sue', value: {} },
      { key: 'role/admin', value: {} },
      { key: 'rolex', value: {} },
    ])
    expect(await store.keys('role/admin/')).toEqual(['role/admin/ann'])
    expect(await store.keys('role/system_admin/')).toEqual(['role/system_admin/sue'])
    expect(await store.keys('nothing/')).toEqual([])
  })
})
