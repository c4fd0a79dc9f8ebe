import { z } from 'zod'
import { PasswordKdf, Role } from '../protocol/fields.js'
import type { RecoveryHashes } from '../auth/recovery-codes.js'
import type { Store, StoreChange, Version } from '../store/index.js'
import { readStored, readStoredVersioned, type Versioned } from './stored.js'

// The account records and their keys: the one module that knows `user/`, `login/` and `recovery/`
// (docs/store-format.md, "Keys and values"). Values are parsed here, at the store boundary.

/** Every account's key starts with this; the store counts them as it replays (`store stats`). */
export const USERS_PREFIX = 'user/'

const userKey = (username: string) => `${USERS_PREFIX}${username}`
const loginKey = (username: string) => `login/${username}`
const recoveryKey = (username: string) => `recovery/${username}`

export const AccountRecord = z.object({
  username: z.string(),
  /** SRP salt, hex. */
  salt: z.string(),
  /** SRP verifier, hex. */
  verifier: z.string(),
  /** How the client stretched the password before deriving x; sent back in every challenge. */
  kdf: PasswordKdf,
  /** TOTP secret, base32. */
  totpSecret: z.string(),
  role: Role,
  createdAt: z.string(),
  /** The TOTP time step of the code that confirmed enrolment: no login may reuse it. */
  enrolledStep: z.number().optional(),
  /** Set by `admin reset-2fa`: the next login enrols a new authenticator before it ends. */
  totpReset: z.boolean().optional(),
  /**
   * When (ms) the authenticator was last replaced on a login made with a recovery code: for a
   * day after, the recovery codes cannot be renewed (RECOVERY_RENEWAL_HOLD_MS, src/server/recovery.ts).
   * A system_admin's `admin reset-2fa` lifts it.
   */
  recoveryResetAt: z.number().optional(),
})
export type AccountRecord = z.infer<typeof AccountRecord>

/** The last successful login of a user: when, and which TOTP time step its code was for. */
export const LoginRecord = z.object({ at: z.string(), totpStep: z.number() })
export type LoginRecord = z.infer<typeof LoginRecord>

const RecoveryRecord = z.object({
  kdf: z.object({ name: z.literal('scrypt'), logN: z.number(), r: z.number(), p: z.number() }),
  salt: z.string(),
  hashes: z.array(z.string().nullable()),
})

export function getUser(store: Store, username: string): Promise<AccountRecord | undefined> {
  return readStored(store, userKey(username), AccountRecord, 'account')
}

/** The account and the version it was read at: a change decided on it commits with that `expect`. */
export function getUserVersioned(store: Store, username: string): Promise<Versioned<AccountRecord> | undefined> {
  return readStoredVersioned(store, userKey(username), AccountRecord, 'account')
}

export function hasUser(store: Store, username: string): Promise<boolean> {
  return store.has(userKey(username))
}

export async function userNames(store: Store): Promise<string[]> {
  return (await store.keys(USERS_PREFIX)).map((key) => key.slice(USERS_PREFIX.length))
}

/** The account, written as it is given (a new one, or a changed copy of the stored one). */
export function userChange(user: AccountRecord): StoreChange {
  return { key: userKey(user.username), value: user }
}

/** userChange, only if the account is still at `expect` (null: still absent). */
export function userChangeExpecting(user: AccountRecord, expect: Version | null): StoreChange {
  return { ...userChange(user), expect }
}

/** Whether a change writes or deletes this user's account record. */
export function isUserChange(change: StoreChange, username: string): boolean {
  return change.key === userKey(username)
}

export function getLogin(store: Store, username: string): Promise<LoginRecord | undefined> {
  return readStored(store, loginKey(username), LoginRecord, 'last login')
}

export function getLoginVersioned(store: Store, username: string): Promise<Versioned<LoginRecord> | undefined> {
  return readStoredVersioned(store, loginKey(username), LoginRecord, 'last login')
}

/** The last login; with `expect`, only if that record is still at that version (null: still absent). */
export function loginChange(username: string, login: LoginRecord, expect?: Version | null): StoreChange {
  return { key: loginKey(username), value: login, ...(expect !== undefined ? { expect } : {}) }
}

export function getRecovery(store: Store, username: string): Promise<RecoveryHashes | undefined> {
  return readStored(store, recoveryKey(username), RecoveryRecord, 'recovery code')
}

export function getRecoveryVersioned(store: Store, username: string): Promise<Versioned<RecoveryHashes> | undefined> {
  return readStoredVersioned(store, recoveryKey(username), RecoveryRecord, 'recovery code')
}

/** The recovery-code hashes; with `expect`, only if they are still at that version (null: still absent). */
export function recoveryChange(username: string, recovery: RecoveryHashes, expect?: Version | null): StoreChange {
  return { key: recoveryKey(username), value: recovery, ...(expect !== undefined ? { expect } : {}) }
}

/**
 * A new account and its recovery-code hashes, to commit together (with its audit entry and role
 * index): the hashes come first, so no reader ever sees an account without them.
 */
export function newAccountChanges(user: AccountRecord, recovery?: RecoveryHashes): StoreChange[] {
  return [...(recovery ? [recoveryChange(user.username, recovery)] : []), userChange(user)]
}

/** Deletes of every account record the user has (the guard's and the sessions' are theirs). */
export async function removeAccountChanges(store: Store, username: string): Promise<StoreChange[]> {
  const keys = [userKey(username), loginKey(username), recoveryKey(username)]
  const present = await Promise.all(keys.map((key) => store.has(key)))
  return keys.filter((_, i) => present[i]).map((key) => ({ key, delete: true as const }))
}
