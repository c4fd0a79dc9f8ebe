import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { Bench, MINUTE, TOKEN, newPassword, type LoggedIn, type Peer, type User } from '../helpers/conversation.js'
import { noteOutput, noteSecret } from '../helpers/secrets.js'

// Sessions and self-service (issue 6, "Sessions"), one layer below the CLI: the session token,
// idle and absolute expiry, logout, listing and revoking, passwd, totp_reset (with a code or a
// recovery code), an admin's reset_2fa, the lockout and unlock, and what the audit log records
// of each. Short session times (5 min idle, 20 min in all) and a lockout after three failures;
// the clock moves only when the test moves it. What the CLI adds (the saved session file, a new
// login revoking the one it replaces, id prefixes, the password policy): test/e2e/sessions.test.ts.

const F = 'ERR_FORBIDDEN'

let bench: Bench
let root: User
let sam: User

beforeAll(async () => {
  bench = await Bench.start({
    registration: 'open',
    sessions: { idleMs: 5 * MINUTE, absoluteMs: 20 * MINUTE },
    guard: { lockAfter: 3 },
  })
  root = await bench.registerBootstrap('root')
  sam = await bench.register('sam')
})

afterAll(async () => {
  await bench?.stop()
})

/** A new connection resumed on `token`, or the refusal. */
async function resume(token: string): Promise<Peer | { code: string; message: string }> {
  const peer = bench.connect()
  const answer = await peer.send({ type: 'session_resume', token })
  if (answer.message.type === 'error') {
    expect(answer.end, 'a refused resume ends the connection').toBe(true)
    return answer.message
  }
  return peer
}

/** Whether `token` still names a live session (resuming counts as a use). */
async function live(token: string): Promise<boolean> {
  const peer = await resume(token)
  if ('code' in peer) {
    expect(peer).toMatchObject({ code: F, message: expect.stringMatching(/session has ended/) })
    return false
  }
  peer.close()
  return true
}

/**
 * The audit entries written after entry `n`, as root sees them on a fresh login (whose own entry,
 * and that of the verification run first, are left out).
 */
async function auditAfter(n: number): Promise<AuditEntry[]> {
  const { peer, welcome } = await bench.login(root)
  // Failures and refusals are written behind their answers: a verification's entry comes after them.
  const { head } = await peer.call('audit_verify', {})
  const { entries } = await peer.call('audit', {})
  peer.close()
  const ownLogin = (e: AuditEntry) => e.action === 'login.ok' && e.details?.['session'] === welcome.sessionId
  return entries.filter((e) => e.n > n && e.n <= head.n && !ownLogin(e))
}

async function head(): Promise<number> {
  const { peer } = await bench.login(root)
  const n = (await peer.call('audit', { limit: 1 })).head.n
  peer.close()
  return n
}

