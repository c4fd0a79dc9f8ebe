// `npm run bench -- login`: full logins per second against the real server, on each SRP engine in
// the same run, and where the server's time goes. Figures, not a test.
//
// Set-up: a store written directly (dist/store) with --users accounts. They share one password
// and one salt, so the client's scrypt stretch runs once here; x = H(s | H(I | ":" | P')) and
// v = g^x still differ per user, and the server does for each exactly what it does for any user.
// Each user gets its own TOTP secret. Then, per engine, the real server
// (`node bin/securelogin server --srp-engine E --stage-times`) on 127.0.0.1 port 0, and load
// from --threads worker threads (bench/login-worker.mjs): each login is a new TLS 1.3
// connection, login_start, login_proof, login_otp, welcome. The load runs in one of two ways:
//   closed loop  --connections loops in all, each awaiting its login before the next. The peak
//                and handshakes phases: "as fast as the server answers" is what they measure.
//   open loop    logins on a fixed schedule at a target rate (each thread its share, the threads'
//                schedules interleaved), each started at its due time whether or not the ones
//                before it have ended, up to --max-in-flight at once, and measured from its
//                scheduled start (wrk2's correction for coordinated omission: a closed loop paced
//                to a rate measures from when a busy loop got to a login, and so hides the logins a
//                slow one held up). Each is also measured from its real start: the service time.
//                Logins not answered --grace seconds after the schedule ends are failures, cut off.
//                Open-loop connections come from loopback addresses of the load's own (127.0.T.x),
//                as many as --max-in-flight needs at the server's 64 connections an address.
// Phases:
//   handshakes  connections that only do the TLS handshake: the server's CPU per handshake
//   peak        as fast as the server answers (closed loop)
//   half        at half the peak rate, open loop (openssl only): the latency a server has in hand
//   half-closed the same rate from a closed loop paced to it, as this benchmark measured it before
//               the open loop: for comparison
//   tenth       a tenth of the peak rate, open loop (openssl only, with half; not where the curve
//               runs, whose first point it is): what half's p99 is held against
//   half+kdf    half the peak, open loop, while another client changes passwords back to back (openssl only):
//               its scrypt stretches (twice per change) run in that client, a process of its
//               own (bench/password-changer.mjs) at the idle CPU priority (--kdf-client), as
//               they would run on the user's machine and not the server's
//   half+recovery  the same while one more connection logs in and renews its recovery codes
//               back to back (openssl only): the server hashes ten codes with scrypt each time
//   half+registrations  the same while a hostile client (bench/hostile-client.mjs, a process of
//               its own) registers from 127.0.0.2 back to back at full speed, past its address's
//               budget (the server runs with the default 20 an hour)
//   half+never-read  the same while a hostile client pipelines 30 MB of jwks_get from 127.0.0.3
//               on a connection it never reads, again on a new one each time the server ends it
//   curve       (opt-in: --curve, or curve in --phases) open loop at 10%, 20% ... 100% of the
//               peak, --curve-duration seconds each, after the other phases, in the first round,
//               on every engine and store that has a peak. A table, and for each engine and store
//               a JSON file, --curve-out/login-curve-ENGINE-STORE[-wN].json (N: the server's
//               --workers): { benchmark: "login-curve", commit, date, machine, engine, store,
//               workers, peakRate, points: [{ fraction, offered, achieved, logins, failed,
//               openLoop: { p50, p95, p99, max }, service: { p50, p95, p99, max }, serverCores,
//               loadCores, serverCpuPerLogin }] } (ms, logins/s, cores), and its SVG beside it
//               (bench/chart.mjs)
// Goals, each printed as `goal: ...: met` or `missed` (never an exit status), on the median over
// --rounds, each round's figures first: at least 300 logins/s at peak; 15x the package engine;
// open-loop p99 at half the peak under 20 ms (and the closed loop's beside it); that p99 within 3x
// of the open-loop p50 at a tenth of the peak; the server's CPU per login at peak at most 1.3x its
// TLS + SRP + TOTP CPU (file store); the server, not the load, limits the peak (its cores at peak
// at least 0.9, a serving process's with --workers, and the peak's logins/s x the CPU a login at
// half the peak within 10% of them); the half-peak p99 within 1.2x while passwords change, 2x while a hostile client works.
// The server's event loop delay (perf_hooks, p99 and max over each phase) shows whether work
// blocked its loop, apart from the latency the clients see.
// Server CPU is read from /proc/PID/stat (user + system, 10 ms ticks) around each phase; SRP, TOTP
// and the store commit are timed inside the server (--stage-times, totals logged on SIGUSR2). SRP
// and TOTP are synchronous CPU work; the store commit's wall time includes the fsync wait, so the
// split gives "store and the rest" as the server's CPU less TLS, SRP and TOTP.
//
// --store file,postgres runs the same phases on each kind of store in one run, on the same
// machine and load, so their ratio is measured rather than compared across runs; --rounds N
// repeats the kinds in turn and reports each round's ratio and their median. For PostgreSQL: a
// database of the run's own (made and dropped through $SECURELOGIN_BENCH_PG, a superuser URL), the
// same users written with createPgStore and commitEach, and the server started with --store URL
// (and --workers N). Per phase, besides the above: the CPU of the postgres processes (all of them,
// and the backends of the run's database), the statements (transactions: each of the store's
// statements runs alone) and commits (calls of securelogin_commit, counted with track_functions)
// per login, rows and WAL bytes written. PostgreSQL reports its counters lazily (within 10 s of a
// backend going idle), so each PostgreSQL phase is followed by a wait of --pg-settle seconds, not
// timed. With --workers the server's CPU is the first process's and every worker's (their pids are
// in its worker_listening lines), and there is no split by stage: --stage-times is one process's.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { createStore } from '../dist/store/index.js'
import { createPgStore } from '../dist/store/pg.js'
import { userChange } from '../dist/server/accounts.js'
import { RFC5054_2048 } from '../dist/auth/srp-group.js'
import * as srp from '../dist/auth/srp-math.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword } from '../dist/auth/password-stretch.js'
import { encodeTotpSecret } from '../dist/auth/totp.js'
import {
  codeVersion,
  createBenchDatabase,
  machine,
  machineBusyMs,
  machineStealMs,
  median,
  ms,
  openPgMonitor,
  parseCount,
  optionsOrHelp,
  percentile,
  PG_ADMIN_URL,
  processCpuMs,
  ROOT,
  shownUrl,
  startServerProcess,
  table,
  UsageError,
} from './lib.mjs'

const PASSPHRASE = 'correct horse battery staple, login benchmark'
const PASSWORD = 'the shared password of the benchmark users 7'
const params = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
const STORE_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 }

/**
 * Every phase of `--phases all`, in the order they run; the half-peak ones run on the openssl
 * engine only. With half, `tenth` runs too (unless the curve does, whose first point it is).
 */
const PHASES = [
  'handshakes',
  'peak',
  'half',
  'half-closed',
  'half+kdf',
  'half+recovery',
  'half+registrations',
  'half+never-read',
]
/** Opt-in: open loop at 10%, 20% ... 100% of the peak, after the other phases (also --curve). */
const CURVE = 'curve'
const CURVE_OUT = join(ROOT, 'docs', 'perf')
const STORES = ['file', 'postgres']

