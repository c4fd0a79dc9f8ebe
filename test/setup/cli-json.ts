import { afterAll, afterEach, expect } from 'vitest'
import { takeJsonViolations } from '../helpers/json-events.js'

// Every JSON line a CLI run printed (test/helpers/cli.ts, Lab.runHere) must be an event that
// docs/cli-json.md describes. A run that ended during a test fails that test; one that ended in
// a beforeAll or afterAll hook fails the file.
afterEach(() => {
  expect(takeJsonViolations()).toEqual([])
})

afterAll(() => {
  expect(takeJsonViolations()).toEqual([])
})
