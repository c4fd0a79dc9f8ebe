import { open, readFile, stat, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Store } from '../../src/store/index.js'
import { AuditLog, verifyStoreAndAudit } from '../../src/server/audit-log.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { PASSPHRASE, storeFixture, user, type StoreFixture } from './fixtures.js'
import { addUser, addUsers, getGuard, getLogin, getUser, hasUser, recordLogin } from '../helpers/records.js'

// Durability: what the store promises about fsync (docs/store-format.md). A commit resolves only
// after its record is fsync'd; a failed fsync refuses that commit and every later write; compaction,
// rekey and create fsync the new file before renaming it into place and the directory after.
//
// fsync's effect cannot be seen from inside the machine: killing the process leaves the page cache,
// so a store that never fsyncs reads back just as well. The one place where it can be observed is
// the call itself, so these tests spy on the real FileHandle.prototype.sync (the store's only way to
// fsync, for files and directories alike) and call through to it. Everything else runs for real, on
// a real file in a temporary directory. The spy tells a directory from a file with handle.stat(),
// and which file it is by inode: whether the path already names that inode tells "before the
// rename" from "after" without wrapping rename.

let f: StoreFixture
let proto: FileHandle
let realSync: () => Promise<void>
/** Gates still shut when a test ends (a failing one): opened in afterEach so that closing can finish. */
const gates: Array<() => void> = []

beforeAll(async () => {
  const handle = await open(fileURLToPath(import.meta.url), 'r')
  proto = Object.getPrototypeOf(handle) as FileHandle
  await handle.close()
  realSync = proto.sync // always called as realSync.call(handle)
})

beforeEach(async () => {
  f = await storeFixture()
})

afterEach(async () => {
  for (const release of gates.splice(0)) release()
  vi.restoreAllMocks()
  await f.cleanup()
})

interface SyncCall {
  directory: boolean
  ino: number
  /** The inode the store path names at the moment of the call (undefined: no file there yet). */
  atPath: number | undefined
}

const inoAt = (path: string) =>
  stat(path).then(
    (s) => s.ino,
    () => undefined,
  )

/** A promise that stays pending until `release` is called (also called by afterEach). */
function gate(): { wait: Promise<void>; release: () => void } {
  let release!: () => void
  const wait = new Promise<void>((resolve) => (release = resolve))
  gates.push(release)
  return { wait, release }
}

/**
 * Spies on every fsync: records it, then runs `before` (which may hold it pending, or throw to make
 * it fail) and calls through to the real sync.
 */
function spySync(before: (call: SyncCall) => Promise<void> = async () => {}) {
  const calls: SyncCall[] = []
  const spy = vi.spyOn(proto, 'sync').mockImplementation(async function (this: FileHandle) {
    const s = await this.stat()
    const call = { directory: s.isDirectory(), ino: s.ino, atPath: await inoAt(f.path) }
    calls.push(call)
    await before(call)
    return realSync.call(this)
  })
  return { calls, spy }
}

/** Whether a promise has settled, readable synchronously. */
function track(promise: Promise<unknown>): { settled: boolean; promise: Promise<unknown> } {
  const tracked = { settled: false, promise }
  promise.then(
    () => (tracked.settled = true),
    () => (tracked.settled = true),
  )
  return tracked
}

