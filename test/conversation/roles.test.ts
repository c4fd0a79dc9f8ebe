import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import type { AuditEntry, AccountSummary } from '../../src/protocol/calls.js'
import type { Role } from '../../src/protocol/messages.js'
import { Bench, MINUTE, newPassword, newSalt, type Peer, type User } from '../helpers/conversation.js'
import { noteSecret } from '../helpers/secrets.js'

// The role table (issue 6), one layer below the CLI: every client message a logged-in person can
// send, by each kind of caller, answered by the server's conversation in this process. The
// server decides every cell (src/auth/roles.ts, src/server/calls.ts); test/e2e/roles.test.ts
// checks that the CLI carries the answer (arguments, exit code, the error on stderr).
//
// Callers, as the CLI runs them (each command resumes the saved session on a new connection):
// `system_admin` (sys), `admin` (adm), `regular_user` (reg); `logged out` (a connection with no
// session: out logged in, then out); `expired` (a session left unused past the 30 min idle
// timeout) and `revoked` (a session an admin revoked). The last three are system_admins, so only
// the state of their session can be why they are refused; their cells run on a connection that
// resumed the session before it ended.

type Outcome = 'ok' | 'ERR_FORBIDDEN' | 'ERR_PROTOCOL'
const A = 'ok'
const F = 'ERR_FORBIDDEN'
const P = 'ERR_PROTOCOL'

const CALLERS = ['system_admin', 'admin', 'regular_user', 'logged out', 'expired', 'revoked'] as const
type Caller = (typeof CALLERS)[number]
const LIVE: readonly Caller[] = ['system_admin', 'admin', 'regular_user']

/** What a row acts on: a user who exists for every cell, or a fresh one per cell (the cell may consume it). */
type TargetKind = 'regular_user' | 'admin' | 'system_admin'
type Names = { target: string; self: string; cell: string }

interface Row {
  name: string
  /** The client message; `target` is the row's target user, `self` the caller's own name, `cell` unique per cell. */
  message: (names: Names) => Record<string, unknown>
  expected: Record<Caller, Outcome>
  /** A fresh target per cell, for calls that change or remove it. */
  fresh?: TargetKind
  /** For fresh targets: whether the target shows the call's effect (checked once the table has run). */
  changed?: (user: AccountSummary | undefined) => boolean
  /** The audit action the call records, when refused for the caller's role and (if `ok`) when it succeeds. */
  action?: string
  ok?: boolean
  /** The target an allowed cell's audit entry names (default: the `user` argument, or none). */
  auditTarget?: (names: Names) => string | null
}

function row(
  name: string,
  message: Row['message'],
  cells: [Outcome, Outcome, Outcome, Outcome, Outcome, Outcome],
  more: Partial<Row> = {},
): Row {
  return {
    name,
    message,
    expected: Object.fromEntries(CALLERS.map((caller, i) => [caller, cells[i]!])) as Record<Caller, Outcome>,
    ...more,
  }
}

const call = (op: string, args: Record<string, unknown> = {}) => ({ type: 'call', op, args })
const removed = (user: AccountSummary | undefined) => user === undefined
const is = (role: Role) => (user: AccountSummary | undefined) => user?.role === role
const resetPending = (user: AccountSummary | undefined) => user?.twoFactor === 'reset'
const DAY = 24 * 3600
const SESSION = '(the session)'

let signedToken = ''

