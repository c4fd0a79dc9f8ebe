import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createStore, openStore, type OpenOptions, type Store } from '../../src/store/index.js'
import { DEFAULT_PASSWORD_KDF } from '../../src/auth/password-stretch.js'
import { makeTempDir } from '../helpers/env.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { USERS_PREFIX, addUser, type AccountRecord } from '../helpers/records.js'

/** Fixture stores count their accounts, as the server's `store` commands do. */
const COUNTED = { countedPrefixes: [USERS_PREFIX] }

export const PASSPHRASE = 'store test passphrase'
export const HEADER_BYTES = 160

export const user = (username: string): AccountRecord => ({
  username,
  salt: 'ab'.repeat(32),
  verifier: 'cd'.repeat(256),
  kdf: DEFAULT_PASSWORD_KDF,
  totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ',
  role: 'regular_user',
  createdAt: '2026-11-24T12:00:00.000Z',
})

/** A temporary directory with a store path in it; every store opened through it is closed after the test. */
export async function storeFixture() {
  const { dir, remove } = await makeTempDir('store')
  const path = join(dir, 'data', 'test.store')
  const opened: Store[] = []
  const track = (store: Store) => {
    opened.push(store)
    return store
  }
  return {
    dir,
    path,
    async make(users: string[], opts: OpenOptions = {}): Promise<void> {
      const store = await createStore(path, PASSPHRASE, { kdf: TEST_KDF, ...COUNTED, ...opts })
      for (const name of users) await addUser(store, user(name))
      await store.close()
    },
    async create(opts: OpenOptions = {}): Promise<Store> {
      return track(await createStore(path, PASSPHRASE, { kdf: TEST_KDF, ...COUNTED, ...opts }))
    },
    async open(opts: OpenOptions & { passphrase?: string; at?: string } = {}): Promise<Store> {
      return track(await openStore(opts.at ?? path, opts.passphrase ?? PASSPHRASE, { ...COUNTED, ...opts }))
    },
    sha256: async (at = path) =>
      createHash('sha256')
        .update(await readFile(at))
        .digest('hex'),
    /** Offsets of each record (its length prefix) after the header. */
    async recordOffsets(at = path): Promise<number[]> {
      const file = await readFile(at)
      const offsets: number[] = []
      for (let offset = HEADER_BYTES; offset + 4 <= file.length; offset += 4 + file.readUInt32BE(offset))
        offsets.push(offset)
      return offsets
    },
    async cleanup(): Promise<void> {
      for (const store of opened.splice(0)) await store.close().catch(() => {})
      await remove()
    },
  }
}

export type StoreFixture = Awaited<ReturnType<typeof storeFixture>>
