import { describe, expect, it } from 'vitest'
import { canInvite, canManage, whyNotRemove, whyNotSetRole, type Role } from '../../src/auth/roles.js'

// The role rules alone; test/e2e/roles.test.ts runs them through the real server and CLI.

const R: Role = 'regular_user'
const A: Role = 'admin'
const S: Role = 'system_admin'

describe('role rules', () => {
  it.each([
    [R, R, false],
    [R, A, false],
    [R, S, false],
    [A, R, true],
    [A, A, false],
    [A, S, false],
    [S, R, true],
    [S, A, true],
    [S, S, true],
  ])('%s manages %s: %s', (actor, target, expected) => {
    expect(canManage(actor, target)).toBe(expected)
    expect(canInvite(actor, target)).toBe(expected)
  })

  it.each([
    // actor, target's role now, new role, self, system_admins, refused because
    [A, R, A, false, 1, 'admin cannot give the role admin'],
    [A, A, R, false, 1, 'admin cannot manage admin accounts'],
    [A, A, S, true, 1, 'nobody can raise their own role'],
    [R, R, A, true, 1, 'nobody can raise their own role'],
    [S, S, A, true, 1, 'the last system_admin cannot be demoted'],
    [S, S, R, false, 1, 'the last system_admin cannot be demoted'],
    [S, S, A, true, 2, undefined],
    [S, A, S, false, 1, undefined],
    [S, R, A, false, 1, undefined],
    [A, R, R, false, 1, undefined],
    [A, A, A, true, 1, 'admin cannot manage admin accounts'],
  ] as const)('%s sets a %s to %s (self %s, %d system_admins): %s', (actor, target, role, self, count, why) => {
    expect(whyNotSetRole(actor, target, role, self, count)).toBe(why)
  })

  it.each([
    [A, R, 1, undefined],
    [A, A, 1, 'admin cannot manage admin accounts'],
    [A, S, 2, 'admin cannot manage system_admin accounts'],
    [R, R, 1, 'regular_user cannot manage regular_user accounts'],
    [S, A, 1, undefined],
    [S, S, 1, 'the last system_admin cannot be removed'],
    [S, S, 2, undefined],
  ] as const)('%s removes a %s (%d system_admins): %s', (actor, target, count, why) => {
    expect(whyNotRemove(actor, target, count)).toBe(why)
  })
})