// `plain` is a regular user every non-consuming row acts on.
// prettier-ignore
const TABLE: Row[] = [
  //   name                                   message                                                          system_admin admin regular  logged out expired revoked
  row('whoami',                               () => call('whoami'),                                            [A, A, A, F, F, F]),
  row('sessions (own)',                       () => call('sessions'),                                          [A, A, A, F, F, F], { action: 'session.list' }),
  // The CLI's logout of a session that has ended says "revoked 0" (test/e2e/roles.test.ts): the server refuses.
  row('logout',                               () => call('logout'),                                            [A, A, A, F, F, F], { action: 'session.logout', ok: true, auditTarget: () => SESSION }),
  row('revoke others',                        () => call('revoke', { others: true }),                          [A, A, A, F, F, F], { action: 'session.revoke', ok: true, auditTarget: ({ self }) => self }),
  row('token',                                () => call('token', { audience: 'billing' }),                    [A, A, A, F, F, F], { action: 'token.issued', ok: true, auditTarget: () => SESSION }),
  // A resumed session proves only that its token was kept: these want a login on the connection.
  row('passwd (on a resumed session)',        () => call('passwd', { salt: 'ab'.repeat(32), verifier: 'cd'.repeat(256), kdf: { name: 'scrypt', logN: 16, r: 8, p: 1 } }), [F, F, F, F, F, F], { action: 'password.change' }),
  row('totp_reset (on a resumed session)',    () => call('totp_reset'),                                        [F, F, F, F, F, F], { action: 'totp.reset' }),
  row('totp_confirm (nothing to confirm)',    () => call('totp_confirm', { code: '000000' }),                  [P, P, P, F, F, F]),
  row('recovery_codes_renew (resumed)',       () => ({ type: 'recovery_codes_renew' }),                        [F, F, F, P, F, F]),
  // No login needed: anyone holding a token may ask about it, and the keys are public.
  row('jwks_get',                             () => ({ type: 'jwks_get' }),                                    [A, A, A, A, A, A]),
  row('token_check',                          () => ({ type: 'token_check', token: signedToken, audience: 'billing' }), [A, A, A, A, A, A]),
  row('users',                                () => call('users'),                                             [A, A, F, F, F, F], { action: 'user.list' }),
  row('invite regular_user',                  () => call('invite', { role: 'regular_user', ttlSeconds: DAY }), [A, A, F, F, F, F], { action: 'invite.create', ok: true }),
  row('invite admin',                         () => call('invite', { role: 'admin', ttlSeconds: DAY }),        [A, F, F, F, F, F], { action: 'invite.create', ok: true }),
  row('invite system_admin',                  () => call('invite', { role: 'system_admin', ttlSeconds: DAY }), [A, F, F, F, F, F], { action: 'invite.create', ok: true }),
  row('invite NAME regular_user (admin add)', ({ cell }) => call('invite', { role: 'regular_user', user: `new-${cell}`, ttlSeconds: DAY }), [A, A, F, F, F, F], { action: 'invite.create', ok: true }),
  row('remove (regular target)',              ({ target }) => call('remove', { user: target }),                [A, A, F, F, F, F], { fresh: 'regular_user', changed: removed, action: 'user.remove', ok: true }),
  row('remove (admin target)',                ({ target }) => call('remove', { user: target }),                [A, F, F, F, F, F], { fresh: 'admin', changed: removed, action: 'user.remove', ok: true }),
  row('remove (system_admin target)',         ({ target }) => call('remove', { user: target }),                [A, F, F, F, F, F], { fresh: 'system_admin', changed: removed, action: 'user.remove', ok: true }),
  row('set_role (promote regular to admin)',  ({ target }) => call('set_role', { user: target, role: 'admin' }), [A, F, F, F, F, F], { fresh: 'regular_user', changed: is('admin'), action: 'user.role', ok: true }),
  row('set_role (demote admin to regular)',   ({ target }) => call('set_role', { user: target, role: 'regular_user' }), [A, F, F, F, F, F], { fresh: 'admin', changed: is('regular_user'), action: 'user.role', ok: true }),
  // A system_admin has no higher role to take: giving itself its own role changes nothing.
  row('set_role (raise own role)',            ({ self }) => call('set_role', { user: self, role: self === 'reg' ? 'admin' : 'system_admin' }), [A, F, F, F, F, F], { action: 'user.role', ok: true }),
  row('reset_2fa (regular target)',           ({ target }) => call('reset_2fa', { user: target }),             [A, A, F, F, F, F], { fresh: 'regular_user', changed: resetPending, action: 'user.reset_2fa', ok: true }),
  row('reset_2fa (admin target)',             ({ target }) => call('reset_2fa', { user: target }),             [A, F, F, F, F, F], { fresh: 'admin', changed: resetPending, action: 'user.reset_2fa', ok: true }),
  row('unlock (regular target)',              () => call('unlock', { user: 'plain' }),                         [A, A, F, F, F, F], { action: 'user.unlock', ok: true }),
  row('sessions all (admin sessions)',        () => call('sessions', { all: true }),                           [A, A, F, F, F, F], { action: 'session.list' }),
  row('sessions NAME (regular target)',       () => call('sessions', { user: 'plain' }),                       [A, A, F, F, F, F], { action: 'session.list' }),
  row('revoke user NAME (regular target)',    () => call('revoke', { user: 'plain' }),                         [A, A, F, F, F, F], { action: 'session.revoke', ok: true }),
  row('audit',                                () => call('audit', { limit: 20 }),                              [A, A, F, F, F, F], { action: 'audit.read' }),
  row('audit_verify',                         () => call('audit_verify'),                                      [A, A, F, F, F, F], { action: 'audit.verify', ok: true, auditTarget: () => null }),
]