const DEFAULTS = {
  users: '9000',
  connections: '16',
  threads: '2',
  duration: '8',
  engines: 'openssl,package',
  phases: 'all',
  store: 'file',
  workers: '',
  rounds: '1',
  quietBelow: '0.25',
  pgUrl: PG_ADMIN_URL,
  pgSettle: '11',
  cpuProf: '',
  kdfClient: 'idle',
  curve: false,
  curveDuration: '',
  curveOut: '',
  maxInFlight: '1024',
  grace: '10',
  opsListen: false,
  help: false,
}
const HELP = `usage: npm run bench -- login [options]
  --users 9000          accounts in the store (each can log in at most twice per 30 s: TOTP codes are single-use)
  --connections 16      concurrent logins in all, in the closed-loop phases (handshakes, peak, half-closed)
  --threads 2           load threads (worker threads in this process)
  --duration 8          seconds per phase
  --engines openssl,package   SRP engines to compare, in this order
  --phases all          phases to run: all (${PHASES.join(', ')}), or some of them, and curve
                        (the half ones and the curve need peak; the half ones run on the openssl engine only;
                        with half, tenth runs too unless the curve does)
  --curve               also the curve: open loop at 10%, 20% ... 100% of the peak, in the first round, on each engine
                        and store; a table, and each as JSON (login-curve-ENGINE-STORE[-wN].json) and SVG
  --curve-duration S    seconds per point of the curve (default: --duration)
  --curve-out docs/perf where the curve's JSON and SVG go
  --max-in-flight 1024  open loop: logins under way at once in all, at most; a due login past it waits its turn
                        (its latency still counts from its scheduled start)
  --grace 10            open loop: seconds after the schedule ends that a login may still take; one not answered
                        by then is a failure (and not in the percentiles)
  --store file          the store the server runs on: file, postgres, or file,postgres (both, in turn, in one run,
                        with their ratio of logins/s)
  --workers N           PostgreSQL only: the server runs with --workers N (its CPU is the sum over its processes;
                        no split by stage then). Without it, one process; the file store is always one
  --rounds 1            run the stores in turn this many times; each round's figures and their median are reported,
                        and the goals are judged on the median
  --quiet-below 0.25    also the median over the rounds in which other work on the machine used fewer cores than
                        this in both peak phases
  --pg-url URL          PostgreSQL as a superuser, where each run makes its own database and drops it
                        (default $SECURELOGIN_BENCH_PG, or postgres://postgres@127.0.0.1:5432/test)
  --pg-settle 11        seconds to wait after each PostgreSQL phase, untimed, for PostgreSQL's counters to arrive
  --kdf-client idle     the half+kdf phase's password-changing client runs at this CPU priority: idle
                        (SCHED_IDLE, with chrt: it stands in for the user's own machine), low (nice 19),
                        normal (as the server and the load: it shares the two cores with them)
  --cpu-prof DIR        run the server under node --cpu-prof, its profile into DIR (figures then include the profiler's cost)
  --ops-listen          the server runs with its operator listener and metrics (--ops-listen 127.0.0.1:0), and /metrics
                        is scraped once after each phase: run with and without it to see what the metrics cost a login

Latency: p50, p95, p99 of an open-loop phase run from each login's scheduled start; "service" from its real start
(a closed-loop phase's figures are service times). Goals (printed as "goal: ...: met|missed", judged on the median over
the rounds; a figure never makes the benchmark fail): at least 300 logins/s at peak (openssl); at least 15x the package
engine; open-loop p99 at half the peak under 20 ms; that within 3x of the open-loop p50 at a tenth of the peak;
server CPU per login at peak at most 1.3x its TLS + SRP + TOTP CPU (file store; needs handshakes); the server, not the
load, limits the peak (server cores at peak >= 0.9, a serving process's with --workers, and the peak's logins/s x the CPU
a login at half the peak within 10% of them); p99 within 1.2x of half's while passwords change, within 2x while a hostile client works.`

const log = (line) => process.stderr.write(`${line}\n`)

