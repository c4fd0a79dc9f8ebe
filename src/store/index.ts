export { createStore, openStore, verifyStore, readStoreHeader, storeExists } from './store.js'
export type {
  Store,
  StoreChange,
  UserRecord,
  LoginRecord,
  GuardRecord,
  StoreHeaderInfo,
  StoreStats,
  OpenOptions,
  CompactResult,
} from './store.js'
export { AuditLog, verifyAuditChain } from './audit.js'
export type { AuditEvent, AuditVerification } from './audit.js'
export { acquireLock } from './lock.js'
export type { StoreLock } from './lock.js'
export { DEFAULT_KDF, KDF_CAP } from './kdf.js'
export type { KdfParams } from './kdf.js'
export { MAX_RECORDS_PER_KEY, PAGE_BYTES } from './journal.js'
export type { TornTail } from './journal.js'
