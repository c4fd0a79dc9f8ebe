import { chmod, copyFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli } from '../helpers/cli.js'
import {
  Lab,
  describeResult,
  inBatches,
  newPassword,
  type Account,
  type CliResult,
  type Role,
} from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// The role table (issue 6): every command, run through the real CLI against the real server
// process, by each kind of caller. The server decides every cell (src/auth/roles.ts,
// src/server/calls.ts); the CLI only carries the answer. A cell is `allowed` (exit 0) or
// ERR_FORBIDDEN (exit 1, that code in the JSON error on stderr).
//
// Callers: `system_admin` (sys), `admin` (adm), `regular_user` (reg); `logged out` (no saved
// session: out logged in, then out); `expired` (a session left unused past the 30 min idle
// timeout) and `revoked` (a session an admin revoked with `admin revoke --user`). The last three
// are system_admins, so only the state of their session can be why they are refused.

const hasOathtool = requireTool('oathtool')

const A = 'allowed'
const F = 'ERR_FORBIDDEN'
type Expected = typeof A | typeof F

const CALLERS = ['system_admin', 'admin', 'regular_user', 'logged out', 'expired', 'revoked'] as const
type Caller = (typeof CALLERS)[number]

/** What a row acts on: a user who exists for every cell, or a fresh one per cell (the cell may consume it). */
type TargetKind = 'regular' | 'admin' | 'system_admin'

interface Row {
  command: string
  /** The CLI arguments; `target` is the row's target user, `self` the caller's own name, `cell` unique per cell. */
  args: (names: { target: string; self: string; cell: string }) => string[]
  expected: Record<Caller, Expected>
  /** A fresh target per cell, for commands that change or remove it. */
  fresh?: TargetKind
  /** For fresh targets: whether the target shows the command's effect (checked once the table has run). */
  changed?: (user: UserInfo | undefined) => boolean
}

interface UserInfo {
  user: string
  role: Role
  twoFactor: 'enrolled' | 'reset'
}

function row(
  command: string,
  args: Row['args'],
  cells: [Expected, Expected, Expected, Expected, Expected, Expected],
  more: Partial<Row> = {},
): Row {
  return {
    command,
    args,
    expected: Object.fromEntries(CALLERS.map((caller, i) => [caller, cells[i]!])) as Record<Caller, Expected>,
    ...more,
  }
}

const removed = (user: UserInfo | undefined) => user === undefined
const is = (role: Role) => (user: UserInfo | undefined) => user?.role === role
const resetPending = (user: UserInfo | undefined) => user?.twoFactor === 'reset'