export async function main(args) {
  const options = optionsOrHelp(args, DEFAULTS, HELP)
  if (!options) return 0
  const users = parseCount(options.users)
  const connections = parseCount(options.connections)
  const threads = parseCount(options.threads)
  const durationMs = parseCount(options.duration) * 1000
  const engines = options.engines.split(',')
  const named = options.phases.split(',')
  const phases = named.flatMap((phase) => (phase === 'all' ? PHASES : [phase]))
  const curve = options.curve || phases.includes(CURVE)
  const curveDurationMs = options.curveDuration === '' ? durationMs : parseCount(options.curveDuration) * 1000
  const curveOut = options.curveOut === '' ? CURVE_OUT : options.curveOut
  const maxInFlight = parseCount(options.maxInFlight)
  const graceMs = Number(options.grace) * 1000
  const stores = options.store.split(',')
  const rounds = parseCount(options.rounds)
  const workerCount = options.workers === '' ? undefined : parseCount(options.workers)
  const settleMs = Number(options.pgSettle) * 1000
  const quietBelow = Number(options.quietBelow)
  const kdfClient = options.kdfClient
  if (!Object.hasOwn(PRIORITIES, kdfClient))
    throw new UsageError(`--kdf-client takes ${Object.keys(PRIORITIES).join(', ')}`)
  for (const engine of engines)
    if (!['openssl', 'package'].includes(engine)) throw new UsageError(`unknown engine ${engine}`)
  for (const phase of phases)
    if (!PHASES.includes(phase) && phase !== CURVE) throw new UsageError(`unknown phase ${phase} (--help lists them)`)
  if ((curve || phases.some((phase) => phase.startsWith('half'))) && !phases.includes('peak'))
    throw new UsageError('the half-peak phases and the curve need the peak phase: add peak to --phases')
  if (!Number.isFinite(graceMs) || graceMs < 0) throw new UsageError('--grace is a number of seconds')
  if (maxInFlight < threads) throw new UsageError('--max-in-flight must be at least --threads')
  for (const store of stores)
    if (!STORES.includes(store)) throw new UsageError(`--store takes ${STORES.join(', ')}, or both: file,postgres`)
  if (new Set(stores).size !== stores.length) throw new UsageError('--store names each kind once')
  if (workerCount !== undefined && !stores.includes('postgres'))
    throw new UsageError('--workers needs --store postgres: a file store is served by one process')
  if (!Number.isFinite(settleMs) || settleMs < 0) throw new UsageError('--pg-settle is a number of seconds')
  if (connections < threads) throw new UsageError('--connections must be at least --threads')

  const dir = await mkdtemp(join(tmpdir(), 'securelogin-bench-login-'))
  let server
  let workers
  let renewer
  let database
  let monitor
  const cleanUp = async () => {
    for (const pid of changerPids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await Promise.all([...(workers ?? []), ...(renewer ? [renewer] : [])].map((worker) => worker.terminate()))
    await server?.stop()
    await monitor?.close()
    await database?.drop().catch((error) => log(`could not drop the database ${database.name}: ${error.message}`))
    await rm(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => cleanUp().finally(() => process.exit(130)))

  const code = codeVersion()
  console.log('login load benchmark (figures, not a test: nothing here passes or fails on a time)')
  console.log(`machine: ${machine()}`)
  console.log(`code: ${code.describe}`)
  console.log(
    `load: ${threads} worker threads, ${connections} concurrent connections, ${durationMs / 1000} s per phase, ${users} users`,
  )
  console.log(`operator listener and metrics: ${options.opsListen ? 'on (--ops-listen 127.0.0.1:0)' : 'off'}`)
  const quiet = await machineBusyOver(2000)
  if (quiet !== undefined)
    console.log(`the machine before the run: ${quiet.toFixed(2)} of ${cpus().length} cores busy (2 s, /proc/stat)`)

  const results = []
  const starts = []
  /** The curves written: their files, or why there is no SVG. */
  const curves = []
  try {
    const passphraseFile = join(dir, 'passphrase')
    await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 })
    log(`making ${users} users ...`)
    const { records, accounts } = await makeUsers(users)
    const locations = {}
    if (stores.includes('file')) {
      log('writing them to a new store file ...')
      await writeFileStore(dir, records)
      locations.file = undefined // startServerProcess's default, DIR/data/bench.store
    }
    if (stores.includes('postgres')) {
      database = await createBenchDatabase(options.pgUrl, { trackFunctions: true })
      log(`writing them to a new store in the database ${database.name} (${shownUrl(options.pgUrl)}) ...`)
      await writePgStore(database.url, records)
      locations.postgres = database.url
      monitor = await openPgMonitor(options.pgUrl, database, { settleMs })
    }
    // A few users of their own for the password changes of the half+kdf phase.
    const changers = accounts.splice(0, 40).map((account) => ({ ...account, password: PASSWORD }))
    const renewers = accounts.splice(0, 200)
    for (let round = 1; round <= rounds; round++) {
      for (const store of stores) {
        const onPg = store === 'postgres'
        const processes = onPg ? workerCount : undefined
        const label = processes === undefined ? store : `${store}, ${processes} workers`
        for (const engine of engines) {
          const step = (what) => log(`${rounds > 1 ? `round ${round}, ` : ''}${label}, ${engine}: ${what} ...`)
          step('starting the server')
          const starting = performance.now()
          server = await startBenchServer(dir, passphraseFile, engine, options.cpuProf, {
            store: locations[store],
            workers: processes,
            opsListen: options.opsListen,
          })
          // Start-up reads what the store holds (every session, on this code), which grows with each phase.
          starts.push({ store: label, round, engine, ms: performance.now() - starting })
          const ca = await readFile(join(dir, 'certs', 'server.crt'))
          workers ??= await startLoad(ca, accounts, threads)
          // Before each PostgreSQL phase, the counters of what came before (the start, the last phase) arrive.
          if (onPg) {
            step(`waiting ${settleMs / 1000} s for PostgreSQL's counters`)
            await monitor.settle()
          }
          const run = async (phase, opts) => {
            // With --ops-listen, one scrape half-way through the phase, as Prometheus would make
            // one in the middle of the load: its cost is in the phase's figures.
            const scraping =
              server.scrape &&
              new Promise((resolve) => setTimeout(resolve, (opts.durationMs ?? durationMs) / 2)).then(server.scrape)
            const result = await runPhase(server, workers, {
              phase,
              engine,
              connections,
              durationMs,
              monitor: onPg ? monitor : undefined,
              maxInFlight,
              graceMs,
              ...opts,
            })
            Object.assign(result, { store: label, kind: store, round, tlsMs: handshakeCpu })
            if (scraping) {
              const scraped = await scraping
              log(`  /metrics mid-phase: ${scraped.bytes} bytes in ${ms(scraped.ms)}, logins ok ${scraped.loginsOk}`)
            }
            if (phase !== 'handshakes') results.push(result)
            return result
          }
          let handshakeCpu = NaN
          if (phases.includes('handshakes')) {
            step('handshakes')
            handshakeCpu = (await run('handshakes', { handshakeOnly: true })).serverCpuPerOpMs
          }
          let peak
          if (phases.includes('peak')) {
            step('peak')
            peak = await run('peak', {})
          }
          // The curve runs in the first round; without it, a tenth of the peak is the half phase's reference.
          const curveHere = curve && round === 1 && peak !== undefined
          const open = (phase, fraction, opts = {}) =>
            run(phase, { openLoop: true, ratePerSecond: rateAt(peak, fraction), ...opts })
          if (engine === 'openssl' && peak) {
            const half = rateAt(peak, 0.5)
            if (phases.includes('half')) {
              step(`half the peak, open loop (${half}/s)`)
              await open('half', 0.5)
            }
            if (phases.includes('half-closed')) {
              step(`half the peak, closed loop (${half}/s)`)
              await run('half-closed', { ratePerSecond: half })
            }
            if (phases.includes('half') && !curveHere) {
              step(`a tenth of the peak, open loop (${rateAt(peak, 0.1)}/s)`)
              await open('tenth', 0.1)
            }
            const backgrounds = {
              'half+kdf': ['while passwords change', () => changePasswords(server.port, ca, changers, kdfClient)],
              'half+recovery': [
                'while recovery codes are renewed',
                () => renewRecoveryCodes(renewer, server.port, durationMs),
              ],
              ...Object.fromEntries(
                ['registrations', 'never-read'].map((mode) => [
                  `half+${mode}`,
                  [`while a hostile client sends ${mode}`, () => hostileClient(mode, server.port)],
                ]),
              ),
            }
            for (const [phase, [what, background]] of Object.entries(backgrounds)) {
              if (!phases.includes(phase)) continue
              step(`half the peak ${what}`)
              if (phase === 'half+recovery') renewer ??= (await startLoad(ca, renewers, 1))[0]
              await open(phase, 0.5, { background })
            }
          }
          if (curveHere) {
            const points = []
            for (let tenths = 1; tenths <= 10; tenths++) {
              step(`the curve, ${tenths * 10}% of the peak (${rateAt(peak, tenths / 10)}/s)`)
              const point = await open(`curve ${tenths * 10}%`, tenths / 10, { durationMs: curveDurationMs })
              points.push(Object.assign(point, { fraction: tenths / 10 }))
            }
            curves.push(
              await writeCurve(curveOut, { code, engine, kind: store, workers: processes, peak: peak.rate, points }),
            )
          }
          await server.stop()
          server = undefined
        }
      }
    }
  } finally {
    await cleanUp()
  }
  report(results, { threads, connections, kdfClient, stores, rounds, workerCount, quietBelow })
  for (const { json, svg, note } of curves)
    console.log(`curve: ${json}${svg ? `, ${svg}` : ''}${note ? ` (${note})` : ''}`)
  console.log(
    `server start, from spawn to listening: ${starts.map((start) => `${start.store}${rounds > 1 ? ` (round ${start.round})` : ''} ${ms(start.ms)}`).join(', ')}`,
  )
  if (codeVersion().dist !== code.dist)
    console.log('\nWARNING: dist/ changed while the benchmark ran: the figures may mix two versions. Run it again.')
  return 0
}

/** `fraction` of the peak's logins/s, to a tenth of a login a second: an open-loop phase's rate. */
const rateAt = (peak, fraction) => Math.round(peak.rate * fraction * 10) / 10

/**
 * The curve of one engine and store as JSON, in DIR/login-curve-ENGINE-STORE[-wN].json (N: the
 * server's workers), and its SVG beside it (bench/chart.mjs, when it is there).
 */
