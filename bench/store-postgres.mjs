// The encrypted store on PostgreSQL at 1k, 100k and 1M users: figures, not a test.
// `npm run bench -- store --store postgres` (bench/store.mjs hands its arguments here); alone,
// after npm run build: `node bench/store-postgres.mjs [options]`.
//
// For each size: a fresh database (made and dropped through --pg-url), a store in it (scrypt
// logN 10), filled with commitEach batches from a few connections at once, then vacuumed and
// checkpointed, as a store in service would be. Then, with every size's store open, --rounds
// rounds that visit the sizes in turn, each size timing its share of --samples, one call at a
// time, of user lookups (getVersioned of a random existing user: one SELECT) and registrations (a
// new account with expect: null: one call of securelogin_commit), with the CPU this process and
// the machine's postgres processes used per call, and the CPU the rest of the machine used
// meanwhile. Last, count('user/') (a count(*) on the p1 index) and, up to --rotate-up-to, a
// data-key rotation of every row.
import { randomBytes } from 'node:crypto'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createPgStore } from '../dist/store/index.js'
import { USERS_PREFIX, userChange } from '../dist/server/accounts.js'
import {
  codeVersion,
  count,
  createBenchDatabase,
  machine,
  machineBusyMs,
  mb,
  ms,
  optionsOrHelp,
  parseCount,
  percentile,
  PG_ADMIN_URL,
  pgQuery,
  postgresCpuMs,
  shownUrl,
  table,
} from './lib.mjs'

const FILL_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 }
const PASSPHRASE = 'correct horse battery staple, benchmark edition'
const GOALS = { lookupP99Ratio: 2 }

const DEFAULTS = {
  pgUrl: PG_ADMIN_URL,
  sizes: '1k,100k,1M',
  batch: '500',
  fillConnections: '4',
  samples: '8000',
  warmup: '50',
  rounds: '8',
  rotateUpTo: '100k',
  help: false,
}

export const HELP = `usage: npm run bench -- store --store postgres [options]
  --pg-url URL             PostgreSQL, where each size gets a database of its own, dropped after
                           (default $SECURELOGIN_BENCH_PG, or postgres://postgres@127.0.0.1:5432/test;
                           --store postgres://... gives it too)
  --sizes 1k,100k,1M       user counts to measure
  --batch 500              users per commitEach call while filling
  --fill-connections 4     commitEach calls in flight while filling
  --samples 8000           timed lookups and registrations per size (after --warmup 50 untimed ones); the p99 of
                           far fewer moves with one burst of other work on the machine (docs/performance.md)
  --rounds 8               the timed calls go in this many rounds, each visiting every size in turn (so that
                           other work on the machine meanwhile falls on each size alike)
  --rotate-up-to 100k      time a data-key rotation at sizes up to this`

const log = (line) => process.stderr.write(`${line}\n`)

