import { afterAll, expect } from 'vitest'
import { findLeaks, forgetAll } from '../helpers/secrets.js'

// Registered first, so it runs after every other afterAll of the file (vitest runs after-hooks
// as a stack): by then every server has stopped and every CLI run has ended. Test files share
// their worker's modules (vitest.config.ts, isolate: false), so what this file noted is then
// forgotten: the next file is checked on its own secrets and outputs, as before.
afterAll(() => {
  try {
    expect(findLeaks()).toEqual([])
  } finally {
    forgetAll()
  }
})
