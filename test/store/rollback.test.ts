import { copyFile, mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createStore, openStore, type Store } from '../../src/store/index.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { PASSPHRASE, storeFixture, type StoreFixture } from './fixtures.js'

// Rollback of the store file (docs/store-format.md, "State file"): every older copy of the file
// authenticates, so only something kept outside it can tell. The store keeps NAME.state beside
// itself and refuses, at open, a file that is not as far as it says.

let f: StoreFixture
beforeEach(async () => {
  f = await storeFixture()
})
afterEach(() => f.cleanup())

const statePath = () => `${f.path}.state`
const size = async (path = f.path) => (await stat(path)).size
const sessions = async (store: Store) => (await store.keys('session/')).sort()
/** A commit the way a login writes its session, and a logout deletes it. */
const login = (store: Store, id: string) => store.commit([{ key: `session/${id}`, value: { user: 'alice' } }])
const logout = (store: Store, id: string) => store.commit([{ key: `session/${id}`, delete: true }])

describe('a store older than its state file', () => {
  it('cut back at a record boundary is refused (ERR_STORE_ROLLBACK) and left as it was; accepted on purpose', async () => {
    const store = await f.create({ rollback: 'refuse' })
    await login(store, 'a')
    await store.close()
    const before = await size() // a record boundary: the end of the file after a clean stop
    const again = await f.open({ rollback: 'refuse' })
    await logout(again, 'a')
    await login(again, 'b')
    await again.close()
    await truncate(f.path, before)

    const sha = await f.sha256()
    const state = await readFile(statePath(), 'utf8')
    await expect(f.open({ rollback: 'refuse' })).rejects.toMatchObject({
      code: 'ERR_STORE_ROLLBACK',
      message: expect.stringMatching(/holds \d+ records, but its state file .* says \d+ had been written/),
    })
    expect(await f.sha256()).toBe(sha)
    expect(await readFile(statePath(), 'utf8')).toBe(state)

    // What the check stops: without it, the logged-out session is back.
    const unguarded = await f.open()
    expect(await sessions(unguarded)).toEqual(['session/a'])
    await unguarded.close()

    const reports: Array<Record<string, unknown>> = []
    const restored = await f.open({
      rollback: 'accept',
      onReport: (event, fields) => reports.push({ event, ...fields }),
    })
    expect(reports).toContainEqual({
      event: 'store_rollback_accepted',
      path: f.path,
      problem: expect.stringContaining('had been written'),
    })
    await restored.close()
    // Accepted once: the state file now names the restored store, which opens as usual.
    await (await f.open({ rollback: 'refuse' })).close()
  })

  it.each([
    ['a compaction', (store: Store) => store.compact().then(() => {})],
    ['a rekey', (store: Store) => store.rekey(PASSPHRASE, TEST_KDF)],
  ])('is refused when it is a copy from before %s', async (_name, rewrite) => {
    const store = await f.create({ rollback: 'refuse', autoCompact: false })
    await login(store, 'a')
    const old = await readFile(f.path)
    await rewrite(store)
    await logout(store, 'a')
    await store.close()
    await writeFile(f.path, old)
    await expect(f.open({ rollback: 'refuse' })).rejects.toMatchObject({
      code: 'ERR_STORE_ROLLBACK',
      message: expect.stringContaining('from before a compaction or rekey'),
    })
  })

  it('the state file written just before a switch names both files: either one opens, an older one does not', async () => {
    const store = await f.create({ rollback: 'refuse', autoCompact: false })
    await login(store, 'a')
    await store.close()
    const older = await readFile(f.path)
    const again = await f.open({ rollback: 'refuse', autoCompact: false })
    await login(again, 'b')
    await again.close()
    const current = JSON.parse(await readFile(statePath(), 'utf8'))
    const old = await readFile(f.path)
    const compacting = await f.open({ rollback: 'refuse', autoCompact: false })
    await compacting.compact()
    await compacting.close()
    const next = JSON.parse(await readFile(statePath(), 'utf8'))
    // What a crash between the rename and the state file's second write leaves.
    await writeFile(statePath(), JSON.stringify({ ...current, next: next.current }))
    await (await f.open({ rollback: 'refuse', autoCompact: false })).close()
    await writeFile(statePath(), JSON.stringify({ ...current, next: next.current }))
    await writeFile(f.path, old)
    await (await f.open({ rollback: 'refuse', autoCompact: false })).close()
    await writeFile(statePath(), JSON.stringify({ ...current, next: next.current }))
    await writeFile(f.path, older)
    await expect(f.open({ rollback: 'refuse' })).rejects.toMatchObject({ code: 'ERR_STORE_ROLLBACK' })
  })

  it('with its state file deleted is refused, once the store says it keeps one', async () => {
    await (await f.create({ rollback: 'refuse' })).close()
    await rm(statePath())
    await expect(f.open({ rollback: 'refuse' })).rejects.toMatchObject({
      code: 'ERR_STORE_ROLLBACK',
      message: expect.stringContaining('is missing'),
    })
  })

  it('a store that kept none yet starts one (and the marker that says so)', async () => {
    await f.make([])
    const reports: Array<Record<string, unknown>> = []
    const store = await f.open({ rollback: 'refuse', onReport: (event, fields) => reports.push({ event, ...fields }) })
    expect(reports).toContainEqual({ event: 'store_state_started', path: statePath() })
    expect(await store.has('store/state-file')).toBe(true)
    await store.close()
    expect((await stat(statePath())).mode & 0o777).toBe(0o600)
    await rm(statePath())
    await expect(f.open({ rollback: 'refuse' })).rejects.toMatchObject({ code: 'ERR_STORE_ROLLBACK' })
  })

  it('deleted, is not replaced by a new empty store while its state file remains', async () => {
    await (await f.create({ rollback: 'refuse' })).close()
    await rm(f.path)
    await expect(createStore(f.path, PASSPHRASE, { kdf: TEST_KDF, rollback: 'refuse' })).rejects.toMatchObject({
      code: 'ERR_STORE_ROLLBACK',
      message: expect.stringContaining(`there is no store at ${f.path}`),
    })
    const reports: string[] = []
    const made = await createStore(f.path, PASSPHRASE, {
      kdf: TEST_KDF,
      rollback: 'accept',
      onReport: (event) => reports.push(event),
    })
    await made.close()
    expect(reports).toContain('store_rollback_accepted')
  })

  it('follows the store while it is open, so a crash leaves a window of stateEveryMs at most', async () => {
    const store = await f.create({ rollback: 'refuse', stateEveryMs: 20 })
    await login(store, 'a')
    const cut = await size()
    await logout(store, 'a')
    // The store has not been closed: this is what a crash leaves, once the timer has run.
    await vi.waitFor(async () => expect(JSON.parse(await readFile(statePath(), 'utf8')).current.end).toBe(await size()))
    const crashed = join(f.dir, 'crashed')
    await mkdir(crashed)
    const copy = join(crashed, 'test.store')
    await copyFile(f.path, copy)
    await copyFile(statePath(), `${copy}.state`)
    await truncate(copy, cut)
    await expect(openStore(copy, PASSPHRASE, { rollback: 'refuse' })).rejects.toMatchObject({
      code: 'ERR_STORE_ROLLBACK',
    })
  })
})