/** The answer an allowed cell gets. */
const answerType = (message: Record<string, unknown>) =>
  message['type'] === 'call'
    ? 'result'
    : message['type'] === 'jwks_get'
      ? 'jwks'
      : message['type'] === 'token_check'
        ? 'token_checked'
        : 'recovery_codes'

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
const targetName = (rowIndex: number, caller: Caller) => `t${rowIndex}-${caller === 'system_admin' ? 'sa' : 'ad'}`
const cellName = (rowIndex: number, caller: Caller) => `${rowIndex}-${SHORT[caller]}`

let bench: Bench
/** The latest session token of each user. */
const tokens = new Map<string, string>()
/** Connections that resumed a session before it ended, one per cell of the `expired` and `revoked` columns. */
const endedPeers = new Map<string, Peer>()
const user = (name: string): User => bench.users.get(name)!

/** A new connection running as `name`'s saved session, as each CLI command opens one. */
async function as(name: string): Promise<Peer> {
  return (await bench.resume(tokens.get(name)!)).peer
}

async function users(by: string): Promise<Map<string, AccountSummary>> {
  const peer = await as(by)
  const { users } = await peer.call('users', {})
  peer.close()
  return new Map(users.map((u) => [u.user, u]))
}

beforeAll(async () => {
  bench = await Bench.start({ registration: 'open' })
  const sys = await bench.registerBootstrap('sys')
  tokens.set('sys', (await bench.login(sys)).token)
})

afterAll(async () => {
  await bench?.stop()
})

describe('with one system_admin', () => {
  it('the bootstrap registration made sys the system_admin, with the default session times', async () => {
    const { user, role, session } = await (await as('sys')).call('whoami', {})
    expect({ user, role }).toEqual({ user: 'sys', role: 'system_admin' })
    // 30 minutes idle, 12 hours in all.
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(30 * MINUTE)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(12 * 60 * MINUTE)
  })

  it('sys can neither remove nor demote itself: it is the last system_admin', async () => {
    const peer = await as('sys')
    for (const [op, args, why] of [
      ['remove', { user: 'sys' }, 'the last system_admin cannot be removed'],
      ['set_role', { user: 'sys', role: 'admin' }, 'the last system_admin cannot be demoted'],
      ['set_role', { user: 'sys', role: 'regular_user' }, 'the last system_admin cannot be demoted'],
    ] as const) {
      const refusal = await peer.refusal(call(op, args))
      expect(refusal, `${op} ${JSON.stringify(args)}`).toMatchObject({ code: F, message: why, ended: false })
    }
    expect((await users('sys')).get('sys')).toMatchObject({ role: 'system_admin' })
  })
})

