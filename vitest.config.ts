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
    // Test files share their worker's module graph instead of each starting a fresh one: that
    // start (importing src/, zod's schemas, Ink, OpenSSL's check of the SRP group) cost about a
    // second of CPU per file, a fifth of the suite. It holds because every file stops what it
    // started (servers, CLI processes by pid, stores) and restores what it mocked.
    isolate: false,
    // Every test file ends by checking that no noted secret appears in any captured output.
    setupFiles: ['test/setup/no-secrets.ts'],
    reporters: ['default'],
  },
})
