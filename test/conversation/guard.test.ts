import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deriveClientSession, startClientLogin } from '../../src/auth/srp-client.js'
import { Bench, MINUTE, type User, type Welcome } from '../helpers/conversation.js'
import { getGuard, userCount } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'

// Online guessing (issue 5), one layer below the CLI: delays after 3 failures, lockout after 10,
// the same answer always. The default limits, the bench's clock, and a sleep that records the
// waits the server asks for instead of sitting through them. That the lock is in the store, so
// survives a restart of the server process, and what the CLI prints: test/e2e/guard.test.ts.

/**
 * One wrong password for every guess: the server sees only M1, which differs on every attempt
 * (fresh ephemerals), so it cannot tell one wrong password from another, and the client's 64 MiB
 * stretch of it runs once per salt (Bench keeps it).
 */
const WRONG = 'not the password, 8 wrong'
noteSecret('password', WRONG)

let bench: Bench
let gina: User
/** The waits the server asked for, in order (src/server/login.ts waits ctx.sleep(delayMs) before a failure answer). */
const sleeps: number[] = []

beforeAll(async () => {
  bench = await Bench.start({ registration: 'open' })
  // Bench's own sleep returns at once and keeps nothing: this one records, and also returns at once.
  bench.core.ctx.sleep = async (ms) => void sleeps.push(ms)
  gina = await bench.register('gina', { bulk: true })
})
afterAll(() => bench?.stop())

/**
 * A whole login of `name` with `password` and a fresh code of the account's authenticator, on a
 * connection of its own, from 127.0.0.1.
 */
async function attempt(name: string, password: string): Promise<Welcome> {
  const { peer } = await bench.prove({ name, password })
  try {
    const user = bench.users.get(name)
    if (!user) throw new Error(`${name} has no account, yet its password was accepted`)
    const welcome = await peer.request({ type: 'login_otp', code: await bench.codeFor(user) }, 'welcome')
    return bench.finish(peer, welcome).welcome
  } finally {
    peer.close()
  }
}

const GENERIC = { code: 'ERR_AUTH_FAILED', message: 'authentication failed' }

describe('failed logins', () => {
  it('answers every failure alike, waits from the 3rd on, doubling, and locks the name at the 10th', async () => {
    for (let i = 0; i < 10; i++) await expect(attempt('gina', WRONG)).rejects.toMatchObject(GENERIC)
    expect(sleeps).toEqual([0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000])
    expect(bench.log).toContainEqual(
      expect.objectContaining({
        event: 'user_locked',
        fields: expect.objectContaining({ user: 'gina', failures: 10 }),
      }),
    )
  })

  it('refuses the right password and code while locked, with the same answer after the same wait', async () => {
    sleeps.length = 0
    await expect(attempt('gina', gina.password)).rejects.toMatchObject(GENERIC)
    expect(sleeps).toEqual([8000])
    expect(bench.log).toContainEqual(
      expect.objectContaining({
        event: 'login_refused',
        fields: expect.objectContaining({ user: 'gina', reason: 'locked' }),
      }),
    )
  })

  it('lets the name in again after 15 minutes, and a success clears the count', async () => {
    bench.clock.advance(15 * MINUTE)
    await expect(attempt('gina', gina.password)).resolves.toMatchObject({ user: 'gina' })
    expect(await getGuard(bench.store, 'gina')).toBeUndefined()
    sleeps.length = 0
    await expect(attempt('gina', WRONG)).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    expect(sleeps).toEqual([0])
  })

  it('counts names with no account the same way, without storing them', async () => {
    sleeps.length = 0
    for (let i = 0; i < 4; i++) await expect(attempt('nobody.here', WRONG)).rejects.toMatchObject(GENERIC)
    expect(sleeps.slice(0, 2)).toEqual([0, 250]) // the address already has one failure from gina
    expect(await userCount(bench.store)).toBe(1)
    expect(await getGuard(bench.store, 'nobody.here')).toBeUndefined()
  })

  // Found when this case moved here from the TLS test, where the network spread the guesses out:
  // Guard.failed counted from the object its load returned, so ten failures whose load finished
  // together each stored failures: 1 and the name was never locked.
  it('loses no count to parallel guesses: ten at once lock the name, and the store has all ten', async () => {
    await bench.register('ivy', { bulk: true })
    // Ten connections wait with a wrong proof each (from a random x: the server cannot tell it from
    // a wrong password's), then all ten proofs are handed over in one tick: the guesses arrive at once.
    const peers = Array.from({ length: 10 }, () => bench.connect())
    const proofs = await Promise.all(
      peers.map(async (peer) => {
        const ephemeral = startClientLogin()
        const { salt, B } = await peer.request({ type: 'login_start', username: 'ivy', A: ephemeral.A }, 'challenge')
        const x = randomBytes(32).toString('hex')
        return deriveClientSession({ ephemeral, salt, B, username: 'ivy', x }).M1
      }),
    )
    const results = await Promise.allSettled(
      peers.map((peer, i) => peer.request({ type: 'login_proof', M1: proofs[i] }, 'server_proof')),
    )
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'accepted'))).toEqual(
      Array(10).fill('ERR_AUTH_FAILED'),
    )
    // The count's store write follows the answer (src/server/guard.ts): all ten are queued by now.
    await bench.core.ctx.guard.flush()
    expect(await getGuard(bench.store, 'ivy')).toMatchObject({ failures: 10, lockedUntil: expect.any(Number) })
    expect(bench.log).toContainEqual(
      expect.objectContaining({ event: 'user_locked', fields: expect.objectContaining({ user: 'ivy', failures: 10 }) }),
    )
  })
})