describe('the role table', () => {
  /** The audit log's head before the table: the entries after it are the table's. */
  let before = 0

  beforeAll(async () => {
    const sysPeer = await as('sys')
    // Callers: reg by open registration, the others by invite; `plain`, the regular user the
    // non-consuming rows act on. They only need to exist: one password and salt for all.
    await bench.register('reg', { bulk: true })
    await bench.register('plain', { bulk: true })
    await bench.registerInvited(sysPeer, 'adm', 'admin', { bulk: true })
    for (const name of ['sys2', 'out', 'exp', 'rvk'])
      await bench.registerInvited(sysPeer, name, 'system_admin', { bulk: true })
    for (const [i, r] of TABLE.entries()) {
      if (!r.fresh) continue
      for (const caller of ['system_admin', 'admin'] as const) {
        const name = targetName(i, caller)
        if (r.fresh === 'regular_user') await bench.register(name, { bulk: true })
        else await bench.registerInvited(sysPeer, name, r.fresh, { bulk: true })
      }
    }

    // Sessions: the callers', and one more each for the logout row (logging out ends the session).
    for (const name of ['sys2', 'adm', 'reg', 'out', 'exp', 'rvk'])
      tokens.set(name, (await bench.login(user(name))).token)
    const logoutRow = TABLE.findIndex((r) => r.name === 'logout')
    for (const caller of LIVE)
      tokens.set(`logout-${cellName(logoutRow, caller)}`, (await bench.login(user(CALLER_NAME[caller]))).token)
    signedToken = (await sysPeer.call('token', { audience: 'billing', ttlSeconds: 3600 })).token
    noteSecret('signed token', signedToken)

    // Logged out: out logs out; the connection ends, and the token no longer resumes anything.
    const out = await as('out')
    expect(await out.call('logout', {})).toEqual({ revoked: 1 })
    expect(out.closed).toBe(true)
    expect(await bench.connect().refusal({ type: 'session_resume', token: tokens.get('out') })).toMatchObject({
      code: F,
      message: expect.stringMatching(/session has ended/),
    })

    // The expired and revoked callers' connections, opened while their sessions were live.
    for (let i = 0; i < TABLE.length; i++)
      for (const caller of ['expired', 'revoked'] as const)
        endedPeers.set(cellName(i, caller), await as(CALLER_NAME[caller]))

    // Revoked: an admin revokes every session of rvk; rvk's client still holds the token.
    expect(await sysPeer.call('revoke', { user: 'rvk' })).toEqual({ revoked: 1 })

    // Expired: 20 minutes pass, everyone but exp uses their session, 11 more pass: exp's has
    // been idle 31 minutes (the idle timeout is 30), the others' 11.
    bench.clock.advance(20 * MINUTE)
    for (const [name, token] of tokens)
      if (name !== 'exp' && name !== 'out' && name !== 'rvk') await bench.resume(token)
    bench.clock.advance(11 * MINUTE)
    sysPeer.close()
    // Refusals counted in a run begun before the table would be written inside it: their
    // counts are written now, and the head read once they are in.
    bench.core.ctx.budgets.audit.flush()
    await bench.core.ctx.audit.flush()
    before = (await (await as('sys')).call('audit', { limit: 1 })).head.n
  })

  const cells = TABLE.flatMap((r, rowIndex) =>
    CALLERS.map((caller) => ({ ...r, rowIndex, caller, outcome: r.expected[caller] })),
  )

  it.for(cells)('$name by $caller: $outcome', async ({ rowIndex, caller, message, fresh, outcome, name }) => {
    const self = CALLER_NAME[caller]
    const cell = cellName(rowIndex, caller)
    const names = { target: fresh ? targetName(rowIndex, caller) : 'plain', self, cell }
    const peer =
      caller === 'logged out'
        ? bench.connect()
        : caller === 'expired' || caller === 'revoked'
          ? endedPeers.get(cell)!
          : await as(name === 'logout' ? `logout-${cell}` : self)
    const sent = message(names)
    const answer = await peer.send(sent)
    const what = `${name} by ${caller}: ${JSON.stringify(answer.message).slice(0, 200)}`
    if (outcome === A) {
      expect(answer.message.type, what).toBe(answerType(sent))
      // Only a logout ends the connection it was sent on.
      expect(answer.end, what).toBe(name === 'logout')
    } else {
      expect(answer.message, what).toMatchObject({ type: 'error', code: outcome })
      // A logged-in request refused (a call for the caller's role, a renewal without a TOTP
      // login) leaves the person logged in; no session, an ended one, or a message the state
      // does not accept ends the connection.
      const loggedInRequest = sent['type'] === 'call' || sent['type'] === 'recovery_codes_renew'
      expect(answer.end, what).toBe(!(loggedInRequest && LIVE.includes(caller) && outcome === F))
    }
    if (caller === 'logged out' && outcome === F) expect(answer.message).toMatchObject({ message: /^not logged in/ })
    if ((caller === 'expired' || caller === 'revoked') && outcome === F && sent['type'] === 'call')
      expect(answer.message).toMatchObject({ message: /session has ended/ })
    if (answer.message.type === 'result' && name === 'whoami') expect(answer.message.data).toMatchObject({ user: self })
    if (answer.message.type === 'token_checked') expect(answer.message).toEqual({ type: 'token_checked', active: true })
    if (answer.message.type === 'result' && name === 'logout') {
      expect(answer.message.data).toEqual({ revoked: 1 })
      const again = await bench.connect().refusal({ type: 'session_resume', token: tokens.get(`logout-${cell}`) })
      expect(again.code).toBe(F)
    }
    peer.close()
  })

  describe('after the table', () => {
    it('a fresh target changed exactly where its cell was allowed', async () => {
      const now = await users('sys2')
      const wrong: string[] = []
      TABLE.forEach((r, i) => {
        if (!r.fresh) return
        for (const caller of ['system_admin', 'admin'] as const) {
          const name = targetName(i, caller)
          const changed = r.changed!(now.get(name))
          if (changed !== (r.expected[caller] === A))
            wrong.push(`${r.name}: target ${name} (${caller}'s cell) ${changed ? 'changed' : 'unchanged'}`)
        }
      })
      expect(wrong).toEqual([])
    })

    it('the callers whose cells were refused kept their roles, and the invites made nobody', async () => {
      const now = await users('sys')
      expect(now.get('adm')?.role).toBe('admin')
      expect(now.get('reg')?.role).toBe('regular_user')
      expect(now.get('sys')?.role).toBe('system_admin')
      expect(now.has('plain')).toBe(true)
      expect([...now.keys()].filter((name) => name.startsWith('new-'))).toEqual([])
    })

    it('the expired and the revoked session stay refused', async () => {
      for (const name of ['exp', 'rvk']) {
        const refusal = await bench.connect().refusal({ type: 'session_resume', token: tokens.get(name) })
        expect(refusal, name).toMatchObject({
          code: F,
          message: expect.stringMatching(/session has ended/),
          ended: true,
        })
      }
    })

    it('the audit log has each allowed change and each refusal for a role, by whom; nothing for a refused session', async () => {
      const peer = await as('sys')
      // Identical refusals are audited once, then once more with their count when their window
      // ends: end the open windows now. Refusals are written behind their answers; this
      // verification's own entry is written after them.
      bench.core.ctx.budgets.audit.flush()
      await peer.call('audit_verify', {})
      const { entries } = await peer.call('audit', {})
      const key = (e: Pick<AuditEntry, 'actor' | 'action' | 'outcome' | 'target'>) =>
        `${e.actor} ${e.action} ${e.outcome} ${e.target}`
      // An entry with `repeated` stands for that many more refusals like its run's first.
      const actual = entries
        .filter((e) => e.n > before && !(e.action === 'audit.verify' && e.n === entries.at(-1)!.n))
        .flatMap((e) => {
          const line = key({
            ...e,
            target: e.action === 'session.logout' || e.action === 'token.issued' ? SESSION : e.target,
          })
          return e.details?.['repeated'] === undefined
            ? [line]
            : Array<string>(Number(e.details['repeated'])).fill(line)
        })
      const expected = cells.flatMap(({ rowIndex, caller, message, fresh, outcome, action, ok, auditTarget }) => {
        if (!action || !LIVE.includes(caller)) return []
        const names = {
          target: fresh ? targetName(rowIndex, caller) : 'plain',
          self: CALLER_NAME[caller],
          cell: cellName(rowIndex, caller),
        }
        const args = (message(names)['args'] ?? {}) as { user?: string }
        const actor = CALLER_NAME[caller]
        if (outcome === F) return [key({ actor, action, outcome: 'refused', target: args.user ?? null })]
        if (outcome === A && ok)
          return [key({ actor, action, outcome: 'ok', target: auditTarget ? auditTarget(names) : (args.user ?? null) })]
        return []
      })
      expect(actual.sort()).toEqual(expected.sort())
      const refused = entries.filter((e) => e.n > before && e.outcome === 'refused')
      for (const entry of refused) expect(entry.details).toMatchObject({ reason: expect.any(String) })
    })
  })
})

