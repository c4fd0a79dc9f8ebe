import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Hang guards, not deadlines: a test that does its work on a machine four times busier than
    // usual must still pass (a CLI-heavy test took over 60 s with three suites running at once).
    testTimeout: 240_000,
    hookTimeout: 240_000,
    // Each e2e file starts its own servers on port 0; two cores, so keep file parallelism modest.
    maxWorkers: 2,
    // Every test file ends by checking that no noted secret appears in any captured output.
    setupFiles: ['test/setup/no-secrets.ts'],
    reporters: ['default'],
  },
})