// `plain` is a regular user every non-consuming row acts on.
// prettier-ignore
const TABLE: Row[] = [
  //   command                                  arguments                                                     system_admin admin regular  logged out expired revoked
  row('whoami',                                 () => ['whoami'],                                             [A, A, A, F, F, F]),
  row('sessions',                               () => ['sessions'],                                           [A, A, A, F, F, F]),
  // Logging out is idempotent: without a live session there is nothing to revoke, and it says so (revoked 0).
  row('logout',                                 () => ['logout'],                                             [A, A, A, A, A, A]),
  row('admin users',                            () => ['admin', 'users'],                                     [A, A, F, F, F, F]),
  row('admin invite --role regular_user',       () => ['admin', 'invite', '--role', 'regular_user'],          [A, A, F, F, F, F]),
  row('admin invite --role admin',              () => ['admin', 'invite', '--role', 'admin'],                 [A, F, F, F, F, F]),
  row('admin add NAME --role regular_user',     ({ cell }) => ['admin', 'add', `new-${cell}`, '--role', 'regular_user'], [A, A, F, F, F, F]),
  row('admin remove (regular target)',          ({ target }) => ['admin', 'remove', target, '--yes'],         [A, A, F, F, F, F], { fresh: 'regular', changed: removed }),
  row('admin remove (admin target)',            ({ target }) => ['admin', 'remove', target, '--yes'],         [A, F, F, F, F, F], { fresh: 'admin', changed: removed }),
  row('admin remove (system_admin target)',     ({ target }) => ['admin', 'remove', target, '--yes'],         [A, F, F, F, F, F], { fresh: 'system_admin', changed: removed }),
  row('admin role (promote regular to admin)',  ({ target }) => ['admin', 'role', target, 'admin'],           [A, F, F, F, F, F], { fresh: 'regular', changed: is('admin') }),
  row('admin role (demote admin to regular)',   ({ target }) => ['admin', 'role', target, 'regular_user'],    [A, F, F, F, F, F], { fresh: 'admin', changed: is('regular_user') }),
  // A system_admin has no higher role to take: giving itself its own role changes nothing.
  row('admin role (raise own role)',            ({ self }) => ['admin', 'role', self, self === 'reg' ? 'admin' : 'system_admin'], [A, F, F, F, F, F]),
  row('admin reset-2fa (regular target)',       ({ target }) => ['admin', 'reset-2fa', target],               [A, A, F, F, F, F], { fresh: 'regular', changed: resetPending }),
  row('admin reset-2fa (admin target)',         ({ target }) => ['admin', 'reset-2fa', target],               [A, F, F, F, F, F], { fresh: 'admin', changed: resetPending }),
  row('admin unlock (regular target)',          () => ['admin', 'unlock', 'plain'],                           [A, A, F, F, F, F]),
  row('admin sessions',                         () => ['admin', 'sessions'],                                  [A, A, F, F, F, F]),
  row('admin sessions NAME (regular target)',   () => ['admin', 'sessions', 'plain'],                         [A, A, F, F, F, F]),
  row('admin revoke --user NAME (regular)',     () => ['admin', 'revoke', '--user', 'plain'],                 [A, A, F, F, F, F]),
  row('admin audit',                            () => ['admin', 'audit', '--limit', '20'],                    [A, A, F, F, F, F]),
  row('admin audit verify',                     () => ['admin', 'audit', 'verify'],                           [A, A, F, F, F, F]),
]

const CALLER_NAME: Record<Caller, string> = {
  system_admin: 'sys',
  admin: 'adm',
  regular_user: 'reg',
  'logged out': 'out',
  expired: 'exp',
  revoked: 'rvk',
}
const SHORT: Record<Caller, string> = {
  system_admin: 'sa',
  admin: 'ad',
  regular_user: 'ru',
  'logged out': 'lo',
  expired: 'ex',
  revoked: 'rv',
}

/**
 * Fresh targets: the system_admin's cell and the admin's cell each get their own (they reach the
 * handler); the other callers are refused before any target is looked up (regular users by the
 * role check, the last three by the session check), so they share the admin cell's target.
 */
const ownTarget = (caller: Caller) => caller === 'system_admin'
const targetName = (rowIndex: number, caller: Caller) => `t${rowIndex}-${ownTarget(caller) ? 'sa' : 'ad'}`
const cellName = (rowIndex: number, caller: Caller) => `${rowIndex}-${SHORT[caller]}`

let lab: Lab
let sys: Account
const account = (name: string) => lab.accounts.get(name)!

/** The home a cell runs in: the caller's own, or a copy of an ended session's file, or (logout) a session of its own. */
const cellHomes = new Map<string, string>()
const homeFor = (rowIndex: number, caller: Caller) =>
  cellHomes.get(cellName(rowIndex, caller)) ?? lab.homeOf(CALLER_NAME[caller])

function expectAllowed(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
  expect(result.error, what).toBeUndefined()
}

function expectForbidden(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe('ERR_FORBIDDEN')
}

async function copySessionInto(fromHome: string, toHome: string): Promise<void> {
  const to = lab.sessionFile(toHome)
  await mkdir(dirname(to), { recursive: true, mode: 0o700 })
  await copyFile(lab.sessionFile(fromHome), to)
  await chmod(to, 0o600)
}

async function users(by: Account): Promise<Map<string, UserInfo>> {
  const result = await lab.run(by, ['admin', 'users'])
  expectAllowed(result, `admin users by ${by.name}`)
  return new Map((result.json!['users'] as UserInfo[]).map((user) => [user.user, user]))
}