describe('a lockout that cannot be aimed at a person: device keys', () => {
  let dana: User
  let device: string
  beforeAll(async () => {
    dana = await bench.register('dana', { bulk: true })
    device = (await bench.login(dana)).welcome.device!
  })

  /**
   * A wrong guess for `name` from `address` (with `device` if given): ERR_AUTH_FAILED. A random
   * M1 on one A for all: to the server a wrong password's proof, without a client's maths.
   */
  const A = startClientLogin().A
  const guess = async (name: string, address: string, device?: string) => {
    const peer = bench.connect(address)
    await peer.request({ type: 'login_start', username: name, A, ...(device ? { device } : {}) }, 'challenge')
    const M1 = randomBytes(32).toString('hex')
    expect(await peer.refusal({ type: 'login_proof', M1 })).toMatchObject({ ...GENERIC, ended: true })
  }

  it('a login is answered with a device key for its name', () => {
    expect(device).toMatch(/^sld_[A-Za-z0-9_-]{43}$/)
    noteSecret('device key', device)
  })

  it('after 100 failures from addresses she never used, dana logs in from her device; a new address with her password and code is refused', async () => {
    // Twenty at a time: each failure's count and audit entry are store writes behind its answer.
    for (let i = 0; i < 100; i += 20)
      await Promise.all(Array.from({ length: 20 }, (_, j) => guess('dana', `127.0.1.${i + j}`)))
    expect(await bench.core.ctx.guard.isLocked('dana', true)).toBe(true)
    await expect(bench.login(dana, { address: '127.0.2.1' })).rejects.toMatchObject(GENERIC)
    const { welcome } = await bench.login(dana, { device })
    expect(welcome).toMatchObject({ user: 'dana', device: expect.stringMatching(/^sld_/) })
    // Her login does not lift the lock the guesses earned: every other client stays locked out.
    await expect(bench.login(dana, { address: '127.0.2.2' })).rejects.toMatchObject(GENERIC)
  })

  it("another name's key, or a key altered in one character, counts as none: the name's lock applies", async () => {
    const eve = await bench.register('eve', { bulk: true })
    const evesKey = (await bench.login(eve)).welcome.device!
    noteSecret('device key', evesKey)
    await expect(bench.login(dana, { device: evesKey })).rejects.toMatchObject(GENERIC)
    // The same bytes spelled otherwise (the last character's unused low bits set) is no key either.
    const respelled = `${device.slice(0, -1)}${String.fromCharCode(device.charCodeAt(device.length - 1) + 1)}`
    await expect(bench.login(dana, { device: respelled })).rejects.toMatchObject(GENERIC)
    const last = device.at(-2) === 'A' ? 'B' : 'A'
    await expect(bench.login(dana, { device: `${device.slice(0, -2)}${last}${device.at(-1)}` })).rejects.toMatchObject(
      GENERIC,
    )
  })

  it('a stolen device key is locked on its own: ten failures with it lock that device, not her other one', async () => {
    const second = (await bench.login(dana, { device })).welcome.device!
    noteSecret('device key', second)
    for (let i = 0; i < 10; i++) await guess('dana', '127.0.3.1', second)
    expect(bench.log).toContainEqual(
      expect.objectContaining({ event: 'device_locked', fields: expect.objectContaining({ user: 'dana' }) }),
    )
    await expect(bench.login(dana, { device: second })).rejects.toMatchObject(GENERIC)
    await expect(bench.login(dana, { device })).resolves.toMatchObject({ welcome: { user: 'dana' } })
  })
})
