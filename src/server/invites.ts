import { z } from 'zod'
import { StoreConflict, type Store, type StoreChange } from '../store/index.js'
import { Role } from '../protocol/fields.js'
import { SecureLoginError } from '../protocol/errors.js'
import { hashToken, issueToken, sameHash, tokenKind } from './opaque-tokens.js'
import { readStored, readStoredVersioned } from './stored.js'

// Who may register, and as what (docs/protocol.md, "Registration policy"):
// - the bootstrap token, printed by a server whose store has no system_admin, makes the first
//   system_admin (single use, expires);
// - an invite (`admin invite`, `admin add`) registers one person with its role, and only under
//   its name when it names one (single use, expires);
// - otherwise the policy decides: `open` lets anyone register as a regular_user, `invite` and
//   `closed` refuse. Without --registration it is `invite`, whether or not a system_admin exists:
//   a store with none (a new server, or one whose last system_admin went) is exactly where a
//   stranger must not walk in, so there only the bootstrap token registers.
// `closed` refuses invites too; only the bootstrap token still works.

export type RegistrationPolicy = 'open' | 'invite' | 'closed'
export const BOOTSTRAP_KEY = 'bootstrap'
export const DEFAULT_BOOTSTRAP_TTL_MS = 24 * 60 * 60_000

export const TokenRecord = z.object({
  hash: z.string(),
  role: Role,
  /** An invite for one name only (`admin add`); null: any name. */
  user: z.string().nullable(),
  createdBy: z.string().nullable(),
  createdAt: z.number(),
  expiresAt: z.number(),
})
export type TokenRecord = z.infer<typeof TokenRecord>

/** What a registration may become, and the record it spends. */
export interface Grant {
  role: Role
  via: 'open' | 'bootstrap' | 'invite'
  /** The token record to delete in the same commit as the account. */
  tokenKey?: string
  tokenHash?: string
}

export const inviteKey = (id: string) => `invite/${id}`
export const roleIndexKey = (role: Role, user: string) => `role/${role}/${user}`

const SYSTEM_ADMINS_PREFIX = 'role/system_admin/'

/** How many system_admins exist (the role index keeps only admins and system_admins). */
export async function systemAdminCount(store: Store): Promise<number> {
  return (await store.keys(SYSTEM_ADMINS_PREFIX)).length
}

/** The store changes that move a user's role in the index. */
export function roleIndexChanges(user: string, from: Role | undefined, to: Role | undefined): StoreChange[] {
  const changes: StoreChange[] = []
  if (from && from !== 'regular_user' && from !== to) changes.push({ key: roleIndexKey(from, user), delete: true })
  if (to && to !== 'regular_user' && from !== to) changes.push({ key: roleIndexKey(to, user), value: {} })
  return changes
}

/**
 * roleIndexChanges, made safe against a race for the last system_admin when `user` leaves that
 * role (demoted or removed): its index key is deleted and every other system_admin's key is
 * written again unchanged, each as a compare-and-set on the version read here, just after the
 * rule was checked on the count. Of two such changes committed from one view of the index (two
 * processes on one database), the second finds a key the first wrote and fails with
 * ERR_STORE_CONFLICT, so the caller reads again and checks the rule on what is there now; and a
 * listing here that holds no other system_admin means the count was stale (another change came
 * between): ERR_STORE_CONFLICT too. In one
 * process the server also runs these changes one at a time (src/server/calls.ts): the audit log
 * commits the appends of one batch together, and expectations are checked before any of them.
 */
export async function roleIndexChangesChecked(
  store: Store,
  user: string,
  from: Role | undefined,
  to: Role | undefined,
): Promise<StoreChange[]> {
  const changes = roleIndexChanges(user, from, to)
  if (from !== 'system_admin' || to === 'system_admin') return changes
  const leaving = roleIndexKey('system_admin', user)
  const guarded: StoreChange[] = []
  for (const key of await store.keys(SYSTEM_ADMINS_PREFIX)) {
    const version = await store.version(key)
    // Gone since the count: the rule was checked on a stale view.
    if (version === null) throw new StoreConflict(key)
    if (key !== leaving) guarded.push({ key, value: {}, expect: version })
  }
  // The rule was checked on a count that said another system_admin stays; if none is left in
  // this listing, another change took them since the count: read again and check again.
  if (guarded.length === 0) throw new StoreConflict(leaving)
  const leavingVersion = await store.version(leaving)
  return [
    ...changes.map((change) =>
      change.key === leaving && leavingVersion !== null ? { ...change, expect: leavingVersion } : change,
    ),
    ...guarded,
  ]
}