/** Lets every ready callback and I/O completion run: a commit not held by its fsync would settle here. */
async function macrotasks(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** Waits until `done()` holds; a condition, never a fixed delay, decides. */
const until = (done: () => boolean) =>
  vi.waitFor(
    () => {
      if (!done()) throw new Error('not yet')
    },
    { timeout: 10_000, interval: 5 },
  )

const eio = () => Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', errno: -5, syscall: 'fsync' })

describe('store durability (fsync)', () => {
  const writes: Array<[string, (store: Store) => Promise<unknown>, (store: Store) => Promise<unknown>]> = [
    ['addUser', (s) => addUser(s, user('bob')), (s) => getUser(s, 'bob')],
    ['addUsers', (s) => addUsers(s, [user('carol'), user('dave')]), (s) => getUser(s, 'dave')],
    [
      'recordLogin',
      (s) => recordLogin(s, 'alice', { at: '2026-11-25T10:00:00.000Z', totpStep: 59_000_000 }),
      (s) => getLogin(s, 'alice'),
    ],
    [
      'setGuard',
      (s) => s.commit([{ key: 'guard/alice', value: { failures: 3, lockedUntil: null } }]),
      (s) => getGuard(s, 'alice'),
    ],
    [
      'commit',
      (s) =>
        s.commit([
          { key: 'session/a', value: { n: 1 } },
          { key: 'invite/x', value: { n: 2 } },
        ]),
      (s) => s.get('invite/x'),
    ],
    [
      'audit append',
      async (s) =>
        (await AuditLog.open(s, () => Date.parse('2026-11-25T10:00:00.000Z'))).append({
          actor: 'alice',
          action: 'login.ok',
          target: null,
          address: '127.0.0.1',
          outcome: 'ok',
        }),
      (s) => s.get('audit-head'),
    ],
  ]

  it.each(writes)('%s resolves only after the store file is fsynced', async (_name, write, readBack) => {
    const store = await f.create({ autoCompact: false })
    await addUser(store, user('alice'))
    const storeIno = (await stat(f.path)).ino
    const held = gate()
    const { calls } = spySync(async (call) => {
      if (!call.directory && call.ino === storeIno) await held.wait
    })

    const pending = track(write(store))
    // Either the fsync is reached (and held) or the write settled without it: both end the wait.
    await until(() => calls.length > 0 || pending.settled)
    expect(calls).toEqual([{ directory: false, ino: storeIno, atPath: storeIno }])
    await macrotasks()
    expect(pending.settled).toBe(false)

    held.release()
    await pending.promise
    expect(calls).toHaveLength(1) // one group commit, one fsync
    expect(await readBack(store)).toBeDefined()
    await store.close()
  })

  it('a failed fsync refuses that commit (ERR_STORE_IO) and every later write; reads go on; a reopen shows none of it', async () => {
    const store = await f.create({ autoCompact: false })
    await addUser(store, user('alice'))
    const log = await AuditLog.open(store, () => Date.parse('2026-11-25T10:00:00.000Z'))
    await log.append({ actor: null, action: 'user.register', target: 'alice', address: null, outcome: 'ok' })
    const before = { sha: await f.sha256(), size: (await readFile(f.path)).length, head: log.head() }

    let failNext = true
    const { calls } = spySync(async () => {
      if (failNext) {
        failNext = false
        throw eio()
      }
    })

    await expect(recordLogin(store, 'alice', { at: '2026-11-25T10:00:00.000Z', totpStep: 1 })).rejects.toMatchObject({
      code: 'ERR_STORE_IO',
    })
    expect(calls).toHaveLength(1)
    // The record was written before its fsync failed: it is cut off again, not left for a reopen to find.
    expect(await f.sha256()).toBe(before.sha)

    // fsync works again, yet nothing more may be written: after an fsync error the kernel may have
    // dropped the dirty pages, so what the store believes is on disk is no longer known.
    await expect(store.commit([{ key: 'session/a', value: 1 }])).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await expect(addUser(store, user('bob'))).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await expect(
      log.append({ actor: 'alice', action: 'login.ok', target: null, address: null, outcome: 'ok' }),
    ).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await expect(store.compact()).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    await expect(store.rekey('another passphrase', TEST_KDF)).rejects.toMatchObject({ code: 'ERR_STORE_IO' })
    expect(calls).toHaveLength(1) // refused before writing, not written and then failed
    expect(await f.sha256()).toBe(before.sha)

    // Reads still answer, from the state as it was before the failure.
    expect(await getUser(store, 'alice')).toEqual(user('alice'))
    expect(await getLogin(store, 'alice')).toBeUndefined()
    expect(await hasUser(store, 'bob')).toBe(false)
    expect(await store.keys('session/')).toEqual([])
    expect(log.head()).toEqual(before.head)
    expect((await store.stats()).fileSize).toBe(before.size)
    await store.close()

    const verified = await verifyStoreAndAudit(f.path, PASSPHRASE)
    expect(verified.tornTail).toBeUndefined()
    expect(verified.audit).toMatchObject({ ok: true, head: before.head, problems: [] })
    const again = await f.open({ autoCompact: false })
    expect(await getLogin(again, 'alice')).toBeUndefined()
    expect(await hasUser(again, 'bob')).toBe(false)
    expect(await again.keys('session/')).toEqual([])
    expect(await getUser(again, 'alice')).toEqual(user('alice'))
    // A fresh open writes again.
    await recordLogin(again, 'alice', { at: '2026-11-25T10:01:00.000Z', totpStep: 2 })
    await again.close()
    expect(await getLogin(await f.open(), 'alice')).toEqual({ at: '2026-11-25T10:01:00.000Z', totpStep: 2 })
  })

  const replacements: Array<[string, (store: Store | undefined) => Promise<unknown>, string]> = [
    ['create', () => f.create({ autoCompact: false }), PASSPHRASE],
    ['compaction', (store) => store!.compact(), PASSPHRASE],
    ['rekey', (store) => store!.rekey('the new passphrase', TEST_KDF), 'the new passphrase'],
  ]

  it.each(replacements)(
    '%s fsyncs the new file before the rename and the directory after it, before resolving',
    async (name, replace, passphrase) => {
      let store: Store | undefined
      if (name !== 'create') {
        store = await f.create({ autoCompact: false })
        await addUser(store, user('alice'))
        for (let step = 1; step <= 5; step++)
          await recordLogin(store, 'alice', { at: '2026-11-25T10:00:00.000Z', totpStep: step }) // dead entries to drop
      }
      const oldIno = await inoAt(f.path)
      const held = gate()
      const { calls } = spySync(async (call) => {
        if (call.directory) await held.wait
      })

      const pending = track(replace(store))
      await until(() => calls.some((call) => call.directory) || pending.settled)
      // The directory fsync is reached, and the operation waits for it.
      expect(calls.filter((call) => call.directory)).toHaveLength(1)
      await macrotasks()
      expect(pending.settled).toBe(false)
      held.release()
      const result = await pending.promise
      if (name === 'create') store = result as Store

      const newIno = (await stat(f.path)).ino
      const dirIno = (await stat(dirname(f.path))).ino // create makes the directory, so only now
      expect(newIno).not.toBe(oldIno) // a new file took the path
      const fileSync = calls.findIndex((call) => !call.directory && call.ino === newIno && call.atPath !== newIno)
      const dirSync = calls.findIndex((call) => call.directory && call.ino === dirIno && call.atPath === newIno)
      expect(fileSync, 'the new file is fsynced while still under its temporary name').toBeGreaterThanOrEqual(0)
      expect(dirSync, 'the directory is fsynced once the new file has the path').toBeGreaterThan(fileSync)

      await store!.close()
      const again = await f.open({ passphrase, autoCompact: false })
      if (name !== 'create') expect(await getLogin(again, 'alice')).toMatchObject({ totpStep: 5 })
      if (name === 'compaction') expect((await again.stats()).dead).toBe(0) // rekey copies records as they are
    },
  )
})
