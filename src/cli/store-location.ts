import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import {
  acquireLock,
  createStore,
  openStore,
  readStoreHeader,
  storeExists,
  verifyStore,
  type OpenOptions,
  type Store,
  type StoreHeaderInfo,
  type StoreLock,
  type StoreStats,
  type StoreView,
  type TornTail,
} from '../store/index.js'
import {
  createPgStore,
  isPostgresUrl,
  openPgStore,
  pgStoreExists,
  readPgStoreHeader,
  redactUrl,
  verifyPgStore,
} from '../store/pg.js'

// Where `--store` (or $SECURELOGIN_STORE) points: a store file, or a PostgreSQL database. The
// commands and the server ask this what they need, and only the file store has a lock, a
// directory and a state file.

export type Report = (event: string, fields: Record<string, unknown>) => void

/** What the store layers take at open, but the lock (the location takes it). */
export type LocationOpenOptions = Omit<OpenOptions, 'lock'>

export interface StoreLocation {
  readonly kind: 'file' | 'postgres'
  /** As messages show it: the path, or the URL without its password. */
  readonly shown: string
  /** The file's path; undefined for a database. */
  readonly path: string | undefined
  exists(): Promise<boolean>
  /**
   * A file store is served by one process: its lock is taken before the passphrase is asked
   * for. A database is shared by any number of processes; its lock is a no-op.
   */
  lock(report: Report): Promise<StoreLock>
  create(passphrase: string, lock: StoreLock, opts: LocationOpenOptions): Promise<Store>
  open(passphrase: string, lock: StoreLock, opts: LocationOpenOptions): Promise<Store>
  header(): Promise<StoreHeaderInfo>
  verify<T>(
    passphrase: string,
    lock: StoreLock,
    opts: { onReport?: Report; countedPrefixes?: readonly string[]; inspect?: (view: StoreView) => Promise<T> },
  ): Promise<{ stats: StoreStats; tornTail: TornTail | undefined; inspected: T | undefined }>
}

export function storeLocation(text: string): StoreLocation {
  if (isPostgresUrl(text)) {
    const url = text
    return {
      kind: 'postgres',
      shown: redactUrl(url),
      path: undefined,
      exists: () => pgStoreExists(url),
      lock: async () => ({ path: redactUrl(url), release: async () => {} }),
      create: (passphrase, _lock, opts) => createPgStore(url, passphrase, opts),
      open: (passphrase, _lock, opts) => openPgStore(url, passphrase, opts),
      header: () => readPgStoreHeader(url),
      verify: (passphrase, _lock, opts) => verifyPgStore(url, passphrase, opts),
    }
  }
  const path = text
  return {
    kind: 'file',
    shown: path,
    path,
    exists: async () => storeExists(path),
    async lock(report) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 })
      return acquireLock(path, report)
    },
    create: (passphrase, lock, opts) => createStore(path, passphrase, { ...opts, lock }),
    open: (passphrase, lock, opts) => openStore(path, passphrase, { ...opts, lock }),
    header: () => readStoreHeader(path),
    verify: (passphrase, lock, opts) => verifyStore(path, passphrase, { ...opts, lock }),
  }
}