describe('the session token', () => {
  let a: LoggedIn
  let b: LoggedIn

  it('a login gets a fresh 256-bit token and session id; every login gets new ones', async () => {
    a = await bench.login(sam)
    b = await bench.login(sam, { address: '192.0.2.7' })
    for (const { welcome, token } of [a, b]) {
      expect(welcome).toMatchObject({
        user: 'sam',
        role: 'regular_user',
        sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      })
      expect(token).toMatch(TOKEN)
      // 32 random bytes behind the prefix.
      expect(Buffer.from(token.slice(4), 'base64url')).toHaveLength(32)
    }
    expect(a.token).not.toBe(b.token)
    expect(a.welcome.sessionId).not.toBe(b.welcome.sessionId)
  })

  it('whoami says who and until when: the idle expiry (5 min) or the absolute one (20 min after the login), and from where', async () => {
    const { session, user, role } = await b.peer.call('whoami', {})
    expect({ user, role }).toEqual({ user: 'sam', role: 'regular_user' })
    expect(session).toMatchObject({ id: b.welcome.sessionId, current: true, address: '192.0.2.7' })
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(5 * MINUTE)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(20 * MINUTE)
    // The welcome said the same.
    expect(b.welcome.expiresAt).toBe(session.absoluteExpiresAt)
    expect(b.welcome.idleExpiresAt).toBe(session.expiresAt)
  })

  it("the store keeps only the token's SHA-256, and the session outlives a restart", async () => {
    await bench.offline(async (store) => {
      const sessionKeys = await store.keys('session/')
      const records = await Promise.all(sessionKeys.map((key) => store.get<Record<string, unknown>>(key)))
      for (const { token } of [a, b]) {
        const hash = createHash('sha256').update(token).digest('hex')
        expect(records.filter((r) => r!['hash'] === hash)).toHaveLength(1)
        expect(sessionKeys).toContain(`session/${hash.slice(0, 32)}`)
      }
      // No record of any kind holds a token.
      const everything = JSON.stringify(await Promise.all((await store.keys('')).map((key) => store.get(key))))
      for (const { token } of [a, b]) expect(everything).not.toContain(token.slice(4))
    })
    const after = await bench.resume(a.token)
    // A resume's welcome says the same as the login's, without the token or a device key.
    const { token: _, device: __, ...said } = a.welcome
    expect(after.welcome).toEqual({ ...said, idleExpiresAt: after.welcome.idleExpiresAt })
    expect((await after.peer.call('whoami', {})).session).toMatchObject({ id: a.welcome.sessionId, current: true })
  })

  it('ends after 5 idle minutes; each use moves the idle expiry on', async () => {
    const { token } = await bench.login(sam)
    for (let i = 0; i < 2; i++) {
      bench.clock.advance(4 * MINUTE)
      expect(await live(token), `after 4 idle minutes (${i + 1})`).toBe(true)
    }
    bench.clock.advance(5 * MINUTE + 1000)
    expect(await live(token), 'after 5 idle minutes').toBe(false)
    expect(await live(token), 'and again').toBe(false)
  })

  it('ends 20 minutes after the login however often it is used', async () => {
    const { token } = await bench.login(sam)
    for (let minutes = 4; minutes < 20; minutes += 4) {
      bench.clock.advance(4 * MINUTE)
      expect(await live(token), `${minutes} minutes after the login`).toBe(true)
    }
    bench.clock.advance(4 * MINUTE + 1000)
    expect(await live(token), '20 minutes after the login, 4 minutes after the last use').toBe(false)
  })

  it('a connection that holds a session it does not use is refused once the session has ended, and ended', async () => {
    const { peer } = await bench.login(sam)
    bench.clock.advance(5 * MINUTE + 1000)
    const refusal = await peer.callRefusal('whoami', {})
    expect(refusal).toMatchObject({ code: F, message: expect.stringMatching(/session has ended/), ended: true })
  })

  it('logout revokes the session on the server: the token no longer works, and the connection ends', async () => {
    const n = await head()
    const { peer, token, welcome } = await bench.login(sam)
    const answer = await peer.send({ type: 'call', op: 'logout', args: {} })
    expect(answer).toMatchObject({ message: { type: 'result', op: 'logout', data: { revoked: 1 } }, end: true })
    expect(peer.closed).toBe(true)
    expect(await live(token)).toBe(false)
    expect((await auditAfter(n)).map((e) => [e.action, e.actor, e.target, e.outcome, e.details])).toEqual([
      ['login.ok', 'sam', 'sam', 'ok', { factor: 'totp', session: welcome.sessionId }],
      ['session.logout', 'sam', welcome.sessionId, 'ok', { count: 1, reason: 'logout' }],
    ])
  })
})