async function writeCurve(dir, { code, engine, kind, workers, peak, points }) {
  const round = (value, digits) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : null)
  const latencies = (figures) =>
    Object.fromEntries(['p50', 'p95', 'p99', 'max'].map((key) => [key, round(figures[key], 2)]))
  const curve = {
    benchmark: 'login-curve',
    commit: code.describe,
    date: new Date().toISOString(),
    machine: machine(),
    engine,
    store: kind,
    workers: workers ?? 1,
    peakRate: round(peak, 1),
    points: points.map((point) => ({
      fraction: point.fraction,
      offered: point.offered,
      achieved: round(point.rate, 1),
      logins: point.ok,
      failed: Object.values(point.failures).reduce((sum, n) => sum + n, 0),
      openLoop: latencies(point),
      service: latencies(point.service),
      serverCores: round(point.serverCores, 3),
      loadCores: round(point.loadCores, 3),
      serverCpuPerLogin: round(point.serverCpuPerOpMs, 3),
    })),
  }
  await mkdir(dir, { recursive: true })
  const json = join(dir, `login-curve-${engine}-${kind}${workers === undefined ? '' : `-w${workers}`}.json`)
  await writeFile(json, `${JSON.stringify(curve, null, 2)}\n`)
  try {
    // Another module, which may not be there yet: the JSON stands without it.
    const { writeCurveSvg } = await import('./chart.mjs')
    return { json, svg: await writeCurveSvg(json) }
  } catch (error) {
    return { json, note: `no SVG: ${error.message.split('\n')[0]}` }
  }
}

/** Cores' worth of CPU the whole machine used over the next `wallMs` (undefined without /proc/stat). */
async function machineBusyOver(wallMs) {
  const before = machineBusyMs()
  await new Promise((resolve) => setTimeout(resolve, wallMs))
  return before === undefined ? undefined : (machineBusyMs() - before) / wallMs
}

/**
 * Users with one shared password and salt, each its own x, v and TOTP secret: the records the
 * stores get, and what the load threads need to log in as each.
 */
async function makeUsers(count) {
  const salt = randomBytes(32).toString('hex')
  const stretched = await stretchPassword(PASSWORD, salt, DEFAULT_PASSWORD_KDF)
  const records = []
  const accounts = []
  const createdAt = new Date().toISOString()
  for (let i = 0; i < count; i++) {
    const name = `user${String(i).padStart(6, '0')}`
    const x = srp.x(params, Buffer.from(salt, 'hex'), name, stretched)
    const v = srp.v(params, x)
    const totp = encodeTotpSecret(randomBytes(20))
    records.push({
      username: name,
      salt,
      verifier: v.toString('hex'),
      kdf: DEFAULT_PASSWORD_KDF,
      totpSecret: totp,
      role: 'regular_user',
      createdAt,
    })
    accounts.push({ name, x: x.toString('hex'), v: v.toString('hex'), totp })
  }
  return { records, accounts }
}

/** The file store, written directly, 5,000 users a commitEach. */
async function writeFileStore(dir, records) {
  await mkdir(join(dir, 'data'), { recursive: true, mode: 0o700 })
  const store = await createStore(join(dir, 'data', 'bench.store'), PASSPHRASE, { kdf: STORE_KDF })
  try {
    for (let start = 0; start < records.length; start += 5000)
      await store.commitEach(records.slice(start, start + 5000).map(userChange))
  } finally {
    await store.close()
  }
}

/** The same users in a new store on PostgreSQL (commitEach sends 500 a statement). */
async function writePgStore(url, records) {
  const store = await createPgStore(url, PASSPHRASE, { kdf: STORE_KDF })
  try {
    for (let start = 0; start < records.length; start += 5000)
      await store.commitEach(records.slice(start, start + 5000).map(userChange))
  } finally {
    await store.close()
  }
}

async function startBenchServer(dir, passphraseFile, engine, cpuProfDir, { store, workers, opsListen }) {
  const waiting = []
  let opsPort
  const opsListening = new Promise((resolve) => (opsPort = resolve))
  /** worker id -> pid, from the worker_listening lines (a restarted worker logs a new one). */
  const workerPids = new Map()
  let allListening
  const listening = new Promise((resolve) => (allListening = resolve))
  const server = await startServerProcess(
    dir,
    passphraseFile,
    // The registration budget at its default: the half+registrations phase floods past it.
    // --stage-times is one process's; with workers there is no split by stage.
    [
      '--srp-engine',
      engine,
      ...(workers === undefined ? ['--stage-times'] : ['--workers', String(workers)]),
      ...(opsListen ? ['--ops-listen', '127.0.0.1:0'] : []),
      '--lockout-after',
      '100',
      '--registrations-per-hour',
      '20',
    ],
    {
      store,
      nodeArgs: cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [],
      onLine(line) {
        if (line.includes('"ops_listening"')) opsPort(JSON.parse(line).port)
        if (line.includes('"worker_listening"')) {
          const { worker, pid } = JSON.parse(line)
          workerPids.set(worker, pid)
          if (workerPids.size === workers) allListening()
        }
        if (!line.includes('"stage_times"')) return
        waiting.shift()?.(JSON.parse(line))
      },
    },
  )
  if (workers !== undefined) {
    // The first process writes its workers' lines just after its own "listening".
    const timer = setTimeout(() => allListening(), 10_000)
    await listening
    clearTimeout(timer)
    if (workerPids.size !== workers) {
      await server.stop()
      throw new Error(`the server named ${workerPids.size} of its ${workers} workers' pids within 10 s`)
    }
  }
  if (opsListen) {
    const port = await Promise.race([opsListening, new Promise((resolve) => setTimeout(resolve, 10_000).unref())])
    if (port === undefined) {
      await server.stop()
      throw new Error('the server logged no ops_listening line within 10 s')
    }
    /** One scrape of /metrics as Prometheus makes it: its size, its time, and the logins counted so far. */
    server.scrape = async () => {
      const started = performance.now()
      const response = await fetch(`http://127.0.0.1:${port}/metrics`)
      const text = await response.text()
      if (!response.ok) throw new Error(`/metrics answered ${response.status}`)
      const line = text.split('\n').find((l) => l.startsWith('securelogin_logins_total{outcome="ok"} '))
      return { bytes: text.length, ms: performance.now() - started, loginsOk: Number(line?.split(' ')[1]) }
    }
  }
  const firstCpuMs = server.cpuMs
  /** The CPU of the first process and of every worker it has named. */
  server.cpuMs = () => [...workerPids.values()].reduce((sum, pid) => sum + processCpuMs(pid), firstCpuMs())
  server.processes = () => 1 + workerPids.size
  /** The server's stage totals so far: SIGUSR2, then its stage_times log line; undefined with workers. */
  server.stages = () =>
    workers !== undefined
      ? Promise.resolve(undefined)
      : new Promise((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error('the server logged no stage_times within 10 s of SIGUSR2')),
            10_000,
          )
          waiting.push((totals) => {
            clearTimeout(timer)
            resolve(totals)
          })
          process.kill(server.pid, 'SIGUSR2')
        })
  return server
}

/** The load threads, started once: each gets its own users, so no two spend the same user's codes. */
async function startLoad(ca, accounts, threads) {
  const perThread = Math.floor(accounts.length / threads)
  return Promise.all(
    Array.from(
      { length: threads },
      (_, t) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL('./login-worker.mjs', import.meta.url), {
            workerData: { ca, users: accounts.slice(t * perThread, (t + 1) * perThread), thread: t },
          })
          worker.once('message', () => resolve(worker))
          worker.once('error', reject)
        }),
    ),
  )
}