/** A fresh bootstrap token when the store has no system_admin (it replaces an older one); else undefined. */
export async function issueBootstrapToken(
  store: Store,
  nowMs: number,
  randomBytes: (size: number) => Buffer,
  ttlMs = DEFAULT_BOOTSTRAP_TTL_MS,
): Promise<{ token: string; expiresAt: number } | undefined> {
  if ((await systemAdminCount(store)) > 0) {
    if (await store.has(BOOTSTRAP_KEY)) await store.commit([{ key: BOOTSTRAP_KEY, delete: true }])
    return undefined
  }
  const { token, hash } = issueToken('bootstrap', randomBytes)
  const record: TokenRecord = {
    hash,
    role: 'system_admin',
    user: null,
    createdBy: null,
    createdAt: nowMs,
    expiresAt: nowMs + ttlMs,
  }
  await store.commit([{ key: BOOTSTRAP_KEY, value: record }])
  return { token, expiresAt: record.expiresAt }
}

export function createInvite(opts: {
  role: Role
  user: string | null
  createdBy: string
  nowMs: number
  ttlMs: number
  randomBytes: (size: number) => Buffer
}): { token: string; record: TokenRecord; change: StoreChange } {
  const { token, hash, id } = issueToken('invite', opts.randomBytes)
  const record: TokenRecord = {
    hash,
    role: opts.role,
    user: opts.user,
    createdBy: opts.createdBy,
    createdAt: opts.nowMs,
    expiresAt: opts.nowMs + opts.ttlMs,
  }
  return { token, record, change: { key: inviteKey(id), value: record } }
}

const invalidToken = () =>
  new SecureLoginError('ERR_FORBIDDEN', 'the invite or bootstrap token is not valid (unknown, used or expired)', {
    hint: 'ask an administrator for a new invite (securelogin admin invite)',
  })

/** What this registration may become; throws ERR_FORBIDDEN when the policy or the token says no. */
export async function grantFor(
  store: Store,
  policy: RegistrationPolicy | undefined,
  username: string,
  token: string | undefined,
  nowMs: number,
): Promise<Grant> {
  if (token === undefined) {
    const effective = policy ?? 'invite'
    if (effective === 'open') return { role: 'regular_user', via: 'open' }
    throw new SecureLoginError(
      'ERR_FORBIDDEN',
      effective === 'closed' ? 'registration is closed on this server' : 'registration on this server needs an invite',
      {
        hint:
          effective === 'closed'
            ? 'ask an administrator'
            : 'ask an administrator for one, then: securelogin register --invite TOKEN',
      },
    )
  }
  const kind = tokenKind(token)
  const { hash, id } = hashToken(token)
  const key = kind === 'bootstrap' ? BOOTSTRAP_KEY : kind === 'invite' ? inviteKey(id) : undefined
  const record = key ? await readStored(store, key, TokenRecord, 'invite') : undefined
  if (!key || !record || !sameHash(record.hash, hash) || record.expiresAt <= nowMs) throw invalidToken()
  if (kind === 'invite' && policy === 'closed') {
    throw new SecureLoginError('ERR_FORBIDDEN', 'registration is closed on this server, invites included', {
      hint: 'ask an administrator',
    })
  }
  // Named only to a holder of this valid invite: the name is what they were given with it, and
  // a client can offer it in place of the one typed (docs/protocol.md, register_start).
  if (record.user !== null && record.user !== username) {
    throw new SecureLoginError('ERR_FORBIDDEN', `this invite is for the user name ${record.user}`, {
      hint: `register as ${record.user}, or ask an administrator for an invite for the name you want`,
    })
  }
  return { role: record.role, via: kind === 'bootstrap' ? 'bootstrap' : 'invite', tokenKey: key, tokenHash: hash }
}

/**
 * At confirmation: the change that spends the grant's token, expecting it as read now, or
 * undefined when it is gone (spent by a parallel registration) or expired; none for a
 * registration without a token. Of two registrations that spend one token at the same moment,
 * in this process or two, one commits and the other finds it gone.
 */
export async function spendGrant(store: Store, grant: Grant, nowMs: number): Promise<StoreChange[] | undefined> {
  if (!grant.tokenKey) return []
  const read = await readStoredVersioned(store, grant.tokenKey, TokenRecord, 'invite')
  if (read === undefined || !sameHash(read.value.hash, grant.tokenHash!) || read.value.expiresAt <= nowMs)
    return undefined
  return [{ key: grant.tokenKey, delete: true, expect: read.version }]
}