describe('sessions: list own, revoke one or all others', () => {
  it("lists only sam's live sessions, this one marked; revokes one, then all others; not another user's", async () => {
    bench.clock.advance(21 * MINUTE) // every earlier session has ended
    const login = async () => (bench.clock.advance(1000), await bench.login(sam))
    const [f, g, h] = [await login(), await login(), await login()]
    const rootLogin = await bench.login(root)
    const ids = [f, g, h].map((s) => s.welcome.sessionId)

    const { sessions } = await f.peer.call('sessions', {})
    // Oldest first.
    expect(sessions.map((s) => [s.id, s.current, s.user])).toEqual([
      [ids[0], true, 'sam'],
      [ids[1], false, 'sam'],
      [ids[2], false, 'sam'],
    ])
    const n = await head()

    expect(await f.peer.call('revoke', { id: ids[1]! })).toEqual({ revoked: 1 })
    expect(await live(g.token), 'the revoked session').toBe(false)
    expect(await live(h.token), 'a session that was not named').toBe(true)

    // Another user's session: a regular user may not touch it, nor learn whose it is.
    const refused = await f.peer.callRefusal('revoke', { id: rootLogin.welcome.sessionId })
    expect(refused).toMatchObject({ code: F, ended: false })
    expect(refused.message).toBe(`no session ${rootLogin.welcome.sessionId} that you may revoke`)
    expect(await live(rootLogin.token), 'root after the refused revoke').toBe(true)

    expect(await f.peer.call('revoke', { others: true })).toEqual({ revoked: 1 })
    expect(await live(h.token), 'an other session').toBe(false)
    expect((await f.peer.call('whoami', {})).session.id, 'the session that revoked the others').toBe(ids[0])

    // An id that names no session: the same refusal; not exactly one of id, others, user.
    expect(await f.peer.callRefusal('revoke', { id: '0'.repeat(32) })).toMatchObject({
      code: F,
      message: `no session ${'0'.repeat(32)} that you may revoke`,
      ended: false,
    })
    expect(await f.peer.callRefusal('revoke', { others: true, user: 'sam' })).toMatchObject({
      code: 'ERR_PROTOCOL',
      ended: true,
    })

    // An admin sees sam's one live session and revokes it by id.
    const rootPeer = rootLogin.peer
    expect((await rootPeer.call('sessions', { user: 'sam' })).sessions.map((s) => [s.id, s.current])).toEqual([
      [ids[0], false],
    ])
    expect(await rootPeer.call('revoke', { id: ids[0]! })).toEqual({ revoked: 1 })
    expect(await live(f.token), 'the session the admin revoked').toBe(false)

    expect((await auditAfter(n)).map((e) => [e.action, e.actor, e.target, e.outcome])).toEqual([
      ['session.revoke', 'sam', ids[1], 'ok'],
      ['session.revoke', 'sam', null, 'refused'],
      ['session.revoke', 'sam', 'sam', 'ok'],
      ['session.revoke', 'sam', null, 'refused'],
      ['session.revoke', 'root', ids[0], 'ok'],
    ])
  })
})

describe('passwd', () => {
  it('a resumed session alone cannot change the password or the authenticator: the server wants a fresh login', async () => {
    const { token } = await bench.login(sam)
    const peer = await resume(token)
    if ('code' in peer) throw new Error(peer.code)
    const credentials = await bench.credentials('sam', newPassword())
    expect(await peer.callRefusal('passwd', credentials)).toMatchObject({
      code: F,
      message: expect.stringMatching(/^changing the password needs a login on this connection/),
      ended: false,
    })
    expect(await peer.callRefusal('totp_reset', {})).toMatchObject({ code: F, ended: false })
    expect((await bench.login(sam)).welcome.user, 'the unchanged password and authenticator').toBe('sam')
  })

  it('a wrong current password fails the login, and changes nothing', async () => {
    await expect(bench.prove(sam, { password: `not sam's password` })).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
    })
    expect((await bench.login(sam)).welcome.user).toBe('sam')
  })

  it('after a login with the current password and a code, sets the new one and revokes every other session', async () => {
    const [i, j] = [await bench.login(sam), await bench.login(sam)]
    const n = await head()
    const oldPassword = sam.password
    const nextPassword = newPassword()
    const { peer } = await bench.login(sam)
    const others = (await peer.call('sessions', {})).sessions.filter((s) => !s.current).length
    expect(others).toBeGreaterThanOrEqual(2)
    expect(await peer.call('passwd', await bench.credentials('sam', nextPassword))).toEqual({
      revokedSessions: others,
    })
    sam.password = nextPassword
    expect(await live(j.token), 'another session after passwd').toBe(false)
    expect(await live(i.token), 'and another').toBe(false)
    expect((await peer.call('whoami', {})).user, 'the session that changed it').toBe('sam')
    await expect(bench.prove({ name: 'sam', password: oldPassword })).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    expect((await bench.login(sam)).welcome.user, 'the new password').toBe('sam')
    const entries = await auditAfter(n)
    expect(entries.filter((e) => e.action === 'password.change')).toEqual([
      expect.objectContaining({ actor: 'sam', target: 'sam', outcome: 'ok', address: '127.0.0.1' }),
    ])
    expect(entries.filter((e) => e.action === 'login.failed')).toEqual([
      expect.objectContaining({ actor: null, target: 'sam', outcome: 'failed', details: { stage: 'proof' } }),
    ])
  })
})

