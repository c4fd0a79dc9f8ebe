import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeFrame } from '../../src/protocol/frame.js'
import { DEFAULT_PASSWORD_KDF } from '../../src/auth/password-stretch.js'
import { join } from 'node:path'
import { createStore } from '../../src/store/index.js'
import { roleIndexChanges, roleIndexChangesChecked, systemAdminCount } from '../../src/server/invites.js'
import { DEFAULT_SESSION_TIMES, Sessions } from '../../src/server/sessions.js'
import {
  ROOMY_BUDGETS,
  TEST_KDF,
  TEST_PASSPHRASE,
  startInProcessServer,
  type InProcessServer,
} from '../helpers/in-process-server.js'
import { makeTempDir } from '../helpers/env.js'
import { restartInProcessServer } from '../helpers/enumeration.js'
import { RawClient } from '../helpers/raw-client.js'
import { addUsers, getUser, type AccountRecord } from '../helpers/records.js'
import { noteSecret } from '../helpers/secrets.js'

// The last system_admin, raced (docs/threat-model.md, "Found by attacking the landed server",
// row 2). Before the fix, two demotions or removals sent at the same moment each counted two
// system_admins, both went through, and none was left. Here each attempt leaves exactly two
// system_admins, then writes two call frames on two TLS connections in the same tick, against
// the real server: exactly one call may succeed, and one system_admin must remain.
//
// The accounts and their sessions are put in the store before the server starts: what is under
// test is the race between two calls, not how the callers came to exist (registering fifty
// system_admins through the wire would cost ten recovery-code hashes each).

const ATTEMPTS = 50
const LAST_DEMOTE = 'the last system_admin cannot be demoted'
const LAST_REMOVE = 'the last system_admin cannot be removed'

let server: InProcessServer
const tokens = new Map<string, string>()
const open: RawClient[] = []

function account(username: string, role: AccountRecord['role']): AccountRecord {
  return {
    username,
    salt: randomBytes(32).toString('hex'),
    verifier: randomBytes(256).toString('hex'),
    kdf: DEFAULT_PASSWORD_KDF,
    totpSecret: 'JBSWY3DPEHPK3PXP',
    role,
    createdAt: new Date().toISOString(),
  }
}

/** A TLS connection running as `name`'s session, as each CLI command opens one. */
async function as(name: string): Promise<RawClient> {
  const client = await RawClient.open(server.server.port)
  open.push(client)
  const welcome = await client.request({ type: 'session_resume', token: tokens.get(name) })
  expect(welcome, `${name} resumes`).toMatchObject({ type: 'welcome', user: name })
  return client
}

const call = (op: string, args: Record<string, unknown>) => encodeFrame({ type: 'call', op, args })

/**
 * Both frames written in the same tick, one per connection, then both answers: what each call
 * got, as `ok` or its error message.
 */
async function race(first: [RawClient, Buffer], second: [RawClient, Buffer]): Promise<[string, string]> {
  const waits = [first, second].map(([client]) => client.received.length + 1)
  first[0].socket.write(first[1])
  second[0].socket.write(second[1])
  const answers = await Promise.all([first[0].frame(waits[0]!), second[0].frame(waits[1]!)])
  return answers.map((answer: { type: string; code?: string; message?: string }) =>
    answer?.type === 'result' ? 'ok' : `${answer?.code}: ${answer?.message}`,
  ) as [string, string]
}

const systemAdmins = async (names: string[]) => {
  const roles = await Promise.all(names.map(async (name) => (await getUser(server.store, name))?.role))
  return names.filter((_, i) => roles[i] === 'system_admin')
}

beforeAll(async () => {
  const first = await startInProcessServer()
  const store = first.store
  const users = [
    account('root', 'system_admin'),
    account('sa2', 'system_admin'),
    ...Array.from({ length: ATTEMPTS }, (_, i) => account(`n${i}`, 'regular_user')),
  ]
  await addUsers(store, users)
  await store.commit(users.flatMap((user) => roleIndexChanges(user.username, undefined, user.role)))
  const sessions = await Sessions.load(store, DEFAULT_SESSION_TIMES, Date.now())
  for (const user of users) {
    const { token, change } = sessions.create(user.username, 'totp', '127.0.0.1', Date.now(), randomBytes)
    noteSecret('session token', token)
    tokens.set(user.username, token)
    await store.commit([change])
  }
  // The sessions are loaded at start; refusals come fifty a second here, past any default budget.
  server = await restartInProcessServer(first, { budgets: ROOMY_BUDGETS })
})

afterAll(async () => {
  for (const client of open) client.close()
  await server?.stop()
})

/**
 * Exactly one of the two calls went through and the other was refused with `refusal`; exactly
 * one of `names` is a system_admin after, and the role index says one. Returns who is left.
 */
async function oneWentThrough(answers: string[], refusal: string, names: string[], what: string): Promise<string[]> {
  expect(
    answers.filter((answer) => answer === 'ok'),
    what,
  ).toHaveLength(1)
  expect(
    answers.filter((answer) => answer === `ERR_FORBIDDEN: ${refusal}`),
    what,
  ).toHaveLength(1)
  const left = await systemAdmins(names)
  expect(left, what).toHaveLength(1)
  expect(await systemAdminCount(server.store), what).toBe(1)
  return left
}

