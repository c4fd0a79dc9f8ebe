export { createStore, openStore, verifyStore, readStoreHeader, storeExists, StoreConflict } from './store.js'
export type {
  Store,
  StoreChange,
  StoreView,
  Version,
  StoreHeaderInfo,
  StoreStats,
  OpenOptions,
  CompactResult,
  RollbackMode,
} from './store.js'
export { checkStateFile, refuseOrphanState, statePathOf, STATE_MARKER_PREFIX } from './state.js'
export type { StateCheck } from './state.js'
export { acquireLock } from './lock.js'
export { refuseSharedDirectory } from './directory.js'
export type { StoreLock } from './lock.js'
export { DEFAULT_KDF, KDF_CAP } from './kdf.js'
export type { KdfParams } from './kdf.js'
export { MAX_RECORDS_PER_KEY, PAGE_BYTES } from './journal.js'
export type { TornTail } from './journal.js'
export {
  createPgStore,
  openPgStore,
  verifyPgStore,
  readPgStoreHeader,
  pgStoreExists,
  isPostgresUrl,
  redactUrl,
} from './pg.js'
export type { PgStore, PgOptions, RotateResult } from './pg.js'
