import { afterAll, expect } from 'vitest'
import { findLeaks } from '../helpers/secrets.js'

// Registered first, so it runs after every other afterAll of the file (vitest runs after-hooks
// as a stack): by then every server has stopped and every CLI run has ended.
afterAll(() => {
  expect(findLeaks()).toEqual([])
})
