import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StoreConflict } from '../../src/store/index.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { Bench, type LoggedIn } from '../helpers/conversation.js'

// A store fault inside a request: the peer hears what happened, never the store's own words, which
// name its keys (a user name, a role). The log keeps them.

let bench: Bench
let root: LoggedIn

beforeAll(async () => {
  bench = await Bench.start()
  root = await bench.login(await bench.registerBootstrap('root'))
})
afterAll(() => bench?.stop())

/** The next store commit fails with `error`; the ones after it go through. */
function failNextCommit(error: Error) {
  const store = bench.core.ctx.store
  const commit = store.commit.bind(store)
  store.commit = async () => {
    store.commit = commit
    throw error
  }
}

describe('a store fault inside a call', () => {
  it('a conflict is ERR_STORE_CONFLICT with "try again", naming no key', async () => {
    failNextCommit(new StoreConflict('role/system_admin/root'))
    const refusal = await root.peer.callRefusal('invite', { role: 'regular_user', ttlSeconds: 3600 })
    expect(refusal).toMatchObject({ code: 'ERR_STORE_CONFLICT', hint: 'try again', ended: false })
    expect(refusal.message).not.toContain('root')
    expect(bench.log).toContainEqual(
      expect.objectContaining({
        event: 'store_error',
        fields: expect.objectContaining({ error: expect.stringContaining('role/system_admin/root') }),
      }),
    )
  })

  it('any other store fault is an internal error to the peer', async () => {
    failNextCommit(new SecureLoginError('ERR_STORE_IO', 'cannot write data/securelogin.store (ENOSPC)'))
    const refusal = await root.peer.callRefusal('invite', { role: 'regular_user', ttlSeconds: 3600 })
    expect(refusal).toMatchObject({ code: 'ERR_INTERNAL', message: 'internal error' })
  })
})
