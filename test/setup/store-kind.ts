import { afterAll } from 'vitest'
import { dropStoreDatabases } from '../helpers/store-kind.js'

// Under the postgres project (vitest.config.ts) every server directory of the file had a database
// of its own (test/helpers/store-kind.ts): dropped when the file ends, after the file's own
// afterAll hooks have stopped its servers (after-hooks run as a stack, this one registered
// before the file's). On a file store there is none, and this does nothing.
afterAll(async () => {
  await dropStoreDatabases()
})