// A name the caller may not manage tells it nothing: not whether the account exists, not its
// role. Every call that takes a `user` answers such a name with one frame, byte for byte the same
// for an unknown name as for an account above the caller (docs/threat-model.md, issue 17 row 8).
describe('names the caller may not manage: the same refusal whether or not the account exists', () => {
  const USER_CALLS = (user: string) =>
    [
      ['sessions', { user }],
      ['revoke', { user }],
      ['remove', { user }],
      ['set_role', { user, role: 'regular_user' }],
      ['reset_2fa', { user }],
      ['unlock', { user }],
    ] as const

  it.for([
    // A regular user manages nobody else: not even another regular user.
    { caller: 'reg', names: ['sys', 'adm', 'plain', 'nobody'], ops: ['sessions', 'revoke'] },
    // An admin manages regular users only.
    { caller: 'adm', names: ['sys', 'sys2', 'nobody'], ops: USER_CALLS('').map(([op]) => op) },
  ])('by $caller, for $names', async ({ caller, names, ops }) => {
    const peer = await as(caller)
    for (const op of ops) {
      const answers = []
      for (const name of names) {
        const [, args] = USER_CALLS(name).find(([each]) => each === op)!
        const answer = await peer.send(call(op, args))
        expect(answer.end, `${op} ${name}`).toBe(false)
        answers.push(JSON.stringify(answer.message))
      }
      expect(new Set(answers).size, `${op}: ${answers.join(' / ')}`).toBe(1)
      const frame = JSON.parse(answers[0]!) as { type: string; code: string; message: string }
      expect(frame).toMatchObject({ type: 'error', code: F })
      expect(frame.message, op).not.toMatch(/system_admin|admin accounts|no user|not found/)
    }
    // The accounts are as they were.
    expect([...(await users('sys')).values()].find((u) => u.user === 'sys')).toMatchObject({
      role: 'system_admin',
      twoFactor: 'enrolled',
    })
    peer.close()
  })

  it("another user's session id the caller may not manage gets the refusal an unknown id gets", async () => {
    const peer = await as('reg')
    const { sessions } = await (await as('sys')).call('sessions', {})
    const theirs = sessions[0]!.id
    const unknown = '0'.repeat(32)
    const refusals = [
      await peer.callRefusal('revoke', { id: theirs }),
      await peer.callRefusal('revoke', { id: unknown }),
    ]
    expect(refusals.map((r) => [r.code, r.message.replace(theirs, 'ID').replace(unknown, 'ID'), r.hint])).toEqual([
      [F, 'no session ID that you may revoke', 'securelogin sessions lists yours'],
      [F, 'no session ID that you may revoke', 'securelogin sessions lists yours'],
    ])
    expect((await (await as('sys')).call('sessions', {})).sessions.map((s) => s.id)).toContain(theirs)
  })

  it('a system_admin, who manages every account and lists them all, is told a name is unknown', async () => {
    const peer = await as('sys')
    expect(await peer.callRefusal('reset_2fa', { user: 'nobody' })).toMatchObject({ code: 'ERR_NOT_FOUND' })
  })
})