export async function main(args) {
  const options = optionsOrHelp(args, DEFAULTS, HELP)
  if (!options) return 0
  const sizes = options.sizes
    .split(',')
    .map(parseCount)
    .sort((a, b) => a - b)
  const settings = {
    batch: parseCount(options.batch),
    connections: parseCount(options.fillConnections),
    samples: parseCount(options.samples),
    warmup: Number(options.warmup),
    rounds: parseCount(options.rounds),
    rotateUpTo: parseCount(options.rotateUpTo),
  }
  console.log('store benchmark on PostgreSQL (figures, not a test: nothing here passes or fails on a time)')
  console.log(`machine: ${machine()}`)
  const code = codeVersion(['store'])
  console.log(`code: ${code.describe}`)
  console.log(`databases made and dropped through ${shownUrl(options.pgUrl)}; fill KDF scrypt logN ${FILL_KDF.logN}`)
  console.log('')
  // Ctrl-C drops the databases: PostgreSQL is shared, and 1M users are 1.5 GB.
  const databases = []
  const dropAll = () => Promise.all(databases.map((database) => database.drop().catch(() => {})))
  const interrupted = () => {
    log('\ninterrupted: dropping the databases')
    dropAll().finally(() => process.exit(130))
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  const results = []
  try {
    for (const size of sizes) {
      const database = await createBenchDatabase(options.pgUrl)
      databases.push(database)
      results.push(await fill(database.url, size, settings))
    }
    // The sizes take turns, so that what else the machine does meanwhile falls on each alike.
    const { samples, warmup, rounds } = settings
    for (const r of results) {
      log(`[${r.label}] ${warmup} untimed lookups and registrations ...`)
      await timeCalls(undefined, warmup, (i) => lookup(r, i))
      await timeCalls(undefined, warmup, () => register(r))
    }
    for (let round = 0; round < rounds; round++) {
      const n = Math.floor(samples / rounds) + (round < samples % rounds ? 1 : 0)
      log(`round ${round + 1} of ${rounds}: ${n} lookups and ${n} registrations at each size ...`)
      for (const r of results) {
        await timeCalls(r.lookup, n, (i) => lookup(r, i))
        await timeCalls(r.register, n, () => register(r))
      }
    }
    for (const r of results) await finish(r, settings)
  } finally {
    await Promise.all(results.map((r) => r.store.close()))
    await dropAll()
    process.removeListener('SIGINT', interrupted)
    process.removeListener('SIGTERM', interrupted)
  }
  report(results, settings)
  if (codeVersion(['store']).dist !== code.dist)
    console.log(
      '\nWARNING: dist/store changed while the benchmark ran: the figures may mix two versions. Run it again.',
    )
  return 0
}

/** A store of `size` users, vacuumed and checkpointed, left open. */
async function fill(url, size, { batch, connections }) {
  const label = count(size)
  const reports = []
  const store = await createPgStore(url, PASSPHRASE, {
    kdf: FILL_KDF,
    countedPrefixes: [USERS_PREFIX],
    poolSize: Math.max(2, connections),
    onReport: (event) => reports.push(event),
  })
  const result = { size, label, store, reports, registered: 0, lookup: timing(), register: timing() }
  try {
    log(`[${label}] filling ${size} users, ${batch} a call, ${connections} calls at once ...`)
    let started = performance.now()
    let next = 0
    const filler = async () => {
      while (next < size) {
        const first = next
        const n = Math.min(batch, size - first)
        next += n
        await store.commitEach(makeUsers(first, n).map(userChange))
      }
    }
    await Promise.all(Array.from({ length: connections }, filler))
    result.fillMs = performance.now() - started
    // A store that has served for a while is vacuumed and checkpointed; one just filled is not yet,
    // and the autovacuum and checkpoint it has coming would land in the timed calls.
    log(`[${label}] VACUUM ANALYZE and CHECKPOINT ...`)
    started = performance.now()
    await pgQuery(url, 'VACUUM (ANALYZE) securelogin_kv')
    await pgQuery(url, 'CHECKPOINT')
    result.settleMs = performance.now() - started
    return result
  } catch (error) {
    await store.close()
    throw error
  }
}

/** A user who exists: getVersioned, one SELECT by row id. */
const lookup = (r, i) => r.store.getVersioned(`${USERS_PREFIX}${makeName((i * 7919) % r.size)}`)

/** A new account that must not exist yet (expect: null): one call of securelogin_commit. */
const register = (r) => r.store.commit([{ ...userChange(makeUsers(r.size + r.registered++, 1)[0]), expect: null }])

/** What is left to measure once the timed calls are done: count, stats, a data-key rotation. */
async function finish(r, { rotateUpTo }) {
  const started = performance.now()
  r.counted = await r.store.count(USERS_PREFIX)
  r.countMs = performance.now() - started
  r.stats = await r.store.stats()
  if (r.size <= rotateUpTo) {
    log(`[${r.label}] rotating the data key over ${r.stats.records} rows ...`)
    r.rotation = await r.store.rotateDataKey()
  }
}

const timing = () => ({ latencies: [], calls: 0, ownMs: 0, pgMs: 0, busyMs: 0, wallMs: 0 })

/**
 * `n` sequential calls, their latencies and the CPU of this process, of postgres and of the whole
 * machine added to `into` (undefined: untimed).
 */
async function timeCalls(into, n, call) {
  const first = into?.calls ?? 0
  const ownBefore = process.cpuUsage()
  const pgBefore = postgresCpuMs()
  const busyBefore = machineBusyMs()
  const started = performance.now()
  for (let i = first; i < first + n; i++) {
    const begun = performance.now()
    await call(i)
    into?.latencies.push(performance.now() - begun)
  }
  if (!into) return
  into.wallMs += performance.now() - started
  const own = process.cpuUsage(ownBefore)
  into.ownMs += (own.user + own.system) / 1000
  into.pgMs += postgresCpuMs() - pgBefore
  into.busyMs += machineBusyMs() - busyBefore
  into.calls += n
}

/** Percentiles, and CPU per call: of this process, of postgres, and of the rest of the machine in cores. */
function summary(t) {
  return {
    p50: percentile(t.latencies, 50),
    p99: percentile(t.latencies, 99),
    perSecond: t.calls / (t.wallMs / 1000),
    ownCpuMs: t.ownMs / t.calls,
    pgCpuMs: t.pgMs / t.calls,
    // Other work on the machine inflates the latencies.
    // (/proc/stat and /proc/PID/stat count in 10 ms ticks, read a moment apart: a quiet machine reads about 0.)
    otherCores: Math.max(0, t.busyMs - t.ownMs - t.pgMs) / t.wallMs,
  }
}

const makeName = (i) => `user${String(i).padStart(8, '0')}`

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const base32 = (bytes) => [...bytes].map((byte) => BASE32[byte & 31]).join('')

/** Users shaped as the server registers them: 32-byte salt, 256-byte verifier (hex), a base32 TOTP secret. */
function makeUsers(first, n) {
  const random = randomBytes(n * (32 + 256 + 32))
  return Array.from({ length: n }, (_, i) => {
    const at = i * 320
    return {
      username: makeName(first + i),
      salt: random.toString('hex', at, at + 32),
      verifier: random.toString('hex', at + 32, at + 288),
      kdf: { name: 'scrypt', logN: 14, r: 8, p: 1 },
      totpSecret: base32(random.subarray(at + 288, at + 320)),
      role: 'regular_user',
      createdAt: new Date(Date.UTC(2025, 0, 1) + (first + i) * 1000).toISOString(),
    }
  })
}

function report(results, { samples, warmup, rounds }) {
  for (const r of results) {
    r.lookup = summary(r.lookup)
    r.register = summary(r.register)
  }
  console.log('')
  console.log(
    `Store on PostgreSQL (${samples} sequential calls of each kind at each size, after ${warmup} untimed, ` +
      `in ${rounds} rounds that visit the sizes in turn; CPU per call)`,
  )
  console.log('')
  const cpu = (phase) => `${ms(phase.ownCpuMs)} / ${ms(phase.pgCpuMs)}`
  console.log(
    table(
      [
        'users',
        'rows',
        'table size',
        'fill',
        'lookup p50 / p99',
        'lookup CPU ours / postgres',
        'register p50 / p99',
        'register CPU ours / postgres',
        'count(user/)',
        'rotation',
        'other cores (lookup / register)',
      ],
      results.map((r) => [
        r.label,
        r.stats.records,
        mb(r.stats.fileSize),
        `${ms(r.fillMs)} (${Math.round(r.size / (r.fillMs / 1000)).toLocaleString('en')}/s)`,
        `${ms(r.lookup.p50)} / ${ms(r.lookup.p99)}`,
        cpu(r.lookup),
        `${ms(r.register.p50)} / ${ms(r.register.p99)}`,
        cpu(r.register),
        ms(r.countMs),
        r.rotation ? `${ms(r.rotation.ms)} (${r.rotation.resealed} rows)` : '-',
        `${r.lookup.otherCores.toFixed(2)} / ${r.register.otherCores.toFixed(2)}`,
      ]),
    ),
  )
  console.log('')
  console.log('Each lookup is one prepared SELECT; each registration one statement (securelogin_commit), one commit.')
  console.log('postgres CPU: user + system of every process named postgres on this machine (/proc), over the phase.')
  console.log(
    `other cores: CPU the rest of the machine used meanwhile (/proc/stat less ours and postgres's), of ${cpus().length}.`,
  )
  console.log('A registration waits for its WAL flush (synchronous_commit as the server is set): one fsync per call.')
  console.log(
    `VACUUM ANALYZE + CHECKPOINT after each fill: ${results.map((r) => `${r.label} ${ms(r.settleMs)}`).join(', ')}`,
  )
  if (results.length >= 2) {
    const small = results[0]
    const large = results.at(-1)
    const ratio = large.lookup.p99 / small.lookup.p99
    console.log('')
    console.log(
      table(
        ['goal', 'figure', 'result'],
        [
          [
            `lookup p99 at ${large.label} within ${GOALS.lookupP99Ratio}x of ${small.label}`,
            `${ms(large.lookup.p99)} / ${ms(small.lookup.p99)} = ${ratio.toFixed(2)}x`,
            ratio <= GOALS.lookupP99Ratio ? 'met' : 'missed',
          ],
        ],
      ),
    )
    console.log('')
    const ratios = (key) => results.map((r) => `${r.label} ${(r[key].p99 / small[key].p99).toFixed(2)}x`).join(', ')
    console.log(`p99 as a ratio to ${small.label}: lookup ${ratios('lookup')}; registration ${ratios('register')}`)
  }
  const events = results.flatMap((r) => r.reports.map((event) => `${r.label}: ${event}`))
  if (events.length > 0) console.log(`store reports: ${events.join(', ')}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = (await main(process.argv.slice(2))) ?? 0
}