/** Sends a worker one message and resolves with its answer. */
function ask(worker, message) {
  return new Promise((resolve, reject) => {
    const onError = (error) => {
      worker.off('message', onMessage)
      reject(error)
    }
    const onMessage = (answer) => {
      worker.off('error', onError)
      resolve(answer)
    }
    worker.once('message', onMessage)
    worker.once('error', onError)
    worker.postMessage(message)
  })
}

/** p50, p95, p99 and max of latencies. */
function percentiles(latencies) {
  return {
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
  }
}

/** Client ephemerals each load thread makes before a phase: its share of the logins expected, and a quarter more. */
const PEAK_GUESS_PER_SECOND = 500
function ephemeralsFor({ ratePerSecond, durationMs, threads, handshakeOnly }) {
  if (handshakeOnly) return 0
  return Math.ceil((1.25 * (ratePerSecond || PEAK_GUESS_PER_SECOND) * durationMs) / 1000 / threads)
}

/** Splits `total` over `threads`: thread t's share (the first ones take the remainder). */
const shareOf = (total, threads, t) => Math.floor(total / threads) + (t < total % threads ? 1 : 0)

/**
 * One phase: the workers' latencies (closed loop, or with `openLoop` on a fixed schedule at
 * `ratePerSecond`, each thread its share, their schedules interleaved), the server's CPU and stage
 * times over it, the load's CPU.
 */
async function runPhase(
  server,
  workers,
  {
    phase,
    engine,
    connections,
    durationMs,
    ratePerSecond = 0,
    openLoop = false,
    maxInFlight,
    graceMs,
    handshakeOnly = false,
    background,
    monitor,
  },
) {
  const threads = workers.length
  const prepare = ephemeralsFor({ ratePerSecond, durationMs, threads, handshakeOnly })
  await Promise.all(workers.map((worker) => ask(worker, { prepare })))
  const stagesBefore = await server.stages()
  const pgBefore = await monitor?.read()
  const serverCpuBefore = server.cpuMs()
  const loadCpuBefore = process.cpuUsage()
  const busyBefore = machineBusyMs()
  const stealBefore = machineStealMs()
  const started = performance.now()
  const backgroundWork = background?.()
  const outcomes = await Promise.all(
    workers.map((worker, t) =>
      ask(worker, {
        port: server.port,
        connections: shareOf(connections, threads, t),
        durationMs,
        ratePerSecond: ratePerSecond / threads,
        handshakeOnly,
        ...(openLoop && { openLoop, phaseOffset: t / threads, maxInFlight: shareOf(maxInFlight, threads, t), graceMs }),
      }),
    ),
  )
  const wallMs = performance.now() - started
  backgroundWork?.stop()
  const backgroundResult = await backgroundWork?.done
  const serverCpuMs = server.cpuMs() - serverCpuBefore
  const load = process.cpuUsage(loadCpuBefore)
  const busyMs = machineBusyMs() - busyBefore
  const stealMs = machineStealMs() - stealBefore
  // PostgreSQL's CPU is read now, with the rest; its counters once they have arrived.
  const pgCpuAfter = await monitor?.cpu()
  const stagesAfter = await server.stages()
  let pg
  if (monitor) {
    await monitor.settle()
    pg = monitor.delta(pgBefore, await monitor.read(), pgCpuAfter)
  }
  const latencies = outcomes.flatMap((o) => o.latencies)
  const service = outcomes.flatMap((o) => o.service)
  const failures = {}
  for (const o of outcomes) for (const [why, n] of Object.entries(o.failures)) failures[why] = (failures[why] ?? 0) + n
  const ok = latencies.length
  const per = (value) => value / Math.max(1, ok)
  const stage = (name) => (stagesAfter ? per(stagesAfter[`${name}Ms`] - stagesBefore[`${name}Ms`]) : NaN)
  const loadCpuMs = (load.user + load.system) / 1000
  return {
    engine,
    phase,
    ok,
    failures,
    background: backgroundResult,
    madeInline: outcomes.reduce((sum, o) => sum + o.madeInline, 0),
    openLoop,
    // Offered: the schedule's rate (open loop); achieved: the logins answered over the phase's wall
    // time, which runs on past the schedule until the last login in flight ends.
    offered: openLoop ? ratePerSecond : NaN,
    rate: ok / (wallMs / 1000),
    // From each login's scheduled start in an open loop, from its real start in a closed one.
    ...percentiles(latencies),
    // From each login's real start (service time).
    service: percentiles(service),
    processes: server.processes(),
    serverCpuPerOpMs: per(serverCpuMs),
    srpMs: stage('srp'),
    totpMs: stage('totp'),
    storeWallMs: stage('store'),
    // The server's event loop delay over the phase (the totals before it reset the histogram).
    loopP99: stagesAfter?.loopDelayP99Ms ?? NaN,
    loopMax: stagesAfter?.loopDelayMaxMs ?? NaN,
    loadCpuPerOpMs: per(loadCpuMs),
    loadCores: loadCpuMs / wallMs,
    // Work on the machine that is none of ours: the server, the load, PostgreSQL (other databases' included).
    // (/proc/stat and /proc/PID/stat count in 10 ms ticks, read a moment apart: a quiet machine reads about 0.)
    otherCores: Math.max(0, busyMs - serverCpuMs - loadCpuMs - (pg?.postgresCpuMs ?? 0)) / wallMs,
    serverCores: serverCpuMs / wallMs,
    stealCores: stealMs / wallMs,
    pg: pg && {
      ...pg,
      cores: pg.postgresCpuMs / wallMs,
      cpuPerOpMs: per(pg.postgresCpuMs),
      backendCpuPerOpMs: per(pg.backendCpuMs),
      statementsPerOp: per(pg.statements),
      commitsPerOp: per(pg.commits),
      rowsPerOp: per(pg.inserted + pg.updated + pg.deleted),
      walPerOp: per(pg.wal),
      growthPerOp: per(pg.size),
    },
  }
}

/** How the password changer is started at each --kdf-client priority: the command before `node`. */
const PRIORITIES = { idle: ['chrt', '--idle', '0'], low: ['nice', '-n', '19'], normal: [] }

/**
 * Back-to-back password changes through the real client library until stopped (scrypt twice each,
 * current and new), from bench/password-changer.mjs in a process of its own at `priority`.
 */
function changePasswords(port, ca, changers, priority) {
  const [command, ...args] = [
    ...PRIORITIES[priority],
    process.execPath,
    fileURLToPath(new URL('./password-changer.mjs', import.meta.url)),
  ]
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  changerPids.add(child.pid)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let cpuMs = NaN
  const done = new Promise((resolve, reject) => {
    child.once('message', ({ passwords, ...outcome }) => {
      // The next phase that changes passwords logs in with the new ones.
      for (const user of changers) user.password = passwords[user.name] ?? user.password
      resolve({ ...outcome, cpuMs })
    })
    child.once('error', (error) =>
      reject(
        new Error(
          `could not start the password changer with ${command}: ${error.message} (try --kdf-client low or normal)`,
        ),
      ),
    )
    exited.then(() => reject(new Error('the password changer exited without an answer')))
  }).finally(async () => {
    await exited
    changerPids.delete(child.pid)
  })
  child.send({ port, ca: ca.toString('base64'), users: changers })
  return {
    stop: () => {
      cpuMs = processCpuMs(child.pid)
      child.send('stop')
    },
    done,
  }
}
/**
 * The attacker of a hostile phase (bench/hostile-client.mjs), a process of its own at normal
 * priority: `registrations` floods whole registrations from 127.0.0.2, `never-read` pipelines
 * 30 MB of jwks_get from 127.0.0.3 and never reads, again and again.
 */
