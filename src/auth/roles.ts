// Who may do what to whom. Pure rules; the server applies them to every call before it runs
// (src/server/calls.ts), so a modified client gains nothing.

export type Role = 'regular_user' | 'admin' | 'system_admin'

export const ROLES: readonly Role[] = ['regular_user', 'admin', 'system_admin']

const RANK: Record<Role, number> = { regular_user: 0, admin: 1, system_admin: 2 }

export function isAdmin(role: Role): boolean {
  return role !== 'regular_user'
}

/**
 * Whether `actor` may act on an account whose role is `target`: admins manage regular users,
 * system_admins manage everyone.
 */
export function canManage(actor: Role, target: Role): boolean {
  if (actor === 'system_admin') return true
  return actor === 'admin' && target === 'regular_user'
}

/**
 * Why `actor` may not give `role` to a user who is `target` now (undefined: allowed). `self`:
 * the actor is changing their own role. `systemAdmins`: how many system_admins exist now.
 */
export function whyNotSetRole(
  actor: Role,
  target: Role,
  role: Role,
  self: boolean,
  systemAdmins: number,
): string | undefined {
  if (self && RANK[role] > RANK[actor]) return 'nobody can raise their own role'
  if (!canManage(actor, target)) return `${actor} cannot manage ${target} accounts`
  if (!canManage(actor, role)) return `${actor} cannot give the role ${role}`
  if (target === 'system_admin' && role !== 'system_admin' && systemAdmins <= 1)
    return 'the last system_admin cannot be demoted'
  return undefined
}

/** Why `actor` may not remove a user who is `target` (undefined: allowed). */
export function whyNotRemove(actor: Role, target: Role, systemAdmins: number): string | undefined {
  if (!canManage(actor, target)) return `${actor} cannot manage ${target} accounts`
  if (target === 'system_admin' && systemAdmins <= 1) return 'the last system_admin cannot be removed'
  return undefined
}

/** Whether `actor` may hand out an invite for `role`. */
export function canInvite(actor: Role, role: Role): boolean {
  return canManage(actor, role)
}
