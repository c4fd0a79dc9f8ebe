import type { Store } from '../../src/store/index.js'
import {
  USERS_PREFIX,
  getLogin as readLogin,
  getRecovery as readRecovery,
  getUser as readUser,
  hasUser as userExists,
  loginChange,
  newAccountChanges,
  userChange,
  type LoginRecord,
  type AccountRecord,
} from '../../src/server/accounts.js'
import type { RecoveryHashes } from '../../src/auth/recovery-codes.js'

// The account records as tests read and write them straight in a store: through the module that
// owns them (src/server/accounts.ts), never by hand-written keys.

export type { AccountRecord, LoginRecord }
export { USERS_PREFIX }

export const getUser = (store: Store, name: string) => readUser(store, name)
export const hasUser = (store: Store, name: string) => userExists(store, name)
export const userCount = (store: Store) => store.count(USERS_PREFIX)
export const getLogin = (store: Store, name: string) => readLogin(store, name)
export const getRecovery = (store: Store, name: string) => readRecovery(store, name)

/** A new account (and its recovery hashes) in one commit; refuses a name that is taken. */
export async function addUser(store: Store, user: AccountRecord, recovery?: RecoveryHashes): Promise<void> {
  await store.commit(
    newAccountChanges(user, recovery).map((change) =>
      change.key.startsWith(USERS_PREFIX) ? { ...change, expect: null } : change,
    ),
  )
}

/** Many accounts, one record each, one fsync. */
export async function addUsers(store: Store, users: AccountRecord[]): Promise<void> {
  await store.commitEach(users.map(userChange))
}

export async function recordLogin(store: Store, name: string, login: LoginRecord): Promise<void> {
  await store.commit([loginChange(name, login)])
}

/** The guard's stored count of a name (src/server/guard.ts owns the record). */
export const getGuard = (store: Store, name: string) =>
  store.get<{ failures: number; lockedUntil: number | null }>(`guard/${name}`)