describe('totp_reset', () => {
  /** totp_reset then totp_confirm on a logged-in connection: the account now holds the new authenticator. */
  async function reenrol(peer: Peer): Promise<string> {
    const { otpauthUri } = await peer.call('totp_reset', {})
    const secret = secretFromOtpauthUri(otpauthUri)!
    noteSecret('TOTP secret', secret)
    expect(otpauthUri).toMatch(/^otpauth:\/\/totp\/securelogin:sam\?secret=/)
    const { code, step } = await bench.nextCode(secret, sam.lastStep)
    expect(await peer.call('totp_confirm', { code })).toEqual({ user: 'sam' })
    Object.assign(sam, { totpSecret: secret, lastStep: step })
    return secret
  }

  /** A login of sam's with a code from `secret`: ERR_AUTH_FAILED or the welcome. */
  async function loginWithSecret(secret: string): Promise<string> {
    const { peer } = await bench.prove(sam)
    const { code } = await bench.nextCode(secret, sam.lastStep)
    const answer = await peer.send({ type: 'login_otp', code })
    return answer.message.type === 'error' ? answer.message.code : answer.message.type
  }

  it('with a code from the current authenticator: a new secret, and the old authenticator stops working', async () => {
    const n = await head()
    const oldSecret = sam.totpSecret
    const { peer } = await bench.login(sam)
    const secret = await reenrol(peer)
    expect(secret).not.toBe(oldSecret)
    expect(await loginWithSecret(oldSecret), 'the old authenticator').toBe('ERR_AUTH_FAILED')
    expect((await bench.login(sam)).welcome.user, 'the new authenticator').toBe('sam')
    expect((await auditAfter(n)).filter((e) => e.action === 'totp.reset')).toEqual([
      expect.objectContaining({ actor: 'sam', target: 'sam', outcome: 'ok' }),
    ])
  })

  it('with a recovery code in place of a lost authenticator; the code is spent', async () => {
    const recoveryCode = sam.recoveryCodes.shift()!
    const oldSecret = sam.totpSecret
    const { peer, welcome } = await bench.loginWithRecoveryCode(sam, recoveryCode)
    expect(welcome.recoveryCodesLeft).toBe(9)
    expect(await reenrol(peer)).not.toBe(oldSecret)
    // Such a login may not mint new recovery codes.
    expect(await peer.refusal({ type: 'recovery_codes_renew' })).toMatchObject({ code: F })
    expect(await loginWithSecret(oldSecret), 'the lost authenticator').toBe('ERR_AUTH_FAILED')
    await expect(bench.loginWithRecoveryCode(sam, recoveryCode)).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
  })

  it("an admin's reset_2fa: sam's sessions end, and the next login enrols a new authenticator", async () => {
    const n = await head()
    const { token } = await bench.login(sam)
    const { peer: rootPeer } = await bench.login(root)
    const reset = await rootPeer.call('reset_2fa', { user: 'sam' })
    expect(reset).toMatchObject({ user: 'sam' })
    expect(reset.revokedSessions).toBeGreaterThanOrEqual(1)
    expect(await live(token), "sam's session after the reset").toBe(false)
    const twoFactor = async () => (await rootPeer.call('users', {})).users.find((u) => u.user === 'sam')?.twoFactor
    expect(await twoFactor()).toBe('reset')

    // The password alone is checked, then a new secret is offered; the next code must come from it.
    const oldSecret = sam.totpSecret
    const { peer, proof } = await bench.prove(sam)
    const secret = secretFromOtpauthUri(proof.enrol!)!
    noteSecret('TOTP secret', secret)
    expect(secret).not.toBe(oldSecret)
    const { code, step } = await bench.nextCode(secret, sam.lastStep)
    expect(await peer.request({ type: 'login_otp', code }, 'welcome')).toMatchObject({ user: 'sam' })
    Object.assign(sam, { totpSecret: secret, lastStep: step })
    expect((await peer.call('whoami', {})).user).toBe('sam')
    expect(await twoFactor()).toBe('enrolled')
    expect(await loginWithSecret(oldSecret), 'the authenticator from before the reset').toBe('ERR_AUTH_FAILED')

    const entries = await auditAfter(n)
    expect(entries.find((e) => e.action === 'user.reset_2fa')).toMatchObject({
      actor: 'root',
      target: 'sam',
      outcome: 'ok',
    })
    expect(entries.find((e) => e.action === 'totp.enrol')).toMatchObject({
      actor: 'sam',
      target: 'sam',
      details: { after: 'admin_reset' },
    })
  })
})

