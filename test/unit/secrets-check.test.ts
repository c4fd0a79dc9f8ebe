import { afterEach, describe, expect, it } from 'vitest'
import { findLeaks, forgetAll, noteIssuedSecrets, noteOutput, noteSecret } from '../helpers/secrets.js'

// The suite-wide check (test/setup/no-secrets.ts) must be able to fail: these rows feed it leaks.
afterEach(forgetAll)

describe('the no-secret-in-output check', () => {
  it('reports a noted password in a server log, by kind and length, never by value', () => {
    noteSecret('password', 'hunter2 but longer')
    noteOutput('server', 'log', '{"event":"login_failed","user":"bob","why":"hunter2 but longer"}')
    const leaks = findLeaks()
    expect(leaks).toEqual(['a password (18 characters) appears in the log of server'])
    expect(leaks.join()).not.toContain('hunter2')
  })

  it('lets the issuing command show its TOTP secret and recovery codes on stdout, nowhere else', () => {
    const stdout =
      '{"event":"enrol","otpauthUri":"otpauth://totp/securelogin:bob?secret=ABCDEFGHIJKLMNOPQRSTUVWXYZ234567&issuer=securelogin"}\n{"event":"registered","recoveryCodes":["abcde-fghjk"]}'
    noteIssuedSecrets('register', stdout)
    noteOutput('register', 'stdout', stdout)
    expect(findLeaks()).toEqual([])
    noteOutput('register', 'stderr', 'warning: abcde-fghjk')
    noteOutput('server', 'log', 'secret ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')
    noteOutput('login', 'stdout', 'used abcdefghjk')
    expect(findLeaks()).toEqual([
      'a recovery code (11 characters) appears in the stderr of register',
      'a TOTP secret (32 characters) appears in the log of server',
      'a recovery code (10 characters) appears in the stdout of login',
    ])
  })

  it('ignores values too short to be told from chance (six-digit codes)', () => {
    noteSecret('code', '123456')
    noteOutput('server', 'log', 'at 2026-11-25T12:34:56.123456Z')
    expect(findLeaks()).toEqual([])
  })
})
