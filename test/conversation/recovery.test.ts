import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RECOVERY_CODE_PATTERN, findRecoveryCode } from '../../src/auth/recovery-codes.js'
import { Bench, ServerError, codeAt, type User } from '../helpers/conversation.js'
import { getRecovery, getUser } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'

// Recovery codes, as the server decides about them: each logs in once in place of a TOTP code and
// the welcome says how many are left; a used one fails like any other wrong code, also after a
// restart; the store keeps only slow hashes; only a login with a TOTP code may replace them, and a
// replacement replaces every one. At the real hashing cost (realRecoveryKdf), since what is
// stored is under test. What the CLI shows of them (the codes at enrolment, a loosely typed code,
// the count and the warning, `securelogin recovery-codes`): test/e2e/recovery.test.ts.

let bench: Bench
let bob: User

beforeAll(async () => {
  bench = await Bench.start({ realRecoveryKdf: true, registration: 'open' })
  bob = await bench.register('bob')
})

afterAll(async () => {
  await bench?.stop()
})

/** The refusal of a login that offers `code` in place of a TOTP code. */
async function refusedRecovery(code: string): Promise<ServerError> {
  const error = await bench.loginWithRecoveryCode(bob, code).then(
    () => new Error('the code logged in'),
    (error: unknown) => error,
  )
  expect(error).toBeInstanceOf(ServerError)
  return error as ServerError
}

/** The failure every wrong second factor gets: here, a TOTP code that is none of the window's. */
async function wrongTotpFailure(): Promise<ServerError> {
  const { peer } = await bench.prove(bob)
  const window = await Promise.all([-1, 0, 1].map((d) => codeAt(bob.totpSecret, bench.clock.step + d)))
  const code = ['000000', '111111'].find((c) => !window.includes(c))!
  return peer.refusal({ type: 'login_otp', code })
}

describe('a recovery code', () => {
  it('logs in once in place of a TOTP code; a used one gets the generic failure', async () => {
    const { welcome } = await bench.loginWithRecoveryCode(bob, bob.recoveryCodes[0]!)
    expect(welcome).toMatchObject({ user: 'bob', recoveryCodesLeft: 9 })
    const used = await refusedRecovery(bob.recoveryCodes[0]!)
    expect(used).toMatchObject({ code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
    const wrong = await wrongTotpFailure()
    expect([used.code, used.message, used.hint]).toEqual([wrong.code, wrong.message, wrong.hint])
  })

  it('each use counts down the codes left', async () => {
    const left: number[] = []
    for (const code of bob.recoveryCodes.slice(1, 4))
      left.push((await bench.loginWithRecoveryCode(bob, code)).welcome.recoveryCodesLeft!)
    expect(left).toEqual([8, 7, 6])
  })

  it('is stored only as a slow hash, and a used one stays used across a restart', async () => {
    await bench.offline(async (store) => {
      const stored = await getRecovery(store, 'bob')
      expect(stored).toMatchObject({
        kdf: { name: 'scrypt', logN: 14, r: 8, p: 1 },
        salt: expect.stringMatching(/^[0-9a-f]{32}$/),
      })
      expect(stored!.hashes).toHaveLength(10)
      expect(stored!.hashes.slice(0, 4)).toEqual([null, null, null, null])
      for (const hash of stored!.hashes.slice(4)) expect(hash).toMatch(/^[0-9a-f]{64}$/)
      // The hashes are scrypt at the cost the record names: recomputed here at that cost, an
      // unused code finds its own.
      expect(await findRecoveryCode(stored!, bob.recoveryCodes[4]!)).toBe(4)
      const user = await getUser(store, 'bob')
      // From here on the suite-wide check (test/setup/no-secrets.ts) also looks for the verifier.
      noteSecret('verifier', user!.verifier)
      const dump = JSON.stringify(stored) + JSON.stringify(user)
      for (const code of bob.recoveryCodes) {
        expect(dump).not.toContain(code)
        expect(dump).not.toContain(code.replace('-', ''))
      }
    })
    // The file itself is sealed: no code appears in its bytes either.
    const bytes = await readFile(bench.storePath, 'latin1')
    for (const code of bob.recoveryCodes) expect(bytes).not.toContain(code.replace('-', ''))
    // offline() started the server again on the same store.
    expect(await refusedRecovery(bob.recoveryCodes[1]!)).toMatchObject({ code: 'ERR_AUTH_FAILED' })
    const { welcome } = await bench.loginWithRecoveryCode(bob, bob.recoveryCodes[4]!)
    expect(welcome.recoveryCodesLeft).toBe(5)
  })
})

describe('renewing the codes', () => {
  it('is refused on a login made with a recovery code (ERR_FORBIDDEN), and the codes stay', async () => {
    const { peer, welcome } = await bench.loginWithRecoveryCode(bob, bob.recoveryCodes[5]!)
    expect(welcome.recoveryCodesLeft).toBe(4)
    // Refused as a call would be: the person stays logged in.
    expect(await peer.refusal({ type: 'recovery_codes_renew' })).toMatchObject({ code: 'ERR_FORBIDDEN', ended: false })
    expect(await peer.call('whoami', {})).toMatchObject({ user: 'bob' })
    const next = await bench.loginWithRecoveryCode(bob, bob.recoveryCodes[6]!)
    expect(next.welcome.recoveryCodesLeft).toBe(3)
  })

  it('is refused once the session has ended, though the connection logged in with a TOTP code', async () => {
    const { peer, welcome } = await bench.login(bob)
    // Revoked from another connection (a password change elsewhere does the same).
    const other = await bench.login(bob)
    await other.peer.call('revoke', { id: welcome.sessionId })
    const before = await getRecovery(bench.store, 'bob')
    expect(await peer.refusal({ type: 'recovery_codes_renew' })).toMatchObject({
      code: 'ERR_FORBIDDEN',
      message: expect.stringMatching(/session has ended/),
      ended: true,
    })
    expect(await getRecovery(bench.store, 'bob')).toEqual(before)
  })

  it('after a login with a TOTP code replaces every code: the old ones are gone, a new one works once', async () => {
    const { peer, welcome } = await bench.login(bob)
    expect(welcome.recoveryCodesLeft).toBeUndefined()
    const { codes } = await peer.request({ type: 'recovery_codes_renew' }, 'recovery_codes')
    for (const code of codes) noteSecret('recovery code', code)
    expect(codes).toHaveLength(10)
    expect(new Set(codes).size).toBe(10)
    for (const code of codes) {
      expect(code).toMatch(RECOVERY_CODE_PATTERN)
      expect(bob.recoveryCodes).not.toContain(code)
    }
    // An old code that was never used no longer works.
    expect(await refusedRecovery(bob.recoveryCodes[9]!)).toMatchObject({ code: 'ERR_AUTH_FAILED' })
    expect((await bench.loginWithRecoveryCode(bob, codes[0]!)).welcome.recoveryCodesLeft).toBe(9)
    expect(await refusedRecovery(codes[0]!)).toMatchObject({ code: 'ERR_AUTH_FAILED' })
  })
})
