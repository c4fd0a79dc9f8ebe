import { afterEach, beforeEach } from 'vitest'
import { createPgStore, openPgStore, type PgOptions, type PgStore } from '../../src/store/pg.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { makeDatabase, type TestDatabase } from '../helpers/postgres.js'

/**
 * A fresh database for each test of a PostgreSQL store file, and every store a test opens
 * closed after it (hooks registered by the call). `run`: whether PostgreSQL answers (havePostgres).
 */
export function pgFixture(passphrase: string, run: boolean) {
  let db: TestDatabase | undefined
  const opened: PgStore[] = []
  const track = (store: PgStore) => {
    opened.push(store)
    return store
  }
  beforeEach(async () => {
    if (run) db = await makeDatabase()
  })
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close().catch(() => {})
    if (run) await db?.drop()
  })
  return {
    db: () => db!,
    track,
    create: (opts: PgOptions = {}) => createPgStore(db!.url, passphrase, { kdf: TEST_KDF, ...opts }).then(track),
    openAgain: (opts: PgOptions & { passphrase?: string } = {}) =>
      openPgStore(db!.url, opts.passphrase ?? passphrase, opts).then(track),
  }
}