function hostileClient(mode, port) {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./hostile-client.mjs', import.meta.url))], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  changerPids.add(child.pid)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const done = new Promise((resolve, reject) => {
    child.once('message', (outcome) => resolve({ hostile: mode, ...outcome }))
    child.once('error', reject)
    exited.then(() => reject(new Error(`the hostile client (${mode}) exited without an answer`)))
  }).finally(async () => {
    await exited
    changerPids.delete(child.pid)
  })
  child.send({ mode, port })
  return { stop: () => child.send('stop'), done }
}

/** The password changers still running: stopped by their pid if the benchmark fails. */
const changerPids = new Set()

/**
 * One connection of logins, each followed by a recovery-code renewal (the server hashes ten codes
 * with scrypt, 16 MiB each, on its thread pool), back to back for the phase.
 */
function renewRecoveryCodes(worker, port, durationMs) {
  const done = ask(worker, {
    port,
    connections: 1,
    durationMs,
    ratePerSecond: 0,
    handshakeOnly: false,
    renew: true,
  }).then((outcome) => ({ renewals: outcome.latencies.length, failures: outcome.failures }))
  return { stop: () => {}, done }
}

function report(all, { threads, connections, kdfClient, stores, rounds, workerCount, quietBelow }) {
  // The curve's points have a table of their own.
  const results = all.filter((r) => r.fraction === undefined)
  const several = stores.length > 1 || rounds > 1
  console.log('')
  console.log(
    table(
      [
        ...(several ? ['store', ...(rounds > 1 ? ['round'] : [])] : []),
        'engine',
        'phase',
        'logins',
        'logins/s',
        'offered/s',
        'p50',
        'p95',
        'p99',
        'service p99',
        'server CPU/login',
        'TLS',
        'SRP',
        'TOTP',
        'store and rest',
        'store commit (wall)',
        'load CPU/login',
        'server cores',
        'load cores',
        'other cores',
        'stolen cores',
        'loop delay p99 / max',
        'failed',
      ],
      results.map((r) => [
        ...(several ? [r.store, ...(rounds > 1 ? [r.round] : [])] : []),
        r.engine,
        r.phase +
          (r.background?.changes !== undefined
            ? ` (${r.background.changes} password changes${r.background.error ? `, then: ${r.background.error}` : ''})`
            : r.background?.renewals !== undefined
              ? ` (${r.background.renewals} renewals)`
              : r.background?.hostile !== undefined
                ? ` (${Object.entries(r.background.counts)
                    .map(([what, n]) => `${n} ${what}`)
                    .join(', ')}${r.background.error ? `, then: ${r.background.error}` : ''})`
                : ''),
        r.ok,
        perSecond(r.rate),
        perSecond(r.offered),
        ms(r.p50),
        ms(r.p95),
        ms(r.p99),
        ms(r.service.p99),
        ms(r.serverCpuPerOpMs),
        ms(r.tlsMs),
        ms(r.srpMs),
        ms(r.totpMs),
        Number.isFinite(r.srpMs) && Number.isFinite(r.tlsMs)
          ? ms(Math.max(0, r.serverCpuPerOpMs - r.tlsMs - r.srpMs - r.totpMs))
          : '-',
        ms(r.storeWallMs),
        ms(r.loadCpuPerOpMs),
        r.serverCores.toFixed(2),
        r.loadCores.toFixed(2),
        r.otherCores.toFixed(2),
        r.stealCores.toFixed(2),
        `${ms(r.loopP99)} / ${ms(r.loopMax)}`,
        Object.entries(r.failures)
          .map(([why, n]) => `${n} ${why}`)
          .join('; ') || '0',
      ]),
    ),
  )
  for (const r of results)
    if (r.madeInline > 0)
      console.log(
        `note: ${r.store} ${r.engine} ${r.phase}: ${r.madeInline} client ephemerals were made inside the phase (more logins than prepared for): its load CPU includes them`,
      )
  console.log('')
  console.log(
    'p50, p95, p99: in the open-loop phases (offered/s: their schedule; all but handshakes, peak and half-closed) from each',
  )
  console.log(
    "login's scheduled start; in the closed-loop ones from its real start. service p99: from its real start, in all.",
  )
  console.log(`load: ${threads} threads, ${connections} connections; CPU on this machine: ${cpus().length} cores`)
  console.log(
    'other cores: CPU the machine spent on anything but the server, the load and PostgreSQL (/proc/stat), in cores',
  )
  if (workerCount !== undefined)
    console.log(
      `with --workers ${workerCount}: server CPU is the sum over its ${workerCount + 1} processes; no split by stage (--stage-times is one process's)`,
    )

  const onPg = results.filter((r) => r.pg)
  if (onPg.length > 0) {
    console.log('')
    console.log('PostgreSQL, per login (statements and commits: its counters for the run database; CPU: /proc):')
    console.log('')
    console.log(
      table(
        [
          ...(rounds > 1 ? ['round'] : []),
          'store',
          'engine',
          'phase',
          'logins/s',
          'server CPU/login',
          'postgres CPU/login (all / its backends)',
          'postgres cores',
          'statements/login',
          'commits/login',
          'rolled back',
          'connections opened',
          'rows written/login',
          'WAL/login',
          'database growth/login',
          "other databases' statements",
        ],
        onPg.map((r) => [
          ...(rounds > 1 ? [r.round] : []),
          r.store,
          r.engine,
          r.phase,
          r.rate.toFixed(0),
          ms(r.serverCpuPerOpMs),
          `${ms(r.pg.cpuPerOpMs)} / ${ms(r.pg.backendCpuPerOpMs)}`,
          r.pg.cores.toFixed(2),
          r.pg.statementsPerOp.toFixed(2),
          r.pg.commitsPerOp.toFixed(2),
          r.pg.rollbacks,
          r.pg.sessions,
          `${r.pg.rowsPerOp.toFixed(2)} (${r.pg.inserted} ins, ${r.pg.updated} upd, ${r.pg.deleted} del)`,
          bytes(r.pg.walPerOp),
          bytes(r.pg.growthPerOp),
          r.pg.otherStatements,
        ]),
      ),
    )
    console.log('')
    console.log(
      "statements: transactions of the run database less the monitor's own (each store statement runs alone: one statement, one transaction);",
    )
    console.log(
      "commits: calls of securelogin_commit (pg_stat_user_functions, track_functions = 'pl'); WAL: pg_current_wal_lsn over the",
    )
    console.log(
      "phase, the whole server's (other databases' writes too: see their statements); postgres CPU, all: every process named",
    )
    console.log(
      "postgres on this machine (with the postmaster's reaped children: backends that ended in the phase); its backends:",
    )
    console.log(
      'those connected to the run database at the end of the phase. Rolled back: statements that failed (a compare-and-set',
    )
    console.log(
      "that did not hold, as the audit head when two processes append); connections opened: pg_stat_database's sessions.",
    )
  }

  const find = (phase, engine, store, round) =>
    all.find((r) => r.phase === phase && r.engine === engine && r.kind === store && r.round === round)
  const curves = new Map()
  for (const r of all.filter((r) => r.fraction !== undefined)) {
    const key = `${r.engine}, ${r.store}`
    curves.set(key, [...(curves.get(key) ?? []), r])
  }
  for (const [key, points] of curves) {
    const { rate } = find('peak', points[0].engine, points[0].kind, points[0].round)
    console.log('')
    console.log(`the curve, ${key}: open loop at each fraction of the peak (${perSecond(rate)}/s); p50 to max as above`)
    console.log('')
    console.log(
      table(
        [
          'of peak',
          'offered/s',
          'achieved/s',
          'logins',
          'failed',
          'p50',
          'p95',
          'p99',
          'max',
          'service p50',
          'service p95',
          'service p99',
          'service max',
          'server cores',
          'load cores',
          'server CPU/login',
        ],
        points.map((r) => [
          `${Math.round(r.fraction * 100)}%`,
          perSecond(r.offered),
          perSecond(r.rate),
          r.ok,
          Object.values(r.failures).reduce((sum, n) => sum + n, 0),
          ...['p50', 'p95', 'p99', 'max'].map((key) => ms(r[key])),
          ...['p50', 'p95', 'p99', 'max'].map((key) => ms(r.service[key])),
          r.serverCores.toFixed(2),
          r.loadCores.toFixed(2),
          ms(r.serverCpuPerOpMs),
        ]),
      ),
    )
  }
  const peak = (engine, store, round) => find('peak', engine, store, round)
  const roundList = Array.from({ length: rounds }, (_, i) => i + 1)
  const goal = (text, met) => console.log(`goal: ${text}: ${met ? 'met' : 'missed'}`)
  /**
   * A goal judged on the median over the rounds of the figures `measure(round)` gives ({ figures,
   * text }: the numbers `test` judges, and a line with them and what they come from; undefined
   * where the round lacks its phases). With several rounds each round's line is printed first,
   * and the goal's own shows the medians through `show`.
   */
  const overRounds = (label, text, { measure, show, test }) => {
    const measured = roundList.map((round) => ({ round, ...measure(round) })).filter((m) => m.figures)
    if (measured.length === 0) return
    if (rounds > 1) for (const m of measured) console.log(`${label}round ${m.round}: ${text}: ${m.text}`)
    const figures = measured[0].figures.map((_, i) => median(measured.map((m) => m.figures[i])))
    goal(
      `${label}${text} (${rounds > 1 ? `median of ${measured.length} rounds: ${show(...figures)}` : measured[0].text})`,
      test(...figures),
    )
  }
  /** Peaks side by side, medians over the rounds: logins/s, server CPU a login, load CPU a login. */
  const beside = (some, others) => {
    const of = (peaks, key) => median(peaks.map((r) => r[key]))
    const [rate, otherRate] = [of(some, 'rate'), of(others, 'rate')]
    return (
      `${rate.toFixed(0)} / ${otherRate.toFixed(0)} logins/s = ${(rate / otherRate).toFixed(2)}; ` +
      `server CPU a login ${ms(of(some, 'serverCpuPerOpMs'))} / ${ms(of(others, 'serverCpuPerOpMs'))} = ${(of(some, 'serverCpuPerOpMs') / of(others, 'serverCpuPerOpMs')).toFixed(2)}x; ` +
      `load CPU a login ${ms(of(some, 'loadCpuPerOpMs'))} / ${ms(of(others, 'loadCpuPerOpMs'))}`
    )
  }
  const times = (value) => `${value.toFixed(2)}x`
  console.log('')
  if (stores.includes('file') && stores.includes('postgres')) {
    for (const engine of ['openssl', 'package']) {
      const peaks = (store) => results.filter((r) => r.engine === engine && r.phase === 'peak' && r.kind === store)
      const ratios = []
      const quietRatios = []
      for (let round = 1; round <= rounds; round++) {
        const file = peak(engine, 'file', round)
        const pgPeak = peak(engine, 'postgres', round)
        if (!file || !pgPeak) continue
        const ratio = pgPeak.rate / file.rate
        ratios.push(ratio)
        if (Math.max(file.otherCores, pgPeak.otherCores) < quietBelow) quietRatios.push(ratio)
        console.log(
          `${engine}${rounds > 1 ? `, round ${round}` : ''}: ${pgPeak.store} / file at peak: ${beside([pgPeak], [file])}; ` +
            `postgres ${ms(pgPeak.pg.cpuPerOpMs)} a login; other cores ${file.otherCores.toFixed(2)} (file) and ${pgPeak.otherCores.toFixed(2)} (postgres)`,
        )
      }
      if (ratios.length === 0) continue
      const ratio = median(ratios)
      let text = `${rounds > 1 ? `median of ${ratios.length} rounds` : 'one round'} ${ratio.toFixed(2)}`
      // Other work on a shared machine takes cores from one store's phase and not the other's.
      if (rounds > 1)
        text +=
          quietRatios.length === 0
            ? `; no round had under ${quietBelow} other cores in both peaks`
            : `; of the ${quietRatios.length} rounds with under ${quietBelow} other cores in both peaks, median ${median(quietRatios).toFixed(2)}`
      if (workerCount === undefined)
        goal(`one process on PostgreSQL at least 70% of the file store's logins/s, ${engine} (${text})`, ratio >= 0.7)
      else if (rounds > 1)
        // One round's figures are on its line above.
        console.log(
          `${engine}: PostgreSQL with ${workerCount} workers beside one process (the file store) at peak, medians: ` +
            `${beside(peaks('postgres'), peaks('file'))} (ratio ${text})`,
        )
      if (rounds > 1) {
        // Other work only takes logins away: each store's best round, and its quiet peaks from any round.
        const best = (store) => Math.max(...peaks(store).map((r) => r.rate))
        const quiet = (store) => peaks(store).filter((r) => r.otherCores < quietBelow)
        const [quietFile, quietPg] = [quiet('file'), quiet('postgres')]
        console.log(
          `${engine}: each store's best round: ${best('postgres').toFixed(0)} / ${best('file').toFixed(0)} logins/s = ${(best('postgres') / best('file')).toFixed(2)}; ` +
            (quietFile.length > 0 && quietPg.length > 0
              ? `peaks with under ${quietBelow} other cores, any round: ${median(quietPg.map((r) => r.rate)).toFixed(0)} (median of ${quietPg.length}) / ${median(quietFile.map((r) => r.rate)).toFixed(0)} (of ${quietFile.length}) = ${(median(quietPg.map((r) => r.rate)) / median(quietFile.map((r) => r.rate))).toFixed(2)}, server CPU a login ${(median(quietPg.map((r) => r.serverCpuPerOpMs)) / median(quietFile.map((r) => r.serverCpuPerOpMs))).toFixed(2)}x`
              : `no quiet peak (under ${quietBelow} other cores) on ${quietFile.length === 0 ? 'the file store' : 'PostgreSQL'}`),
        )
      }
    }
  }
  for (const store of stores) {
    // A store's goals are judged on the median of its rounds. `label` ends in ': ' when it names anything.
    const label = stores.length > 1 ? `${store}: ` : ''
    const withWorkers = store === 'postgres' && workerCount !== undefined
    const at = (phase, round) => find(phase, 'openssl', store, round)
    for (const round of roundList) {
      const [fast, slow] = [peak('openssl', store, round), peak('package', store, round)]
      if (fast && slow)
        console.log(
          `${label}${rounds > 1 ? `round ${round}: ` : ''}openssl / package at peak: ${(fast.rate / slow.rate).toFixed(1)}x the logins per second, ${(slow.serverCpuPerOpMs / fast.serverCpuPerOpMs).toFixed(1)}x less server CPU per login`,
        )
    }
    // Only the server's own processes count: with workers, the first process hands out nothing.
    const serving = withWorkers ? workerCount : 1
    overRounds(label, 'the server, not the load, limits the peak', {
      measure(round) {
        const fast = at('peak', round)
        if (!fast) return {}
        // The peak's logins times the CPU a login costs when nothing queues (the half phase's):
        // the cores the server needs for that rate, against the cores it used. At the peak's own
        // CPU a login the two would agree by construction; a server that spends its core on
        // something else at peak (contention, the load's interrupts) shows here.
        const half = at('half', round)
        const perLogin = half?.serverCpuPerOpMs ?? fast.serverCpuPerOpMs
        const expected = (fast.rate * perLogin) / 1000
        const off = Math.abs(expected - fast.serverCores) / fast.serverCores
        return {
          figures: [fast.serverCores / serving, off],
          text:
            `openssl peak ${fast.rate.toFixed(0)}/s: server ${fast.serverCores.toFixed(2)} cores` +
            (withWorkers ? `, ${(fast.serverCores / serving).toFixed(2)} a serving process (${serving} workers)` : '') +
            `; ${fast.rate.toFixed(0)}/s x ${ms(perLogin)} a login (${half ? 'at half the peak' : 'at peak: no half phase, so equal by construction'}) = ${expected.toFixed(2)} cores, ${(100 * off).toFixed(1)}% off; ` +
            `load ${fast.loadCores.toFixed(2)} cores, ${ms(fast.loadCpuPerOpMs)} a login`,
        }
      },
      show: (cores, off) =>
        `server ${cores.toFixed(2)} cores${withWorkers ? ' a serving process' : ''}, ${(100 * off).toFixed(1)}% off`,
      test: (cores, off) => cores >= 0.9 && off <= 0.1,
    })
    if (withWorkers) continue
    if (store === 'file')
      overRounds(label, 'server CPU per full login at most 1.3x its TLS + SRP + TOTP CPU (file store, at peak)', {
        measure(round) {
          const fast = at('peak', round)
          if (!fast || !Number.isFinite(fast.tlsMs + fast.srpMs + fast.totpMs)) return {}
          const { serverCpuPerOpMs: cpu, tlsMs: tls, srpMs: srp, totpMs: totp } = fast
          return {
            figures: [cpu / (tls + srp + totp)],
            text: `openssl: ${ms(cpu)} / (TLS ${ms(tls)} + SRP ${ms(srp)} + TOTP ${ms(totp)}) = ${times(cpu / (tls + srp + totp))}; rest ${ms(cpu - tls - srp - totp)}`,
          }
        },
        show: times,
        test: (value) => value <= 1.3,
      })
    overRounds(label, 'at least 300 full logins/s', {
      measure: (round) =>
        at('peak', round) && {
          figures: [at('peak', round).rate],
          text: `openssl peak ${at('peak', round).rate.toFixed(0)}/s`,
        },
      show: (rate) => `${rate.toFixed(0)}/s`,
      test: (rate) => rate >= 300,
    })
    overRounds(label, 'at least 15x the package engine', {
      measure(round) {
        const [fast, slow] = [peak('openssl', store, round), peak('package', store, round)]
        return fast && slow ? { figures: [fast.rate / slow.rate], text: `${(fast.rate / slow.rate).toFixed(1)}x` } : {}
      },
      show: (value) => `${value.toFixed(1)}x`,
      test: (value) => value >= 15,
    })
    /** A phase beside the half-peak phase of the same round: `measure(half, other)`. */
    const againstHalf = (phase, measure) => (round) => {
      const [half, other] = [at('half', round), at(phase, round)]
      return half && other ? measure(half, other) : {}
    }
    overRounds(label, 'p99 at half the peak rate under 20 ms, open loop', {
      measure(round) {
        const half = at('half', round)
        if (!half) return {}
        const closed = at('half-closed', round)
        return {
          figures: [half.p99],
          text:
            `${ms(half.p99)} at ${half.offered}/s; from each login's real start ${ms(half.service.p99)}` +
            (closed ? `; a closed loop at that rate measured ${ms(closed.p99)}` : ''),
        }
      },
      show: ms,
      test: (p99) => p99 < 20,
    })
    overRounds(label, 'open-loop p99 at half the peak within 3x of the open-loop p50 at 10% of peak', {
      measure(round) {
        const half = at('half', round)
        const tenth = at('curve 10%', round) ?? at('tenth', round)
        if (!half || !tenth) return {}
        return {
          figures: [half.p99 / tenth.p50],
          text: `p99 ${ms(half.p99)} at ${half.offered}/s / p50 ${ms(tenth.p50)} at ${tenth.offered}/s = ${times(half.p99 / tenth.p50)}`,
        }
      },
      show: times,
      test: (value) => value <= 3,
    })
    overRounds(label, 'p99 within 1.2x of the half-peak phase while passwords change', {
      measure: againstHalf('half+kdf', (half, kdf) => ({
        figures: [kdf.p99 / half.p99],
        text: `${times(kdf.p99 / half.p99)}; the server's event loop delay p99 ${times(kdf.loopP99 / half.loopP99)}; the changing client at ${kdfClient} priority used ${ms(kdf.background.cpuMs / Math.max(1, kdf.background.changes))} of CPU a change`,
      })),
      show: times,
      test: (value) => value <= 1.2,
    })
    for (const mode of ['registrations', 'never-read'])
      overRounds(label, `p99 within 2x of the half-peak phase while a hostile client sends ${mode}`, {
        measure: againstHalf(`half+${mode}`, (half, hostile) => ({
          figures: [hostile.p99 / half.p99],
          text: `${times(hostile.p99 / half.p99)}; p50 ${times(hostile.p50 / half.p50)}`,
        })),
        show: times,
        test: (value) => value <= 2,
      })
    for (const round of roundList) {
      const { text } = againstHalf('half+recovery', (half, recovery) => ({
        text: `p99 ${times(recovery.p99 / half.p99)}, event loop delay p99 ${times(recovery.loopP99 / half.loopP99)}`,
      }))(round)
      if (text)
        console.log(
          `${label}${rounds > 1 ? `round ${round}: ` : ''}while recovery codes are renewed (the server's own scrypt): ${text} of the half-peak phase`,
        )
    }
  }
}

/** Logins a second, to a tenth below 10; '-' for none. */
function perSecond(value) {
  return Number.isFinite(value) ? value.toFixed(value < 10 ? 1 : 0) : '-'
}

/** Bytes, in B, kB or MB (10^3, 10^6). */
function bytes(value) {
  if (!Number.isFinite(value)) return '-'
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)} MB`
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)} kB`
  return `${Math.round(value)} B`
}
