// The encrypted store on PostgreSQL at 1k, 100k and 1M users: figures, not a test.
// `main(args)` is meant for `npm run bench -- store --store postgres`; alone, after npm run build:
// `node bench/store-postgres.mjs [options]`.
//
// For each size: a fresh database (made and dropped through --admin-url), a store in it (scrypt
// logN 10), filled with commitEach batches from a few connections at once; then, one at a time,
// user lookups (getVersioned of a random existing user: one SELECT) and registrations (a new
// account with expect: null: one call of securelogin_commit), with the CPU this process and the
// machine's postgres processes used per call; count('user/') (a count(*) on the p1 index); and,
// up to --rotate-up-to, a data-key rotation of every row. Between the fill and the timed calls the
// table is vacuumed and a checkpoint taken, as a store in service would be.
import { randomBytes } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { createPgStore } from '../dist/store/index.js'
import { USERS_PREFIX, userChange, userChangeExpecting } from '../dist/server/accounts.js'
import { codeVersion, count, machine, mb, ms, optionsOrHelp, parseCount, percentile, table } from './lib.mjs'

const FILL_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 }
const PASSPHRASE = 'correct horse battery staple, benchmark edition'
const GOALS = { lookupP99Ratio: 2 }

const DEFAULTS = {
  adminUrl: process.env.SECURELOGIN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test',
  sizes: '1k,100k,1M',
  batch: '500',
  fillConnections: '4',
  samples: '2000',
  warmup: '50',
  rotateUpTo: '100k',
  help: false,
}

const HELP = `usage: node bench/store-postgres.mjs [options]
  --admin-url URL          a database to connect to for CREATE / DROP DATABASE (default $SECURELOGIN_TEST_PG
                           or postgres://postgres@127.0.0.1:5432/test)
  --sizes 1k,100k,1M       user counts to measure
  --batch 500              users per commitEach call while filling
  --fill-connections 4     commitEach calls in flight while filling
  --samples 2000           timed lookups and registrations per size (after --warmup 50 untimed ones)
  --rotate-up-to 100k      time a data-key rotation at sizes up to this`

const log = (line) => process.stderr.write(`${line}\n`)

/** user + system CPU of every process named postgres on this machine, in ms; NaN where /proc has none. */
function postgresCpuMs() {
  let total = 0
  let found = false
  let names
  try {
    names = readdirSync('/proc')
  } catch {
    return NaN
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      if (!stat.includes('(postgres)')) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) * 10
      found = true
    } catch {
      // the process ended while we looked
    }
  }
  return found ? total : NaN
}

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
    rotateUpTo: parseCount(options.rotateUpTo),
  }
  const admin = new URL(options.adminUrl)
  admin.password = ''
  console.log('store benchmark on PostgreSQL (figures, not a test: nothing here passes or fails on a time)')
  console.log(`machine: ${machine()}`)
  console.log(`code: ${codeVersion(['store']).describe}`)
  console.log(`databases made and dropped through ${admin}; fill KDF scrypt logN ${FILL_KDF.logN}`)
  console.log('')
  const results = []
  for (const size of sizes) results.push(await measureSize(options.adminUrl, size, settings))
  report(results, settings)
  return 0
}

async function withAdmin(adminUrl, sql) {
  const client = new pg.Client({ connectionString: adminUrl })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end()
  }
}

async function measureSize(adminUrl, size, { batch, connections, samples, warmup, rotateUpTo }) {
  const name = `securelogin_bench_${randomBytes(6).toString('hex')}`
  await withAdmin(adminUrl, `CREATE DATABASE ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const label = count(size)
  const result = { size, label }
  const reports = []
  const store = await createPgStore(url.toString(), PASSPHRASE, {
    kdf: FILL_KDF,
    countedPrefixes: [USERS_PREFIX],
    poolSize: Math.max(2, connections),
    onReport: (event) => reports.push(event),
  })
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
    await withAdmin(url.toString(), 'VACUUM (ANALYZE) securelogin_kv')
    await withAdmin(url.toString(), 'CHECKPOINT')
    result.settleMs = performance.now() - started

    log(`[${label}] ${warmup} + ${samples} lookups ...`)
    result.lookup = await timeCalls(warmup, samples, (i) =>
      store.getVersioned(`${USERS_PREFIX}${makeName((i * 7919) % size)}`),
    )
    log(`[${label}] ${warmup} + ${samples} registrations ...`)
    result.register = await timeCalls(warmup, samples, (i) =>
      store.commit([userChangeExpecting(makeUsers(size + i, 1)[0], null)]),
    )
    started = performance.now()
    result.counted = await store.count(USERS_PREFIX)
    result.countMs = performance.now() - started
    result.stats = await store.stats()
    if (size <= rotateUpTo) {
      log(`[${label}] rotating the data key over ${result.stats.records} rows ...`)
      result.rotation = await store.rotateDataKey()
    }
    result.reports = reports
  } finally {
    await store.close()
    await withAdmin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
  return result
}

/** Sequential calls: latency percentiles, and the CPU of this process and of postgres per call. */
async function timeCalls(warmup, samples, call) {
  for (let i = 0; i < warmup; i++) await call(samples + i)
  const latencies = []
  const ownBefore = process.cpuUsage()
  const pgBefore = postgresCpuMs()
  const started = performance.now()
  for (let i = 0; i < samples; i++) {
    const begun = performance.now()
    await call(i)
    latencies.push(performance.now() - begun)
  }
  const wallMs = performance.now() - started
  const own = process.cpuUsage(ownBefore)
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    perSecond: samples / (wallMs / 1000),
    ownCpuMs: (own.user + own.system) / 1000 / samples,
    pgCpuMs: (postgresCpuMs() - pgBefore) / samples,
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

function report(results, { samples, warmup }) {
  console.log('')
  console.log(`Store on PostgreSQL (${samples} sequential calls after ${warmup} untimed; CPU per call)`)
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
      ]),
    ),
  )
  console.log('')
  console.log('Each lookup is one prepared SELECT; each registration one statement (securelogin_commit), one commit.')
  console.log('postgres CPU: user + system of every process named postgres on this machine (/proc), over the phase.')
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
  }
  const events = results.flatMap((r) => r.reports.map((event) => `${r.label}: ${event}`))
  if (events.length > 0) console.log(`store reports: ${events.join(', ')}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = (await main(process.argv.slice(2))) ?? 0
}
