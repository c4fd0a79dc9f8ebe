import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'

// `npm run mutants` plants each listed bug and checks that a test catches it (docs/architecture.md,
// "How we know the tests bite"). A refactor that moves the planted code would make a mutant
// silently inapplicable; this keeps the list honest on every run.

describe('scripts/mutants.mjs', () => {
  it('every mutant still applies: its code occurs exactly once in its file', () => {
    const result = spawnSync(process.execPath, ['scripts/mutants.mjs', '--check'], { encoding: 'utf8' })
    expect(result.stdout).toMatch(/\d+ mutants apply to the code as it is/)
    expect(result.status).toBe(0)
  })
})
