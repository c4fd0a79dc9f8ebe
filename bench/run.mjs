#!/usr/bin/env node
// Benchmarks: `npm run bench -- NAME [options]` (npm's prebench builds dist/ first).
// A benchmark prints figures and ratios; it never passes or fails on a time. docs/performance.md.

const BENCHMARKS = {
  store: {
    module: './store.mjs',
    about:
      'the encrypted store at 1k, 100k and 1M users: append latency, open time, RSS, file size, compaction; ' +
      '--store postgres: lookups and registrations on PostgreSQL',
  },
  enumeration: {
    module: './enumeration.mjs',
    about: 'answer times for a name with no account against a real user with a wrong password (challenge, M1)',
  },
  login: {
    module: './login.mjs',
    about:
      'full logins per second over real TLS, on each SRP engine, with latency and where the server CPU goes; ' +
      '--store file,postgres compares the stores in one run',
  },
  startup: { module: './startup.mjs', about: 'cold start of securelogin --version and --help next to node -e 0' },
}

const [name, ...args] = process.argv.slice(2)
const benchmark = name === undefined ? undefined : BENCHMARKS[name]
if (!benchmark) {
  if (name !== undefined && name !== '--help' && name !== '-h')
    console.error(`bench: no benchmark named ${JSON.stringify(name)}`)
  console.error('usage: npm run bench -- NAME [options]    (or: node bench/run.mjs NAME [options] after npm run build)')
  for (const [key, { about }] of Object.entries(BENCHMARKS)) console.error(`  ${key.padEnd(8)} ${about}`)
  console.error('  NAME --help lists the options of one benchmark')
  process.exit(name === '--help' || name === '-h' ? 0 : 2)
}

const { main } = await import(benchmark.module)
try {
  process.exitCode = (await main(args)) ?? 0
} catch (error) {
  const usage = error?.constructor?.name === 'UsageError'
  console.error(`bench ${name}: ${usage ? error.message : (error?.stack ?? error)}`)
  process.exitCode = usage ? 2 : 1
}