beforeAll(async () => {
  lab = await Lab.start('roles', { serverArgs: ['--registration', 'open'] })
  if (!hasOathtool) return
  sys = await lab.register('sys', { bootstrapToken: await lab.bootstrapToken() })
  await lab.mustLogin(sys)
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

describe.runIf(hasOathtool)('with one system_admin', () => {
  it('the bootstrap registration made sys the system_admin', async () => {
    const whoami = await lab.run(sys, ['whoami'])
    expectAllowed(whoami, 'whoami')
    expect(whoami.json).toMatchObject({ user: 'sys', role: 'system_admin' })
    // This server runs with the default session times: 30 minutes idle, 12 hours in all.
    const { session } = whoami.json!
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(30 * 60_000)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(12 * 3_600_000)
  })

  it('sys can neither remove nor demote itself: it is the last system_admin', async () => {
    expectForbidden(await lab.run(sys, ['admin', 'remove', 'sys', '--yes']), 'admin remove sys')
    expectForbidden(await lab.run(sys, ['admin', 'role', 'sys', 'admin']), 'admin role sys admin')
    expectForbidden(await lab.run(sys, ['admin', 'role', 'sys', 'regular_user']), 'admin role sys regular_user')
    expect((await users(sys)).get('sys')).toMatchObject({ role: 'system_admin' })
  })
})

describe.runIf(hasOathtool)('the role table', () => {
  beforeAll(async () => {
    // Callers (reg by open registration and adm by invite through the CLI; the rest in bulk), and
    // `plain`, the regular user the non-consuming rows act on.
    await lab.register('reg')
    await lab.registerInvited(sys, 'adm', 'admin')
    await lab.registerDirect('plain')
    await lab.registerInvitedDirect(sys, [
      ['sys2', 'system_admin'],
      ['out', 'system_admin'],
      ['exp', 'system_admin'],
      ['rvk', 'system_admin'],
    ])
    // Fresh targets: regular ones by open registration, the others by invite.
    const targets: Array<[string, TargetKind]> = []
    TABLE.forEach((r, i) => {
      if (r.fresh)
        for (const caller of ['system_admin', 'admin'] as const) targets.push([targetName(i, caller), r.fresh])
    })
    await inBatches(
      targets.filter(([, kind]) => kind === 'regular'),
      2,
      ([name]) => lab.registerDirect(name),
    )
    await lab.registerInvitedDirect(sys, targets.filter(([, kind]) => kind !== 'regular') as Array<[string, Role]>)

    // Sessions: the callers' (reg's through the CLI, the rest in bulk), and one more each for the
    // logout row (logging out ends the session).
    await lab.mustLogin(account('reg'))
    const logoutRow = TABLE.findIndex((r) => r.command === 'logout')
    const logins: Array<[string, string]> = ['sys2', 'adm', 'out', 'exp', 'rvk'].map((name) => [
      name,
      account(name).home,
    ])
    for (const caller of ['system_admin', 'admin', 'regular_user'] as const) {
      const home = lab.homeOf(`logout-${SHORT[caller]}`)
      cellHomes.set(cellName(logoutRow, caller), home)
      logins.push([CALLER_NAME[caller], home])
    }
    await inBatches(logins, 2, ([name, home]) => lab.loginDirect(account(name), { home }))

    // Logged out: out logs out, so no session file is left.
    const logout = await lab.run(account('out'), ['logout'])
    expectAllowed(logout, 'logout by out')
    expect(await lab.savedSession(account('out').home)).toBeUndefined()

    // Revoked: an admin revokes every session of rvk; rvk's client still holds the token.
    const revoke = await lab.run(sys, ['admin', 'revoke', '--user', 'rvk'])
    expectAllowed(revoke, 'admin revoke --user rvk')
    expect(revoke.json).toMatchObject({ revoked: 1 })

    // Expired: 20 minutes pass, everyone but exp uses their session, 11 more pass: exp's has
    // been idle 31 minutes (the idle timeout is 30), the others' 11.
    lab.clock.advance(20 * 60_000)
    const live = ['sys', 'sys2', 'adm', 'reg']
      .map((name) => account(name).home)
      .concat(['sa', 'ad', 'ru'].map((s) => lab.homeOf(`logout-${s}`)))
    for (const home of live) await lab.asUser(home, async () => {})
    lab.clock.advance(11 * 60_000)

    // An ended session's file is deleted by the first command that finds it ended, so each
    // cell of those two columns gets its own copy of it.
    for (let i = 0; i < TABLE.length; i++) {
      for (const caller of ['expired', 'revoked'] as const) {
        const home = lab.homeOf(`cell-${cellName(i, caller)}`)
        cellHomes.set(cellName(i, caller), home)
        await copySessionInto(account(CALLER_NAME[caller]).home, home)
      }
    }
  }, 240_000)

  const cells = TABLE.flatMap((r, rowIndex) =>
    CALLERS.map((caller) => ({ ...r, rowIndex, caller, expect: r.expected[caller] })),
  )

  it.concurrent.for(cells)(
    '$command by $caller: $expect',
    async ({ rowIndex, caller, args, fresh, expect: expected, command }, { expect }) => {
      const self = CALLER_NAME[caller]
      const target = fresh ? targetName(rowIndex, caller) : 'plain'
      const home = homeFor(rowIndex, caller)
      const result = await lab.runIn(home, args({ target, self, cell: cellName(rowIndex, caller) }))
      const what = `${command} by ${caller}`
      if (expected === A) {
        expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
        expect(result.error, what).toBeUndefined()
      } else {
        expect(result.code, `${what}: ${describeResult(result)}`).toBe(1)
        expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe(F)
      }
      if (caller === 'logged out' && expected === F) expect(result.error?.message).toMatch(/^not logged in/)
      if (command === 'whoami' && expected === A) expect(result.json).toMatchObject({ event: 'whoami', user: self })
      if (command === 'logout') {
        // A live session is revoked on the server; an ended or missing one leaves nothing to revoke.
        expect(result.json).toMatchObject({
          event: 'logout',
          revoked: ['system_admin', 'admin', 'regular_user'].includes(caller) ? 1 : 0,
        })
        expect(await lab.savedSession(home)).toBeUndefined()
      }
      if (caller === 'expired' || caller === 'revoked')
        expect(await lab.savedSession(home), 'an ended session is forgotten').toBeUndefined()
    },
  )
})

describe.runIf(hasOathtool)('after the table', () => {
  it('a fresh target changed exactly where its cell was allowed', async () => {
    const now = await users(account('sys2'))
    const wrong: string[] = []
    TABLE.forEach((r, i) => {
      if (!r.fresh) return
      for (const caller of ['system_admin', 'admin'] as const) {
        const name = targetName(i, caller)
        const changed = r.changed!(now.get(name))
        if (changed !== (r.expected[caller] === A))
          wrong.push(`${r.command}: target ${name} (${caller}'s cell) ${changed ? 'changed' : 'unchanged'}`)
      }
    })
    expect(wrong).toEqual([])
  })

  it('the callers whose cells were refused kept their roles, and the refused invites made nobody', async () => {
    const now = await users(sys)
    expect(now.get('adm')?.role).toBe('admin')
    expect(now.get('reg')?.role).toBe('regular_user')
    expect(now.get('sys')?.role).toBe('system_admin')
    expect(now.has('plain')).toBe(true)
  })

  it('the expired and the revoked session stay refused', async () => {
    for (const home of [account('exp').home, account('rvk').home]) {
      const result = await lab.runIn(home, ['whoami'])
      expectForbidden(result, `whoami in ${home}`)
    }
  })
})

// `passwd` and `reset-2fa` run on no saved session: each logs in afresh with the password and a
// code (a resumed session proves only that its token was stolen or kept). So every caller may,
// whatever their role and whatever became of their session; run after the table, since a
// password change revokes the caller's other sessions.
describe.runIf(hasOathtool)('passwd and reset-2fa prove the password instead: every caller may', () => {
  it.concurrent.for(CALLERS.map((caller) => ({ caller })))('$caller', async ({ caller }, { expect }) => {
    const who = account(CALLER_NAME[caller])
    const nextPassword = newPassword()
    const passwd = await lab.run(
      who,
      ['passwd', '--user', who.name, '--password-stdin', '--otp', lab.codeFor(who)],
      `${who.password}\n${nextPassword}\n`,
    )
    expect(passwd.code, `passwd by ${caller}: ${describeResult(passwd)}`).toBe(0)
    expect(passwd.json).toMatchObject({ event: 'password_changed', user: who.name })
    who.password = nextPassword

    const oldSecret = who.totpSecret
    const { result } = await lab.enrolThrough(who, who.home, [
      'reset-2fa',
      '--user',
      who.name,
      '--password-stdin',
      '--otp',
      lab.codeFor(who),
    ])
    expect(result.code, `reset-2fa by ${caller}: ${describeResult(result)}`).toBe(0)
    expect(result.json).toMatchObject({ event: 'totp_reset', user: who.name })
    expect(who.totpSecret).not.toBe(oldSecret)

    // Both logins saved a session: the caller is logged in again, in their own role.
    const whoami = await lab.run(who, ['whoami'])
    expect(whoami.code, `whoami by ${caller} after passwd: ${describeResult(whoami)}`).toBe(0)
    expect(whoami.json).toMatchObject({
      user: who.name,
      role: caller === 'admin' ? 'admin' : caller === 'regular_user' ? 'regular_user' : 'system_admin',
    })
  })
})

describe.runIf(hasOathtool)('with two system_admins', () => {
  it('down to exactly sys and sys2, sys may demote itself; then sys2, the last, may neither leave nor step down', async () => {
    const now = await users(sys)
    const others = [...now.values()]
      .filter((u) => u.role === 'system_admin' && u.user !== 'sys' && u.user !== 'sys2')
      .map((u) => u.user)
    await inBatches(others, 2, async (name) =>
      expectAllowed(await lab.run(sys, ['admin', 'remove', name, '--yes']), `admin remove ${name}`),
    )
    expect(
      [...(await users(sys)).values()]
        .filter((u) => u.role === 'system_admin')
        .map((u) => u.user)
        .sort(),
    ).toEqual(['sys', 'sys2'])

    const demote = await lab.run(sys, ['admin', 'role', 'sys', 'admin'])
    expectAllowed(demote, 'admin role sys admin (two system_admins)')
    expect(demote.json).toMatchObject({ user: 'sys', role: 'admin', previous: 'system_admin' })
    // sys is an admin now: it cannot restore itself.
    expectForbidden(
      await lab.run(sys, ['admin', 'role', 'sys', 'system_admin']),
      'admin role sys system_admin by sys (admin)',
    )
    const sys2 = account('sys2')
    expectForbidden(
      await lab.run(sys2, ['admin', 'remove', 'sys2', '--yes']),
      'admin remove sys2 (the last system_admin)',
    )
    expectForbidden(
      await lab.run(sys2, ['admin', 'role', 'sys2', 'admin']),
      'admin role sys2 admin (the last system_admin)',
    )
    expectAllowed(await lab.run(sys2, ['admin', 'role', 'sys', 'system_admin']), 'admin role sys system_admin by sys2')
  })

  it('with two, sys may remove itself; its session ends with it', async () => {
    const result = await lab.run(sys, ['admin', 'remove', 'sys', '--yes'])
    expectAllowed(result, 'admin remove sys (two system_admins)')
    expect(result.json).toMatchObject({ event: 'removed', user: 'sys', revokedSessions: 1 })
    expectForbidden(await lab.run(sys, ['whoami']), 'whoami by the removed sys')
    const now = await users(account('sys2'))
    expect(now.has('sys')).toBe(false)
    expect(now.get('sys2')?.role).toBe('system_admin')
  })
})