describe('lockout and unlock', () => {
  it('three wrong passwords lock sam (the right one then fails alike); unlock lets him in', async () => {
    // A full login clears the failures counted so far.
    await bench.login(sam)
    const n = await head()
    for (let i = 0; i < 3; i++)
      await expect(
        bench.prove(sam, { password: `not sam's password` }),
        `wrong password ${i + 1}`,
      ).rejects.toMatchObject({
        code: 'ERR_AUTH_FAILED',
      })
    await expect(bench.prove(sam), 'the right password while locked').rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
    })
    const { peer: rootPeer } = await bench.login(root)
    const samInfo = async () => (await rootPeer.call('users', {})).users.find((u) => u.user === 'sam')
    expect(await samInfo()).toMatchObject({ locked: true, lockedUntil: expect.any(String) })

    expect(await rootPeer.call('unlock', { user: 'sam' })).toEqual({ user: 'sam', wasLocked: true })
    expect(await samInfo()).toMatchObject({ locked: false, lockedUntil: null })
    expect((await bench.login(sam)).welcome.user, 'after the unlock').toBe('sam')
    expect(await rootPeer.call('unlock', { user: 'sam' })).toEqual({ user: 'sam', wasLocked: false })
    expect(await rootPeer.callRefusal('unlock', { user: 'nobody' })).toMatchObject({ code: 'ERR_NOT_FOUND' })

    const entries = await auditAfter(n)
    expect(entries.filter((e) => e.action === 'login.failed').map((e) => e.details?.['stage'])).toEqual([
      'proof',
      'proof',
      'proof',
      'locked',
    ])
    expect(entries.filter((e) => e.action === 'user.locked')).toEqual([
      expect.objectContaining({
        actor: null,
        target: 'sam',
        outcome: 'failed',
        details: expect.objectContaining({ failures: 3 }),
      }),
    ])
    expect(entries.filter((e) => e.action === 'user.unlock').map((e) => [e.actor, e.target, e.details])).toEqual([
      ['root', 'sam', { wasLocked: true }],
      ['root', 'sam', { wasLocked: false }],
    ])
  })
})

describe('what the audit log recorded of all this', () => {
  it('every entry by or about sam says when, from where and how it went; none holds a secret', async () => {
    const { peer } = await bench.login(root)
    const { entries } = await peer.call('audit', { user: 'sam' })
    const text = JSON.stringify(entries)
    noteOutput('the audit log of test/conversation/sessions.test.ts', 'log', text)
    const count = (action: string, outcome = 'ok') =>
      entries.filter((e) => e.action === action && e.outcome === outcome).length
    expect(count('user.register')).toBe(1)
    expect(count('login.ok')).toBeGreaterThanOrEqual(15)
    expect(count('login.failed', 'failed')).toBeGreaterThanOrEqual(7)
    expect(count('user.locked', 'failed')).toBe(1)
    expect(count('session.logout')).toBe(1)
    expect(count('session.revoke')).toBe(2)
    expect(count('session.revoke', 'refused')).toBe(2)
    expect(count('password.change')).toBe(1)
    expect(count('password.change', 'refused')).toBe(1)
    expect(count('totp.reset')).toBe(2)
    expect(count('totp.reset', 'refused')).toBe(1)
    expect(count('user.reset_2fa')).toBe(1)
    expect(count('totp.enrol')).toBe(1)
    expect(count('user.unlock')).toBe(2)
    for (const entry of entries) {
      expect(entry, `entry ${entry.n}`).toMatchObject({ at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) })
      expect(['127.0.0.1', '192.0.2.7'], `entry ${entry.n}`).toContain(entry.address)
      expect([entry.actor, entry.target], `entry ${entry.n} is by or about sam`).toContain('sam')
    }
    for (const secret of [sam.password, sam.totpSecret, ...sam.recoveryCodes, root.password])
      expect(text).not.toContain(secret)
    expect(text).not.toMatch(/sl[sbi]_[A-Za-z0-9_-]{43}/)
  })
})
