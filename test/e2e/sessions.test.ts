import { createHash } from 'node:crypto'
import { copyFile, mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore } from '../../src/store/index.js'
import { killAllCli } from '../helpers/cli.js'
import { Lab, describeResult, newPassword, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// Sessions and self-service (issue 6, "Sessions"), through the real server process and the real
// CLI: the saved token, idle and absolute expiry, logout, listing and revoking, `passwd`,
// `reset-2fa` (one's own, and an admin's), and `admin unlock`. The server runs with short
// session times (--session-idle 5m --session-max 20m: the flags under test) and a lockout after
// three failures; its clock is a file the test moves.

const hasOathtool = requireTool('oathtool')
const MINUTE = 60_000
const TOKEN = /^sls_[A-Za-z0-9_-]{43}$/

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('sessions', {
    serverArgs: [
      '--registration',
      'open',
      '--session-idle',
      '5m',
      '--session-max',
      '20m',
      '--lockout-after',
      '3',
      '--failure-delay-ms',
      '1',
    ],
  })
  if (!hasOathtool) return
  root = await lab.register('root', { bootstrapToken: await lab.bootstrapToken() })
  sam = await lab.register('sam')
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

function expectOk(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
  expect(result.error, what).toBeUndefined()
}

function expectCode(result: CliResult, code: string, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(code === 'ERR_USAGE' ? 2 : 1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe(code)
}

/** A client home of sam's with a fresh login in it. */
async function samLoggedIn(name: string): Promise<string> {
  const home = lab.homeOf(name)
  const login = await lab.mustLogin(sam, { home })
  expect(login.json).toMatchObject({ event: 'login', user: 'sam', role: 'regular_user' })
  return home
}

const whoami = (home: string) => lab.runIn(home, ['whoami'])
const token = async (home: string) => (await lab.savedSession(home))!['token'] as string

/** A CLI login of sam's (in a throwaway home) with this password and a code from this secret. */
async function loginWith(password: string, secret: string): Promise<CliResult> {
  const { code, step } = lab.nextCode(secret, sam.lastStep)
  sam.lastStep = step
  return lab.runIn(
    lab.homeOf(`try-${step}`),
    ['login', '--user', 'sam', '--password-stdin', '--otp', code],
    `${password}\n`,
  )
}

describe.runIf(hasOathtool)('the saved session', () => {
  let homeA: string
  let homeB: string

  it('a login saves a fresh 256-bit token in a 0600 file in a 0700 directory; every login gets a new one', async () => {
    homeA = await samLoggedIn('a')
    homeB = await samLoggedIn('b')
    const [a, b] = [await lab.savedSession(homeA), await lab.savedSession(homeB)]
    for (const saved of [a!, b!]) {
      expect(saved).toMatchObject({
        server: `127.0.0.1:${lab.port}`,
        user: 'sam',
        role: 'regular_user',
        token: expect.stringMatching(TOKEN),
        sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      })
      // 32 random bytes behind the prefix.
      expect(Buffer.from(saved['token'].slice(4), 'base64url')).toHaveLength(32)
    }
    expect(a!['token']).not.toBe(b!['token'])
    expect(a!['sessionId']).not.toBe(b!['sessionId'])
    for (const home of [homeA, homeB]) {
      expect((await stat(lab.sessionFile(home))).mode & 0o777).toBe(0o600)
      expect((await stat(dirname(lab.sessionFile(home)))).mode & 0o777).toBe(0o700)
    }
  })

  it('a new login where a session is saved revokes the one it replaces: a copy of the old token no longer works', async () => {
    const home = await samLoggedIn('replaced')
    const copy = lab.homeOf('replaced-copy')
    await mkdir(dirname(lab.sessionFile(copy)), { recursive: true, mode: 0o700 })
    await copyFile(lab.sessionFile(home), lab.sessionFile(copy))
    expectOk(await whoami(copy), 'whoami with the copy, before')
    await samLoggedIn('replaced')
    expectCode(await whoami(copy), 'ERR_FORBIDDEN', 'whoami with the replaced token')
    expectOk(await whoami(home), 'whoami with the new one')
  })

  it("the store keeps only the token's SHA-256, and the session outlives a restart", async () => {
    const tokens = [await token(homeA), await token(homeB)]
    await lab.stopServer()
    const store = await openStore(lab.storePath, lab.passphrase)
    try {
      const sessionKeys = store.keys('session/')
      const records = await Promise.all(sessionKeys.map((key) => store.get<Record<string, unknown>>(key)))
      for (const tokenValue of tokens) {
        const hash = createHash('sha256').update(tokenValue).digest('hex')
        expect(records.filter((r) => r!['hash'] === hash)).toHaveLength(1)
        expect(sessionKeys).toContain(`session/${hash.slice(0, 32)}`)
      }
      // No record of any kind holds a token.
      const everything = JSON.stringify(await Promise.all(store.keys('').map((key) => store.get(key))))
      for (const tokenValue of tokens) expect(everything).not.toContain(tokenValue.slice(4))
    } finally {
      await store.close()
    }
    await lab.startServer()
    const after = await whoami(homeA)
    expectOk(after, 'whoami after a restart')
    expect(after.json).toMatchObject({
      event: 'whoami',
      user: 'sam',
      role: 'regular_user',
      session: { id: (await lab.savedSession(homeA))!['sessionId'], current: true },
    })
  })

  it('whoami says who and until when: the idle expiry (5 min) or the absolute one (20 min after the login)', async () => {
    const result = await whoami(homeB)
    expectOk(result, 'whoami')
    const session = result.json!['session']
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(5 * MINUTE)
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(20 * MINUTE)
    expect(session.address).toBe('127.0.0.1')
  })

  it('ends after 5 idle minutes; each use moves the idle expiry on', async () => {
    const home = await samLoggedIn('idle')
    for (let i = 0; i < 2; i++) {
      lab.clock.advance(4 * MINUTE)
      expectOk(await whoami(home), `whoami after 4 idle minutes (${i + 1})`)
    }
    lab.clock.advance(5 * MINUTE + 1000)
    const ended = await whoami(home)
    expectCode(ended, 'ERR_FORBIDDEN', 'whoami after 5 idle minutes')
    expect(ended.error?.message).toMatch(/session has ended/)
    expect(await lab.savedSession(home), 'an ended session is forgotten').toBeUndefined()
    expectCode(await whoami(home), 'ERR_FORBIDDEN', 'whoami with no saved session')
  })

  it('ends 20 minutes after the login however often it is used', async () => {
    const home = await samLoggedIn('absolute')
    for (let minutes = 4; minutes < 20; minutes += 4) {
      lab.clock.advance(4 * MINUTE)
      expectOk(await whoami(home), `whoami ${minutes} minutes after the login`)
    }
    lab.clock.advance(4 * MINUTE + 1000)
    expectCode(await whoami(home), 'ERR_FORBIDDEN', 'whoami 20 minutes after the login, 4 minutes after the last use')
  })

  it('logout revokes the session on the server: a copy of the token kept aside no longer works', async () => {
    const home = await samLoggedIn('logout')
    const copy = lab.homeOf('logout-copy')
    await mkdir(dirname(lab.sessionFile(copy)), { recursive: true, mode: 0o700 })
    await copyFile(lab.sessionFile(home), lab.sessionFile(copy))
    const logout = await lab.runIn(home, ['logout'])
    expectOk(logout, 'logout')
    expect(logout.json).toMatchObject({ event: 'logout', revoked: 1 })
    expect(await lab.savedSession(home)).toBeUndefined()
    expectCode(await whoami(copy), 'ERR_FORBIDDEN', 'whoami with the copied token')
    // Again, with nothing saved: nothing to revoke, and not an error.
    expect((await lab.runIn(home, ['logout'])).json).toMatchObject({ event: 'logout', revoked: 0 })
  })
})

describe.runIf(hasOathtool)('sessions: list own, revoke one or all others', () => {
  it("lists only sam's live sessions, this one marked; revokes one by a prefix of its id, then all others", async () => {
    lab.clock.advance(21 * MINUTE) // every earlier session has ended
    const [f, g, h] = [await samLoggedIn('f'), await samLoggedIn('g'), await samLoggedIn('h')]
    await lab.mustLogin(root)
    const ids = await Promise.all([f, g, h].map(async (home) => (await lab.savedSession(home))!['sessionId'] as string))

    const list = await lab.runIn(f, ['sessions'])
    expectOk(list, 'sessions')
    const byId = (a: unknown[], b: unknown[]) => String(a[0]).localeCompare(String(b[0]))
    const listed = (list.json!['sessions'] as Array<{ id: string; current: boolean; user: string }>).map((s) => [
      s.id,
      s.current,
      s.user,
    ])
    expect(listed.sort(byId)).toEqual(
      [
        [ids[0], true, 'sam'],
        [ids[1], false, 'sam'],
        [ids[2], false, 'sam'],
      ].sort(byId),
    )

    const one = await lab.runIn(f, ['sessions', '--revoke', ids[1]!.slice(0, 8)])
    expect(one.json).toMatchObject({ event: 'revoked', revoked: 1 })
    expectCode(await whoami(g), 'ERR_FORBIDDEN', 'whoami in the revoked session')
    expectOk(await whoami(h), 'whoami in a session that was not named')

    // Another user's session: a regular user may not touch it.
    const rootSession = (await lab.savedSession(root.home))!['sessionId'] as string
    expectCode(await lab.runIn(f, ['sessions', '--revoke', rootSession]), 'ERR_FORBIDDEN', "revoking root's session")
    expectOk(await lab.run(root, ['whoami']), 'root after the refused revoke')

    const others = await lab.runIn(f, ['sessions', '--revoke-others'])
    expect(others.json).toMatchObject({ event: 'revoked', revoked: 1 })
    expectCode(await whoami(h), 'ERR_FORBIDDEN', 'whoami in an other session')
    expectOk(await whoami(f), 'whoami in the session that revoked the others')

    expectCode(await lab.runIn(f, ['sessions', '--revoke', 'xyz']), 'ERR_USAGE', 'a malformed id')
    expectCode(await lab.runIn(f, ['sessions', '--revoke', '000000']), 'ERR_NOT_FOUND', 'an id that names no session')

    // An admin sees sam's one live session and revokes it by id.
    const adminList = await lab.run(root, ['admin', 'sessions', 'sam'])
    expect(
      (adminList.json!['sessions'] as Array<{ id: string; current: boolean }>).map((s) => [s.id, s.current]),
    ).toEqual([[ids[0], false]])
    expect((await lab.run(root, ['admin', 'revoke', ids[0]!.slice(0, 10)])).json).toMatchObject({
      event: 'revoked',
      revoked: 1,
    })
    expectCode(await whoami(f), 'ERR_FORBIDDEN', 'whoami in the session the admin revoked')
  })
})

describe.runIf(hasOathtool)('passwd', () => {
  it('a saved session alone cannot change the password or the authenticator: the server wants a fresh login', async () => {
    const home = await samLoggedIn('resumed-only')
    await lab.asUser(home, async (run) => {
      await expect(
        run('passwd', {
          salt: 'ab'.repeat(32),
          verifier: 'cd'.repeat(256),
          kdf: { name: 'scrypt', logN: 16, r: 8, p: 1 },
        }),
      ).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
      await expect(run('totp_reset', {})).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' })
    })
    expectOk(await loginWith(sam.password, sam.totpSecret), 'login with the unchanged password and authenticator')
  })

  it('refuses a wrong current password and a weak new one, and changes nothing', async () => {
    const home = await samLoggedIn('passwd-refused')
    const wrong = await lab.runIn(
      home,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', lab.codeFor(sam)],
      `not sam's password 1\n${newPassword()}\n`,
    )
    expectCode(wrong, 'ERR_AUTH_FAILED', 'passwd with a wrong current password')
    // The weak password is refused before the login: no code is spent (so none is given).
    const weak = await lab.runIn(
      home,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', '000000'],
      `${sam.password}\npassword\n`,
    )
    expectCode(weak, 'ERR_WEAK_PASSWORD', 'passwd to "password"')
    expectOk(await whoami(home), 'the session after the refusals')
    expectOk(await loginWith(sam.password, sam.totpSecret), 'login with the unchanged password')
  })

  it('proves the current password and a code, sets the new one, and revokes every other session', async () => {
    const [i, j] = [await samLoggedIn('passwd-i'), await samLoggedIn('passwd-j')]
    const live = (await lab.runIn(j, ['sessions'])).json!['sessions'].length as number
    const oldPassword = sam.password
    const nextPassword = newPassword()
    const changed = await lab.runIn(
      i,
      ['passwd', '--user', 'sam', '--password-stdin', '--otp', lab.codeFor(sam)],
      `${oldPassword}\n${nextPassword}\n`,
    )
    expectOk(changed, 'passwd')
    // Its own login made a new session, saved in i (revoking the one it replaced there); every other one is revoked.
    expect(changed.json).toMatchObject({ event: 'password_changed', user: 'sam', revokedSessions: live - 1 })
    sam.password = nextPassword
    expectCode(await whoami(j), 'ERR_FORBIDDEN', 'whoami in another session after passwd')
    expectOk(await whoami(i), 'whoami in the session passwd saved')
    expectCode(await loginWith(oldPassword, sam.totpSecret), 'ERR_AUTH_FAILED', 'login with the old password')
    expectOk(await loginWith(nextPassword, sam.totpSecret), 'login with the new password')
  })
})

describe.runIf(hasOathtool)('reset-2fa', () => {
  it('with a code from the current authenticator: a new secret, and the old authenticator stops working', async () => {
    const home = lab.homeOf('reset-totp')
    const oldSecret = sam.totpSecret
    const { result, secret } = await lab.enrolThrough(sam, home, [
      'reset-2fa',
      '--user',
      'sam',
      '--password-stdin',
      '--otp',
      lab.codeFor(sam),
    ])
    expectOk(result, 'reset-2fa')
    expect(result.json).toMatchObject({ event: 'totp_reset', user: 'sam' })
    expect(secret).not.toBe(oldSecret)
    expect(sam.totpSecret).toBe(secret)
    expectCode(await loginWith(sam.password, oldSecret), 'ERR_AUTH_FAILED', 'login with the old authenticator')
    expectOk(await loginWith(sam.password, sam.totpSecret), 'login with the new authenticator')
  })

  it('with a recovery code in place of a lost authenticator; the code is spent', async () => {
    const home = lab.homeOf('reset-recovery')
    const recoveryCode = sam.recoveryCodes.shift()!
    const oldSecret = sam.totpSecret
    const { result } = await lab.enrolThrough(sam, home, [
      'reset-2fa',
      '--user',
      'sam',
      '--password-stdin',
      '--recovery-code',
      recoveryCode,
    ])
    expectOk(result, 'reset-2fa --recovery-code')
    expect(sam.totpSecret).not.toBe(oldSecret)
    expectCode(await loginWith(sam.password, oldSecret), 'ERR_AUTH_FAILED', 'login with the lost authenticator')
    const again = await lab.runIn(
      lab.homeOf('reuse-recovery'),
      ['login', '--user', 'sam', '--password-stdin', '--recovery-code', recoveryCode],
      `${sam.password}\n`,
    )
    expectCode(again, 'ERR_AUTH_FAILED', 'the spent recovery code')
  })

  it("admin reset-2fa: sam's sessions end, and the next login enrols a new authenticator", async () => {
    const home = await samLoggedIn('before-admin-reset')
    await lab.mustLogin(root)
    const reset = await lab.run(root, ['admin', 'reset-2fa', 'sam'])
    expectOk(reset, 'admin reset-2fa sam')
    expect(reset.json).toMatchObject({ event: 'reset_2fa', user: 'sam', revokedSessions: expect.any(Number) })
    expect(reset.json!['revokedSessions']).toBeGreaterThanOrEqual(1)
    expectCode(await whoami(home), 'ERR_FORBIDDEN', "sam's session after the reset")
    const usersOf = async () =>
      new Map(
        ((await lab.run(root, ['admin', 'users'])).json!['users'] as Array<{ user: string; twoFactor: string }>).map(
          (u) => [u.user, u.twoFactor],
        ),
      )
    expect((await usersOf()).get('sam')).toBe('reset')

    // The old authenticator's code cannot skip the enrolment: the password alone is checked, then a new secret is offered.
    const oldSecret = sam.totpSecret
    const { result } = await lab.enrolThrough(sam, home, ['login', '--user', 'sam', '--password-stdin'])
    expectOk(result, 'the login that enrols')
    expect(result.json).toMatchObject({ event: 'login', user: 'sam' })
    expect(sam.totpSecret).not.toBe(oldSecret)
    expectOk(await whoami(home), 'the session that login saved')
    expect((await usersOf()).get('sam')).toBe('enrolled')
    expectCode(
      await loginWith(sam.password, oldSecret),
      'ERR_AUTH_FAILED',
      'login with the authenticator from before the reset',
    )
  })
})

describe.runIf(hasOathtool)('admin unlock', () => {
  it('three wrong passwords lock sam (the right one then fails alike); admin unlock lets him in', async () => {
    for (let i = 0; i < 3; i++)
      expectCode(
        await loginWith(`not sam's password ${i}`, sam.totpSecret),
        'ERR_AUTH_FAILED',
        `wrong password ${i + 1}`,
      )
    const locked = await loginWith(sam.password, sam.totpSecret)
    expectCode(locked, 'ERR_AUTH_FAILED', 'the right password while locked')
    expect(locked.error?.message).toBe('authentication failed')
    await lab.mustLogin(root)
    const users = (await lab.run(root, ['admin', 'users'])).json!['users'] as Array<{
      user: string
      locked: boolean
      lockedUntil: string | null
    }>
    expect(users.find((u) => u.user === 'sam')).toMatchObject({ locked: true, lockedUntil: expect.any(String) })

    const unlock = await lab.run(root, ['admin', 'unlock', 'sam'])
    expect(unlock.json).toMatchObject({ event: 'unlock', user: 'sam', wasLocked: true })
    expectOk(await loginWith(sam.password, sam.totpSecret), 'login after the unlock')
    expect((await lab.run(root, ['admin', 'unlock', 'sam'])).json).toMatchObject({ wasLocked: false })
    expectCode(await lab.run(root, ['admin', 'unlock', 'nobody']), 'ERR_NOT_FOUND', 'unlock of a name with no account')
  })
})

describe.runIf(hasOathtool)('what the audit log recorded of all this', () => {
  it('every login, failure, lockout, logout, revoke, password and 2FA change, and admin action, with who, whom, where and how it went', async () => {
    await lab.mustLogin(root)
    const audit = await lab.run(root, ['admin', 'audit', '--user', 'sam'])
    expectOk(audit, 'admin audit --user sam')
    const entries = audit.events
    const count = (action: string, outcome = 'ok') =>
      entries.filter((e) => e['action'] === action && e['outcome'] === outcome).length
    expect(count('user.register')).toBe(1)
    expect(count('login.ok')).toBeGreaterThanOrEqual(15)
    expect(count('login.failed', 'failed')).toBeGreaterThanOrEqual(7)
    expect(count('user.locked', 'failed')).toBe(1)
    // The logout, and the sessions that logins in the same client home replaced (the passwd's, the one above).
    expect(count('session.logout')).toBe(3)
    expect(count('session.revoke')).toBe(2)
    expect(count('session.revoke', 'refused')).toBe(1)
    expect(count('password.change')).toBe(1)
    expect(count('totp.reset')).toBe(2)
    expect(count('user.reset_2fa')).toBe(1)
    expect(count('totp.enrol')).toBe(1)
    expect(count('user.unlock')).toBe(2)
    for (const entry of entries) {
      expect(entry, `entry ${entry['n']}`).toMatchObject({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        address: '127.0.0.1',
      })
      expect([entry['actor'], entry['target']], `entry ${entry['n']} is by or about sam`).toContain('sam')
    }
    // Admin actions name the admin as actor and sam as target.
    expect(entries.find((e) => e['action'] === 'user.reset_2fa')).toMatchObject({
      actor: 'root',
      target: 'sam',
      outcome: 'ok',
    })
    expect(entries.find((e) => e['action'] === 'user.unlock')).toMatchObject({
      actor: 'root',
      target: 'sam',
      details: { wasLocked: true },
    })
    // A failed login has nobody logged in, and says at which step it failed.
    expect(entries.find((e) => e['action'] === 'login.failed')).toMatchObject({
      actor: null,
      target: 'sam',
      details: { stage: expect.any(String) },
    })
    // No secret: the passwords, the authenticators' secrets and codes, the tokens (the suite-wide check also scans this output).
    for (const secret of [sam.password, sam.totpSecret, ...sam.recoveryCodes, root.password])
      expect(audit.stdout).not.toContain(secret)
    expect(audit.stdout).not.toMatch(/sl[sbi]_[A-Za-z0-9_-]{43}/)
  })
})
