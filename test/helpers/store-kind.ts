import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { storeLocation } from '../../src/cli/store-location.js'
import type { Store } from '../../src/store/index.js'
import { havePostgres, makeDatabase, type TestDatabase } from './postgres.js'

// Which store kind the servers the tests start use. The e2e contract runs once on each
// (vitest.config.ts: the postgres project sets SECURELOGIN_TEST_STORE=postgres for its files):
// on a file, a server directory's store is DIR/data/securelogin.store; on PostgreSQL, a fresh
// database of its own, made when the directory's first server starts (so a restart in the same
// test reopens the same store) and dropped when the test file ends (test/setup/store-kind.ts).

export type StoreKind = 'file' | 'postgres'

/**
 * Read at each call, not once at import: test files share their worker's modules
 * (vitest.config.ts, isolate: false), and the variable is the file's project's.
 */
export function storeKind(): StoreKind {
  return process.env['SECURELOGIN_TEST_STORE'] === 'postgres' ? 'postgres' : 'file'
}

/**
 * Whether this file's store kind can run here: always for a file; for PostgreSQL, whether it is
 * reachable (skipped locally with one line, a failure under CI: havePostgres).
 */
export async function storeKindAvailable(): Promise<boolean> {
  return storeKind() === 'file' || (await havePostgres())
}

/** The databases made for server directories during this test file, by directory. */
const databases = new Map<string, Promise<TestDatabase>>()
/** Their URLs once made, for storeOf's synchronous answer. */
const urls = new Map<string, string>()

/** A file store's place in a server directory. */
const storeFile = (dir: string) => join(dir, 'data', 'securelogin.store')

/**
 * The `--store` of the server directory `dir`, made ready: the file's path, or the URL of the
 * directory's database, made on first use (startServerProcess calls this).
 */
export async function prepareStore(dir: string): Promise<string> {
  if (storeKind() === 'file') return storeFile(dir)
  let made = databases.get(dir)
  if (!made) {
    made = makeDatabase()
    databases.set(dir, made)
  }
  const { url } = await made
  urls.set(dir, url)
  return url
}

/**
 * The `--store` of `dir` (for a store command, openStoreOf, a server started by hand): the file's
 * path, or its database's URL once its first server has started.
 */
export function storeOf(dir: string): string {
  if (storeKind() === 'file') return storeFile(dir)
  const url = urls.get(dir)
  if (url === undefined) throw new Error(`no database for ${dir} yet: start its server first`)
  return url
}

/**
 * Opens `dir`'s store in this process, whatever its kind, as the CLI does (the file's lock
 * taken first; a database has none). Its server must be stopped for a file store.
 */
export async function openStoreOf(dir: string, passphrase: string): Promise<Store> {
  const location = storeLocation(storeOf(dir))
  const lock = await location.lock(() => {})
  try {
    return await location.open(passphrase, lock, {})
  } catch (error) {
    await lock.release()
    throw error
  }
}

/**
 * A hash of everything `dir`'s store holds: the file's bytes, or every row of the database's
 * tables and its version sequence. Equal hashes: nothing was written.
 */
export async function storeFingerprint(dir: string): Promise<string> {
  const hash = createHash('sha256')
  const db = storeKind() === 'postgres' ? await databases.get(dir) : undefined
  if (!db) return hash.update(await readFile(storeFile(dir))).digest('hex')
  const relations = await db.sql<{ name: string; kind: string }>(
    `SELECT c.relname AS name, c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') ORDER BY c.relname`,
  )
  if (relations.length === 0) throw new Error(`${db.name} holds no table: is it a store?`)
  for (const { name, kind } of relations) {
    // Each table's rows as text, in a fixed order; a sequence, where it stands.
    const rows = await db.sql<{ row: string }>(
      kind === 'S'
        ? `SELECT (last_value, is_called)::text AS row FROM "${name}"`
        : `SELECT t::text AS row FROM "${name}" t ORDER BY 1`,
    )
    hash.update(`${name}\n${rows.map((r) => r.row).join('\n')}\n`)
  }
  return hash.digest('hex')
}

/** Drops the databases made during this test file (test/setup/store-kind.ts, after its servers stopped). */
export async function dropStoreDatabases(): Promise<void> {
  const made = [...databases.values()]
  databases.clear()
  urls.clear()
  const settled = await Promise.allSettled(made)
  for (const result of settled) if (result.status === 'fulfilled') await result.value.drop()
}
