import { stat } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_BUDGETS } from '../../src/server/budget.js'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { Bench, type LoggedIn, type User } from '../helpers/conversation.js'

// Budgets for everything that writes (src/server/budget.ts), one layer below the socket: the
// default budgets, the bench's clock (a bucket refills only when the test moves it). The same
// floods against the server process, measured on its store file: test/e2e/hostile.test.ts.

const FLOOD = 10_000
const MB = 1024 * 1024

let bench: Bench
let root: LoggedIn
let rita: User

beforeAll(async () => {
  // `{}`: the server's own budgets, not the roomy ones the bench gives tests about other things.
  bench = await Bench.start({ budgets: {} })
  const sys = await bench.registerBootstrap('root')
  root = await bench.login(sys, { address: '127.0.0.9' })
  rita = await bench.registerInvited(root.peer, 'rita', 'regular_user', { bulk: true })
})
afterAll(() => bench?.stop())

/** Every refusal run's count written, then the store's size on disk. */
async function storeBytes(): Promise<number> {
  bench.core.ctx.budgets.audit.flush()
  await bench.core.ctx.audit.flush()
  return (await stat(bench.storePath)).size
}

/** How many refusals the entries after `after` stand for: one each, or the `repeated` count of a run's last. */
function refusalsIn(entries: AuditEntry[], after: number, match: Partial<AuditEntry>): number {
  return entries
    .filter((e) => e.n > after && e.outcome === 'refused')
    .filter((e) => Object.entries(match).every(([k, v]) => e[k as keyof AuditEntry] === v))
    .reduce((sum, e) => sum + Number(e.details?.['repeated'] ?? 1), 0)
}

describe('refusals are counted per address and per account, and stop reaching the store', () => {
  it(`${FLOOD} refused registrations from one address: rate limited after ${DEFAULT_BUDGETS.refusals}, on one connection, the store grows by kilobytes`, async () => {
    const head = (await root.peer.call('audit', { limit: 1 })).head.n
    const before = await storeBytes()
    // One salt and verifier for every name: the server cannot tell, and the test skips the maths.
    const credentials = await bench.credentials('probe', 'a password nobody registers')
    const peer = bench.connect('127.0.0.20')
    const codes = new Map<string, number>()
    for (let i = 0; i < FLOOD; i++) {
      const error = await peer.refusal({ type: 'register_start', username: `probe${i}`, ...credentials })
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1)
      if (i === FLOOD - 1) expect(error.hint).toMatch(/^try again in \d+ s$/)
      expect(error.ended).toBe(false)
    }
    expect(Object.fromEntries(codes)).toEqual({
      ERR_FORBIDDEN: DEFAULT_BUDGETS.refusals,
      ERR_RATE_LIMITED: FLOOD - DEFAULT_BUDGETS.refusals,
    })
    const grown = (await storeBytes()) - before
    console.log(`budgets: ${FLOOD} refused registrations grew the store by ${grown} bytes`)
    expect(grown).toBeLessThan(MB / 10)
    // Every refusal is in the log, as entries or as counts.
    const { entries } = await root.peer.call('audit', { after: head })
    expect(refusalsIn(entries, head, { action: 'user.register', address: '127.0.0.20' })).toBe(FLOOD)
    expect(entries.length).toBeLessThan(DEFAULT_BUDGETS.refusals + 5)
    // Another address is not this one's budget: rita logs in from it.
    await bench.login(rita, { address: '127.0.0.21' })
  })

  it(`${FLOOD} refused calls by one account: rate limited after ${DEFAULT_BUDGETS.refusals}; allowed calls and other accounts go on`, async () => {
    const head = (await root.peer.call('audit', { limit: 1 })).head.n
    // Logged in first: each login moves the bench's clock a TOTP step on, which refills buckets.
    const { peer } = await bench.login(rita, { address: '127.0.0.22' })
    const elsewhere = await bench.login(rita, { address: '127.0.0.23' })
    const before = await storeBytes()
    const codes = new Map<string, number>()
    for (let i = 0; i < FLOOD; i++) {
      const error = await peer.callRefusal('users', {})
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1)
    }
    expect(Object.fromEntries(codes)).toEqual({
      ERR_FORBIDDEN: DEFAULT_BUDGETS.refusals,
      ERR_RATE_LIMITED: FLOOD - DEFAULT_BUDGETS.refusals,
    })
    // Rate limiting refuses refusals only: what rita may do, she still does.
    expect(await peer.call('whoami', {})).toMatchObject({ user: 'rita' })
    // The same account from another address: its budget is the account's too.
    expect(await elsewhere.peer.callRefusal('users', {})).toMatchObject({ code: 'ERR_RATE_LIMITED', ended: false })
    // Another account, from another address, is not limited by rita's refusals.
    expect((await root.peer.call('users', {})).users.length).toBe(2)
    const grown = (await storeBytes()) - before
    console.log(`budgets: ${FLOOD} refused calls grew the store by ${grown} bytes`)
    expect(grown).toBeLessThan(MB / 10)
    const { entries } = await root.peer.call('audit', { after: head })
    expect(refusalsIn(entries, head, { actor: 'rita' })).toBe(FLOOD + 1)
  })

  it('a budget refills with time: after the hint says, a refusal is answered as itself again', async () => {
    const peer = bench.connect('127.0.0.20')
    const credentials = await bench.credentials('probe', 'a password nobody registers')
    const probe = { type: 'register_start', username: 'probe-again', ...credentials }
    // The clock moved since the flood (logins); spend what came back.
    let limited = await peer.refusal(probe)
    for (let i = 0; i < DEFAULT_BUDGETS.refusals && limited.code !== 'ERR_RATE_LIMITED'; i++)
      limited = await peer.refusal(probe)
    expect(limited.code).toBe('ERR_RATE_LIMITED')
    const seconds = Number(/(\d+) s$/.exec(limited.hint!)![1])
    expect(seconds).toBeLessThanOrEqual(Math.ceil(DEFAULT_BUDGETS.refusalPeriodMs / DEFAULT_BUDGETS.refusals / 1000))
    bench.clock.advance(seconds * 1000)
    expect(await peer.refusal(probe)).toMatchObject({
      code: 'ERR_FORBIDDEN',
      ended: false,
    })
  })
})

describe('registrations are limited per address', () => {
  let open: Bench
  beforeAll(async () => {
    // No system_admin, and --registration open: without the flag a new server takes the bootstrap token only.
    open = await Bench.start({ budgets: {}, registration: 'open' })
  })
  afterAll(() => open?.stop())

  it(`${DEFAULT_BUDGETS.registrations} from one address, then ERR_RATE_LIMITED until one is earned back; other addresses go on`, async () => {
    for (let i = 0; i < DEFAULT_BUDGETS.registrations; i++)
      await open.register(`early${i}`, { bulk: true, address: '127.0.0.30' })
    const refused = await open.register('one-too-many', { bulk: true, address: '127.0.0.30' }).catch((e) => e)
    expect(refused).toMatchObject({ code: 'ERR_RATE_LIMITED', ended: false })
    const every = DEFAULT_BUDGETS.registrationPeriodMs / DEFAULT_BUDGETS.registrations
    expect(refused.hint).toBe(`try again in ${every / 1000} s`)
    await open.register('elsewhere', { bulk: true, address: '127.0.0.31' })
    open.clock.advance(every)
    await open.register('one-too-many', { bulk: true, address: '127.0.0.30' })
  })
})
