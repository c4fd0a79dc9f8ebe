import { statSync } from 'node:fs'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/**
 * The longest files first (the kill test, then the ones that mostly wait: tmux, the terminal
 * apps), then the rest largest first: on two workers a long file started last is a tail the
 * other worker sits out. Vitest's own order does this from its cache of past durations, which a
 * fresh clone (CI) does not have.
 */
const FIRST = ['test/e2e/kill.test.ts', 'test/e2e/tui-tmux.test.ts', 'test/e2e/register-login.test.ts']

/**
 * The e2e contract (register, login, sessions, roles, audit, tokens), which runs once on each
 * store kind: these files again in the postgres project, each server on a database of its own
 * (test/helpers/store-kind.ts).
 */
const CONTRACT = [
  'test/e2e/register-login.test.ts',
  'test/e2e/sessions.test.ts',
  'test/e2e/roles.test.ts',
  'test/e2e/audit.test.ts',
  'test/e2e/signed-tokens.test.ts',
]

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const known = FIRST.findIndex((name) => file.moduleId.endsWith(name))
      return known === -1 ? FIRST.length : known
    }
    const size = (file: TestSpecification) => statSync(file.moduleId).size
    return [...files].sort((a, b) => rank(a) - rank(b) || size(b) - size(a))
  }
}

export default defineConfig({
  test: {
    // Hang guards, not deadlines: a test that does its work on a machine four times busier than
    // usual must still pass (a CLI-heavy test took over 60 s with three suites running at once).
    testTimeout: 240_000,
    hookTimeout: 240_000,
    // Each e2e file starts its own servers on port 0. Four workers on two cores: several files
    // mostly wait (tmux, the terminal apps, the hostile clients' deadlines), and the extra
    // workers use the core they leave idle (the suite: 182 s with two, 153 with three, 146 with
    // four, in one session on one machine).
    maxWorkers: 4,
    // Test files share their worker's module graph instead of each starting a fresh one: that
    // start (importing src/, zod's schemas, Ink, OpenSSL's check of the SRP group) cost about a
    // second of CPU per file, a fifth of the suite. It holds because every file stops what it
    // started (servers, CLI processes by pid, stores) and restores what it mocked.
    isolate: false,
    sequence: { sequencer: LongestFirst },
    // Every test file ends by checking that no noted secret appears in any captured output, and
    // every test that ran the CLI with --json, that each JSON line it printed is in docs/cli-json.md.
    setupFiles: ['test/setup/no-secrets.ts', 'test/setup/cli-json.ts'],
    reporters: ['default'],
    // Both projects take everything above (extends: true) and run side by side in one pool. Each
    // names its own files: extends concatenates an include given above with a project's.
    projects: [
      { extends: true, test: { name: 'file', include: ['test/**/*.test.ts', 'test/**/*.test.tsx'] } },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: CONTRACT,
          env: { SECURELOGIN_TEST_STORE: 'postgres' },
          // After those above (extends concatenates): the databases the file's servers used are
          // dropped. Here alone: in the other project it would only cost each worker the imports.
          setupFiles: ['test/setup/store-kind.ts'],
        },
      },
    ],
  },
})