// `passwd` and `totp_reset` want a login on the connection with the password and a code (a
// resumed session proves only that its token was stolen or kept). So every caller may, whatever
// their role and whatever became of their session; run after the table, since a password change
// revokes the caller's other sessions.
describe('passwd and totp_reset after a login with password and code: every caller may', () => {
  const next = { password: newPassword(), salt: newSalt() }

  it.for(CALLERS.map((caller) => ({ caller })))('$caller', async ({ caller }) => {
    const who = user(CALLER_NAME[caller])
    // A verifier outside the group (v = 1 would let any password in) is refused, and ends the
    // connection as a protocol error does.
    const broken = await bench.login(who)
    const credentials = await bench.credentials(who.name, next.password, next.salt)
    expect(await broken.peer.callRefusal('passwd', { ...credentials, verifier: '1'.padStart(512, '0') })).toMatchObject(
      {
        code: 'ERR_PROTOCOL',
        ended: true,
      },
    )
    const { peer } = await bench.login(who)
    const { revokedSessions } = await peer.call('passwd', credentials)
    expect(revokedSessions).toBeGreaterThanOrEqual(0)
    who.password = next.password

    const { otpauthUri } = await peer.call('totp_reset', {})
    const secret = secretFromOtpauthUri(otpauthUri)!
    noteSecret('TOTP secret', secret)
    expect(secret).not.toBe(who.totpSecret)
    const { code, step } = await bench.nextCode(secret, who.lastStep)
    expect(await peer.call('totp_confirm', { code })).toEqual({ user: who.name })
    Object.assign(who, { totpSecret: secret, lastStep: step })
    // And the recovery codes may be renewed on such a login.
    expect((await peer.request({ type: 'recovery_codes_renew' }, 'recovery_codes')).codes).toHaveLength(10)

    // The new password and authenticator log in, in the caller's own role.
    const again = await bench.login(who)
    tokens.set(who.name, again.token)
    expect(again.welcome).toMatchObject({
      user: who.name,
      role: caller === 'admin' ? 'admin' : caller === 'regular_user' ? 'regular_user' : 'system_admin',
    })
  })
})