describe('two calls that would each take the last system_admin away, sent at the same moment', () => {
  it(`${ATTEMPTS} demotions: one system_admin on two connections demoting the other and itself, or two demoting each other; exactly one goes through`, async () => {
    const rootA = await as('root')
    const rootB = await as('root')
    const sa2 = await as('sa2')
    const outcomes = new Map<string, number>()
    for (let i = 0; i < ATTEMPTS; i++) {
      expect(await systemAdmins(['root', 'sa2']), `before attempt ${i}`).toEqual(['root', 'sa2'])
      const kind = i % 2 === 0 ? 'root demotes sa2 and itself' : 'root and sa2 demote each other'
      const answers = await race(
        [rootA, call('set_role', { user: 'sa2', role: 'admin' })],
        [i % 2 === 0 ? rootB : sa2, call('set_role', { user: 'root', role: 'admin' })],
      )
      const what = `attempt ${i} (${kind}): ${answers.join(' | ')}`
      const left = await oneWentThrough(answers, LAST_DEMOTE, ['root', 'sa2'], what)
      const winner = answers[0] === 'ok' ? 'first' : 'second'
      outcomes.set(`${kind}: ${winner}`, (outcomes.get(`${kind}: ${winner}`) ?? 0) + 1)
      // The one left gives the role back, for the next attempt.
      const [restorer, demoted] = left[0] === 'root' ? [rootA, 'sa2'] : [sa2, 'root']
      expect(
        await restorer.request({ type: 'call', op: 'set_role', args: { user: demoted, role: 'system_admin' } }),
      ).toMatchObject({ type: 'result' })
    }
    console.log(`last-system-admin: demotion races ${JSON.stringify(Object.fromEntries(outcomes))}`)
  })

  it(`${ATTEMPTS} removals: a system_admin removing the other and itself, or two removing each other; exactly one goes through`, async () => {
    // sa2 leaves first, so that each attempt starts from exactly two: the survivor and a newcomer.
    const root = await as('root')
    expect(
      await root.request({ type: 'call', op: 'set_role', args: { user: 'sa2', role: 'regular_user' } }),
    ).toMatchObject({ type: 'result' })
    let survivor = 'root'
    let survivorLink = root
    const outcomes = new Map<string, number>()
    for (let i = 0; i < ATTEMPTS; i++) {
      const newcomer = `n${i}`
      expect(
        await survivorLink.request({ type: 'call', op: 'set_role', args: { user: newcomer, role: 'system_admin' } }),
      ).toMatchObject({ type: 'result' })
      expect(await systemAdminCount(server.store), `before attempt ${i}`).toBe(2)
      const self = i % 2 === 0
      const kind = self ? 'one removes the other and itself' : 'two remove each other'
      const [a, b] = await Promise.all([as(survivor), as(self ? survivor : newcomer)])
      const answers = await race([a, call('remove', { user: newcomer })], [b, call('remove', { user: survivor })])
      const what = `attempt ${i} (${kind}): ${answers.join(' | ')}`
      const left = await oneWentThrough(answers, LAST_REMOVE, [survivor, newcomer], what)
      const outcome = `${kind}: ${left[0] === survivor ? 'kept' : 'replaced'}`
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      survivor = left[0]!
      survivorLink = await as(survivor)
      for (const client of [a, b]) client.close()
    }
    console.log(`last-system-admin: removal races ${JSON.stringify(Object.fromEntries(outcomes))}`)
  })
})

describe('under the queue, a compare-and-set (what holds when many processes share one database)', () => {
  it('two changes made from one view of two system_admins: the first commits, the second is ERR_STORE_CONFLICT', async () => {
    const { dir, remove } = await makeTempDir('role-cas')
    const store = await createStore(join(dir, 'test.store'), TEST_PASSPHRASE, { kdf: TEST_KDF })
    try {
      await store.commit([
        ...roleIndexChanges('a', undefined, 'system_admin'),
        ...roleIndexChanges('b', undefined, 'system_admin'),
      ])
      // Each process counted two, so each rule check passed: a demotes b, b removes a.
      const demoteB = await roleIndexChangesChecked(store, 'b', 'system_admin', 'admin')
      const removeA = await roleIndexChangesChecked(store, 'a', 'system_admin', undefined)
      await store.commit(demoteB)
      await expect(store.commit(removeA)).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT' })
      expect(await store.keys('role/system_admin/')).toEqual(['role/system_admin/a'])
      // Read again, the rule sees the last one; a change that keeps a system_admin commits.
      expect(await systemAdminCount(store)).toBe(1)
      await store.commit(await roleIndexChangesChecked(store, 'c', undefined, 'system_admin'))
      expect((await store.keys('role/system_admin/')).sort()).toEqual(['role/system_admin/a', 'role/system_admin/c'])
    } finally {
      await store.close()
      await remove()
    }
  })
})
