// `npm run bench -- startup`: how long `securelogin --version` and `--help` take from a cold
// process, next to `node -e 0` (what any Node program pays). Figures, not a test.
import { spawnSync } from 'node:child_process'
import { BIN, machine, ms, parseCount, optionsOrHelp, percentile, table } from './lib.mjs'

const DEFAULTS = { runs: '30', help: false }
const HELP = `usage: npm run bench -- startup [options]
  --runs 30    timed runs of each command (after 3 untimed)`

const COMMANDS = [
  ['node -e 0', ['-e', '0']],
  ['securelogin --version', [BIN, '--version']],
  ['securelogin --help', [BIN, '--help']],
  ['securelogin login --help', [BIN, 'login', '--help']],
]

export async function main(args) {
  const options = optionsOrHelp(args, DEFAULTS, HELP)
  if (!options) return 0
  const runs = parseCount(options.runs)
  console.log('cold start benchmark (figures, not a test)')
  console.log(`machine: ${machine()}`)
  const times = COMMANDS.map(() => [])
  for (let round = -3; round < runs; round++) {
    // Interleaved, so a busy moment of the machine falls on every command alike.
    COMMANDS.forEach(([, argv], i) => {
      const started = performance.now()
      const run = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      const elapsed = performance.now() - started
      if (run.status !== 0) throw new Error(`${COMMANDS[i][0]} exited ${run.status}: ${run.stderr}`)
      if (round >= 0) times[i].push(elapsed)
    })
  }
  const base = percentile(times[0], 50)
  console.log('')
  console.log(
    table(
      ['command', 'p50', 'p90', 'min', 'p50 - node -e 0'],
      COMMANDS.map(([name], i) => [
        name,
        ms(percentile(times[i], 50)),
        ms(percentile(times[i], 90)),
        ms(Math.min(...times[i])),
        i === 0 ? '-' : ms(percentile(times[i], 50) - base),
      ]),
    ),
  )
  const version = percentile(times[1], 50) - base
  console.log('')
  console.log(
    `goal: securelogin --version within 100 ms of node -e 0 (${ms(version)}): ${version <= 100 ? 'met' : 'missed'}`,
  )
  return 0
}