describe('on a user with no live session', () => {
  it("an admin's revoke of all their sessions and reset_2fa each say none was revoked", async () => {
    // plain never logs in here.
    const peer = await as('sys')
    expect(await peer.call('revoke', { user: 'plain' })).toEqual({ revoked: 0 })
    expect(await peer.call('reset_2fa', { user: 'plain' })).toEqual({ user: 'plain', revokedSessions: 0 })
    peer.close()
  })
})

describe('with two system_admins', () => {
  it('down to exactly sys and sys2, sys may demote itself; then sys2, the last, may neither leave nor step down', async () => {
    const sys = await as('sys')
    const others = [...(await users('sys')).values()]
      .filter((u) => u.role === 'system_admin' && u.user !== 'sys' && u.user !== 'sys2')
      .map((u) => u.user)
    for (const name of others) expect(await sys.call('remove', { user: name })).toMatchObject({ user: name })
    expect(
      [...(await users('sys')).values()]
        .filter((u) => u.role === 'system_admin')
        .map((u) => u.user)
        .sort(),
    ).toEqual(['sys', 'sys2'])

    expect(await sys.call('set_role', { user: 'sys', role: 'admin' })).toEqual({
      user: 'sys',
      role: 'admin',
      previous: 'system_admin',
    })
    // sys is an admin now: it cannot restore itself, and the next call knows it.
    expect(await sys.callRefusal('set_role', { user: 'sys', role: 'system_admin' })).toMatchObject({
      code: F,
      message: 'nobody can raise their own role',
    })
    const sys2 = await as('sys2')
    expect(await sys2.callRefusal('remove', { user: 'sys2' })).toMatchObject({
      code: F,
      message: 'the last system_admin cannot be removed',
    })
    expect(await sys2.callRefusal('set_role', { user: 'sys2', role: 'admin' })).toMatchObject({
      code: F,
      message: 'the last system_admin cannot be demoted',
    })
    expect(await sys2.call('set_role', { user: 'sys', role: 'system_admin' })).toMatchObject({ previous: 'admin' })
  })

  it('with two, sys may remove itself; its sessions end with it, this connection too', async () => {
    const sys = await as('sys')
    const live = (await sys.call('sessions', {})).sessions.length
    const answer = await sys.send(call('remove', { user: 'sys' }))
    expect(answer.message).toEqual({ type: 'result', op: 'remove', data: { user: 'sys', revokedSessions: live } })
    expect(answer.end).toBe(true)
    expect(await bench.connect().refusal({ type: 'session_resume', token: tokens.get('sys') })).toMatchObject({
      code: F,
    })
    const now = await users('sys2')
    expect(now.has('sys')).toBe(false)
    expect(now.get('sys2')?.role).toBe('system_admin')
  })
})
