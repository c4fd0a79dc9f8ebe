// `npm run bench -- store`: the encrypted store at 1k, 100k and 1M users. Figures, not a test.
// `--store postgres` measures the store on PostgreSQL instead (bench/store-postgres.mjs, with
// options of its own); this file measures the store file.
//
// For each size: create a store (scrypt logN 10, so that the KDF does not dominate), fill it
// with commitEach batches (one sealed record per user, one write + fsync per batch, autoCompact
// off), compact once (a server-made store is packed), time single account commits (append + fsync,
// what a registration does), close it, then open it in fresh child processes (bench/store-open.mjs:
// page cache warmed by reading the file just before, fresh heap) for the open time excluding the
// KDF and the RSS after open.
// At 1M, also the same store plus unpacked tails of single-user records (by default 16,384 and
// 60,000): a server-made store is packed plus a tail shorter than the count after which the
// store packs by itself, so these are the slowest opens a server-made store can have.
import { randomBytes } from 'node:crypto'
import { mkdtemp, open as openFile, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { PerformanceObserver } from 'node:perf_hooks'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createStore, openStore } from '../dist/store/index.js'
import { USERS_PREFIX, newAccountChanges, userChange } from '../dist/server/accounts.js'
import {
  codeVersion,
  count,
  killChildren,
  machine,
  machineBusyMs,
  mb,
  median,
  ms,
  parseCount,
  optionsOrHelp,
  percentile,
  runNode,
  table,
  UsageError,
} from './lib.mjs'
import { HELP as PG_HELP } from './store-postgres.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OPEN_SCRIPT = join(ROOT, 'bench', 'store-open.mjs')
const FILL_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 }
const PASSPHRASE = 'correct horse battery staple, benchmark edition'
const GOALS = { p99Ratio: 2, openMs: 3000, rssBytes: 600e6 }

const DEFAULTS = {
  sizes: '1k,100k,1M',
  batch: '10000',
  samples: '1000',
  warmup: '10',
  runs: '3',
  tailAt: '1M',
  tailRecords: '16384,60000',
  tail: true,
  phases: true,
  cpuProf: '',
  help: false,
}

const HELP = `usage: npm run bench -- store [options]
  --store file                 file (the store file: the options below), or postgres (the store on PostgreSQL:
                               the options after these), or postgres://USER@HOST:PORT/DB (PostgreSQL, there)
  --sizes 1k,100k,1M           user counts to measure
  --batch 10000                users per commitEach call while filling
  --samples 1000               timed account commits per size (after --warmup 10 untimed ones)
  --runs 3                     fresh child processes that open each store (medians reported)
  --tail-at 1M                 the size at which to also open the packed store plus unpacked tails
  --tail-records 16384,60000   the lengths of those tails, in single-user records
  --no-tail                    skip the packed-plus-tail stores
  --no-phases                  skip the read / decrypt / parse breakdown of an open
  --cpu-prof DIR               also open each store once more under node --cpu-prof (not counted), profile into DIR`

const log = (line) => process.stderr.write(`${line}\n`)

export async function main(args) {
  const { store, rest } = takeStoreOption(args)
  if (store === 'postgres' || store.startsWith('postgres://') || store.startsWith('postgresql://')) {
    const onPg = await import('./store-postgres.mjs')
    return onPg.main(store === 'postgres' ? rest : ['--pg-url', store, ...rest])
  }
  if (store !== 'file') throw new UsageError(`--store takes file, postgres, or a postgres:// URL, not ${store}`)
  const options = optionsOrHelp(rest, DEFAULTS, `${HELP}\n\nwith --store postgres:\n${PG_HELP}`)
  if (!options) return 0
  const sizes = options.sizes
    .split(',')
    .map(parseCount)
    .sort((a, b) => a - b)
  const batch = parseCount(options.batch)
  const samples = parseCount(options.samples)
  const warmup = Number(options.warmup)
  const runs = parseCount(options.runs)
  const tailAt = options.tail ? parseCount(options.tailAt) : undefined
  const tails = options.tailRecords
    .split(',')
    .map(parseCount)
    .sort((a, b) => a - b)
  const cpuProf = options.cpuProf ? resolve(options.cpuProf) : undefined

  const dir = await mkdtemp(join(tmpdir(), 'securelogin-bench-'))
  let stopping = false
  const interrupted = () => {
    stopping = true
    log('\ninterrupted: stopping child processes and removing the stores')
    killChildren()
      .then(() => rm(dir, { recursive: true, force: true }))
      .finally(() => process.exit(130))
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)

  const code = codeVersion(['store'])
  console.log('store benchmark (figures, not a test: nothing here passes or fails on a time)')
  console.log(`machine: ${machine()}`)
  console.log(`code: ${code.describe}`)
  console.log(
    `stores under ${dir} (removed at the end); fill KDF scrypt logN ${FILL_KDF.logN}, r ${FILL_KDF.r}, p ${FILL_KDF.p}`,
  )
  console.log('')

  const results = []
  try {
    for (const size of sizes) {
      results.push(
        await measureSize(dir, size, {
          batch,
          samples,
          warmup,
          runs,
          tails: size === tailAt ? tails : [],
          phases: options.phases,
          cpuProf,
        }),
      )
    }
  } catch (error) {
    await killChildren()
    if (stopping) await new Promise(() => {}) // the signal handler cleans up and exits
    throw error
  } finally {
    await rm(dir, { recursive: true, force: true })
    process.removeListener('SIGINT', interrupted)
    process.removeListener('SIGTERM', interrupted)
  }
  report(results, { samples, warmup, runs })
  if (codeVersion(['store']).dist !== code.dist) {
    console.log('')
    console.log(
      'WARNING: dist/store changed while the benchmark ran (rebuilt by someone else?): the figures mix two versions of the store. Run it again.',
    )
  }
  return 0
}

/** --store KIND (or --store=KIND) taken out of the arguments; the rest go to the benchmark of that kind. */
function takeStoreOption(args) {
  const rest = []
  let store = 'file'
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--store') {
      store = args[++i]
      if (store === undefined) throw new UsageError('--store needs a value')
    } else if (args[i].startsWith('--store=')) store = args[i].slice('--store='.length)
    else rest.push(args[i])
  }
  return { store, rest }
}

async function measureSize(dir, size, { batch, samples, warmup, runs, tails, phases, cpuProf }) {
  const path = join(dir, `store-${count(size)}.sls`)
  const reports = []
  const onReport = (event, fields) => reports.push({ event, ...fields })
  const result = { size, label: count(size), reports }

  log(`[${result.label}] filling ${size} users in batches of ${batch} ...`)
  const store = await createStore(path, PASSPHRASE, {
    kdf: FILL_KDF,
    autoCompact: false,
    onReport,
    countedPrefixes: [USERS_PREFIX],
  })
  try {
    let fillMs = 0
    for (let first = 0; first < size; first += batch) {
      const users = makeUsers(first, Math.min(batch, size - first))
      const started = performance.now()
      await store.commitEach(users.map(userChange))
      fillMs += performance.now() - started
    }
    result.fillMs = fillMs
    result.beforeCompact = await store.stats()

    log(
      `[${result.label}] compacting ${result.beforeCompact.records} records (${mb(result.beforeCompact.fileSize)}) ...`,
    )
    const started = performance.now()
    result.compact = await store.compact()
    result.compactCallMs = performance.now() - started
    result.afterCompact = await store.stats()

    log(`[${result.label}] ${warmup} + ${samples} account commits ...`)
    Object.assign(result, await timeAddUser(store, size, warmup, samples))
  } finally {
    await store.close()
  }

  result.open = await measureOpen(path, result.label, runs, cpuProf)
  if (phases) result.open.phases = await measurePhases(path, result.label)

  // Longer and longer unpacked tails on the same packed store.
  result.tails = []
  let next = size + warmup + samples
  for (const tail of tails) {
    const opened = await openStore(path, PASSPHRASE, { autoCompact: false, onReport, countedPrefixes: [USERS_PREFIX] })
    let records
    try {
      const have = (await opened.stats()).records - result.afterCompact.records // single-user records appended since the compaction
      const more = Math.max(0, tail - have)
      log(`[${result.label}] adding ${more} users as single records: packed + ${have + more} unpacked ...`)
      for (let first = 0; first < more; first += batch) {
        const n = Math.min(batch, more - first)
        await opened.commitEach(makeUsers(next, n).map(userChange))
        next += n
      }
      records = have + more
    } finally {
      await opened.close()
    }
    const label = `${result.label} + ${count(records)} tail`
    const open = await measureOpen(path, label, runs, cpuProf)
    if (phases) open.phases = await measurePhases(path, label)
    result.tails.push({ label, records, open })
  }
  await rm(path, { force: true })
  return result
}

async function timeAddUser(store, size, warmup, samples) {
  const latencies = []
  const pauses = [] // garbage collections in this process while the calls ran
  const observer = new PerformanceObserver((list) => pauses.push(...list.getEntries().map((entry) => entry.duration)))
  observer.observe({ entryTypes: ['gc'] })
  const busyBefore = machineBusyMs()
  const ownBefore = process.cpuUsage()
  const started = performance.now()
  try {
    for (let i = 0; i < warmup + samples; i++) {
      const user = makeUsers(size + i, 1)[0]
      const begun = performance.now()
      await store.commit(newAccountChanges(user))
      if (i >= warmup) latencies.push(performance.now() - begun)
    }
    await new Promise((done) => setImmediate(done)) // let the observer deliver the last entries
  } finally {
    observer.disconnect()
  }
  const own = process.cpuUsage(ownBefore)
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: Math.max(...latencies),
    gcPauses: pauses,
    othersDuringAddUser:
      busyBefore === undefined
        ? undefined
        : Math.max(0, machineBusyMs() - busyBefore - (own.user + own.system) / 1000) / (performance.now() - started),
  }
}

async function measureOpen(path, label, runs, cpuProf) {
  const children = []
  for (let run = 0; run < runs; run++) {
    log(`[${label}] open in a fresh child process (${run + 1}/${runs}) ...`)
    await warmPageCache(path)
    const busyBefore = machineBusyMs()
    const ownBefore = process.cpuUsage()
    const started = performance.now()
    const stdout = await runNode(['--expose-gc', OPEN_SCRIPT, path], {
      env: { SECURELOGIN_BENCH_PASSPHRASE: PASSPHRASE },
    })
    const wallMs = performance.now() - started
    const own = process.cpuUsage(ownBefore)
    const child = JSON.parse(stdout)
    // Cores' worth of CPU that processes other than this benchmark used while the child ran.
    const others =
      busyBefore === undefined
        ? undefined
        : Math.max(0, machineBusyMs() - busyBefore - child.processCpuMs - (own.user + own.system) / 1000) / wallMs
    children.push({ ...child, others })
  }
  if (cpuProf) {
    // One more open, not counted: the profiler slows it down.
    log(`[${label}] open under --cpu-prof (not counted) ...`)
    const name = `store-open-${label.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`
    await warmPageCache(path)
    await runNode(
      ['--cpu-prof', '--cpu-prof-dir', cpuProf, '--cpu-prof-name', name, '--expose-gc', OPEN_SCRIPT, path],
      { env: { SECURELOGIN_BENCH_PASSPHRASE: PASSPHRASE } },
    )
  }
  const pick = (key) => median(children.map((child) => child[key]))
  return {
    runs: children,
    openExclKdfMs: pick('openExclKdfMs'),
    openCpuExclKdfMs: pick('openCpuExclKdfMs'),
    kdfMs: pick('kdfMs'),
    rss: pick('rss'),
    rssBefore: pick('rssBefore'),
    maxRss: pick('maxRss'),
    stats: children.at(-1).stats,
  }
}

/**
 * Reads the whole file so that the child finds it in the page cache: some VMs give cold page
 * cache back to the host within minutes, and a child reading from disk would time the disk.
 */
async function warmPageCache(path) {
  const handle = await openFile(path, 'r')
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024)
    for (let position = 0; ; position += buffer.length) {
      if ((await handle.read(buffer, 0, buffer.length, position)).bytesRead < buffer.length) break
    }
  } finally {
    await handle.close()
  }
}

async function measurePhases(path, label) {
  log(`[${label}] read / decrypt / parse breakdown in a fresh child process ...`)
  await warmPageCache(path)
  return JSON.parse(
    await runNode(['--expose-gc', OPEN_SCRIPT, path, '--phases'], {
      env: { SECURELOGIN_BENCH_PASSPHRASE: PASSPHRASE },
    }),
  )
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
function base32(bytes) {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return bits > 0 ? out + BASE32[(value << (5 - bits)) & 31] : out
}

/** Users as the server registers them: 32-byte salt, 256-byte verifier (hex), 20-byte TOTP secret (base32). */
function makeUsers(first, n) {
  const random = randomBytes(n * (32 + 256 + 20))
  const users = new Array(n)
  for (let i = 0; i < n; i++) {
    const at = i * 308
    users[i] = {
      username: `user${String(first + i).padStart(8, '0')}`,
      salt: random.toString('hex', at, at + 32),
      verifier: random.toString('hex', at + 32, at + 288),
      totpSecret: base32(random.subarray(at + 288, at + 308)),
      role: 'regular_user',
      createdAt: new Date(Date.UTC(2025, 0, 1) + (first + i) * 1000).toISOString(),
    }
  }
  return users
}

const verdict = (ok) => (ok ? 'met' : 'missed')

function report(results, { samples, warmup, runs }) {
  // Every store that was opened: each size, then its tails.
  const opens = results.flatMap((r) => [
    { label: r.label, open: r.open },
    ...r.tails.map((tail) => ({ label: tail.label, open: tail.open })),
  ])
  const openCells = (open) => [
    ms(open.openExclKdfMs),
    ms(open.openCpuExclKdfMs),
    ms(open.kdfMs),
    mb(open.rss),
    mb(open.maxRss),
  ]

  console.log('')
  console.log(
    `Store at scale (open: median of ${runs} fresh child processes, page cache warmed by reading the file first; account commit: ${samples} sequential calls after ${warmup} untimed)`,
  )
  console.log('')
  const rows = []
  for (const r of results) {
    rows.push([
      r.label,
      r.open.stats.records,
      mb(r.open.stats.fileSize),
      `${ms(r.fillMs)} (${Math.round(r.size / (r.fillMs / 1000)).toLocaleString('en')}/s)`,
      `${ms(r.compactCallMs)} / ${r.compact.ms} ms`,
      ms(r.p50),
      ms(r.p99),
      ...openCells(r.open),
    ])
    for (const tail of r.tails)
      rows.push([
        tail.label,
        tail.open.stats.records,
        mb(tail.open.stats.fileSize),
        '',
        '',
        '',
        '',
        ...openCells(tail.open),
      ])
  }
  console.log(
    table(
      [
        'users',
        'records',
        'file size',
        'fill (commitEach)',
        'compact (call / result.ms)',
        'commit p50',
        'commit p99',
        'open excl. KDF',
        'open CPU excl. KDF',
        'KDF',
        'RSS after open',
        'peak RSS',
      ],
      rows,
    ),
  )
  console.log('')
  console.log(
    'records and file size: the store as opened (packed by the compaction, plus the account records appended after it).',
  )
  console.log(
    'open excl. KDF: openStore (lock, header, KDF, replay of every record) minus the KDF timed alone in the same child',
  )
  console.log(
    '(deriveKek, same salt and parameters). open CPU: user + system CPU time of the child during openStore, KDF excluded.',
  )
  console.log('RSS after open: process.memoryUsage().rss after global.gc(); peak RSS: getrusage maxrss of the child.')
  console.log(
    `RSS of the child before openStore (node and the benchmark's modules): ${opens.map(({ label, open }) => `${label} ${mb(open.rssBefore)}`).join(', ')}`,
  )
  console.log('MB = 10^6 bytes.')

  const withPhases = opens.filter(({ open }) => open.phases)
  if (withPhases.length > 0) {
    console.log('')
    console.log(
      'Where an open goes (each pass reads the whole file again, in 4 MiB chunks, in one fresh child process):',
    )
    console.log('')
    console.log(
      table(
        ['users', 'read file', 'read + AES-GCM open', 'read + open + parse entries', 'openStore excl. KDF'],
        withPhases.map(({ label, open }) => [
          label,
          ms(open.phases.readMs),
          ms(open.phases.decryptMs),
          ms(open.phases.parseMs),
          ms(open.openExclKdfMs),
        ]),
      ),
    )
  }

  console.log('')
  if (results.length < 2) {
    console.log('goals: need at least two sizes')
    return
  }
  const small = results[0]
  const large = results.at(-1)
  const ratio = large.p99 / small.p99
  const goals = [
    [
      `addUser p99 at ${large.label} within ${GOALS.p99Ratio}x of ${small.label}`,
      `${ms(large.p99)} / ${ms(small.p99)} = ${ratio.toFixed(2)}x`,
      verdict(ratio <= GOALS.p99Ratio),
    ],
  ]
  for (const { label, open } of [{ label: large.label, open: large.open }, ...large.tails]) {
    goals.push([
      `open at ${label} excl. KDF under ${GOALS.openMs / 1000} s`,
      ms(open.openExclKdfMs),
      verdict(open.openExclKdfMs < GOALS.openMs),
    ])
    goals.push([
      `RSS after open at ${label} under ${mb(GOALS.rssBytes)}`,
      mb(open.rss),
      verdict(open.rss < GOALS.rssBytes),
    ])
  }
  console.log(table(['goal', 'figure', 'result'], goals))
  console.log('')
  console.log(
    `ratios ${large.label} / ${small.label}: addUser p50 ${(large.p50 / small.p50).toFixed(2)}x, p99 ${ratio.toFixed(2)}x; ` +
      `open excl. KDF ${(large.open.openExclKdfMs / small.open.openExclKdfMs).toFixed(1)}x; RSS ${(large.open.rss / small.open.rss).toFixed(1)}x; users ${(large.size / small.size).toFixed(0)}x`,
  )
  console.log(
    `open excl. KDF per user: ${results.map((r) => `${r.label} ${((r.open.openExclKdfMs * 1000) / r.size).toFixed(2)} µs`).join(', ')}`,
  )
  console.log(`addUser slowest call: ${results.map((r) => `${r.label} ${ms(r.max)}`).join(', ')}`)
  console.log(
    `GC pauses in the benchmark process during the addUser calls: ${results.map((r) => `${r.label} ${r.gcPauses.length} (longest ${ms(Math.max(0, ...r.gcPauses))})`).join(', ')}`,
  )
  console.log(
    `open excl. KDF, every run: ${opens.map(({ label, open }) => `${label}: ${open.runs.map((run) => ms(run.openExclKdfMs)).join(' / ')}`).join('; ')}`,
  )
  console.log(
    'other work on the machine inflates wall times. CPU used by other processes, in cores of ' +
      `${cpus().length} (approximate, from /proc/stat): during the addUser calls ${results.map((r) => `${r.label} ${r.othersDuringAddUser?.toFixed(2) ?? '-'}`).join(', ')}; ` +
      `during each open ${opens.map(({ label, open }) => `${label}: ${open.runs.map((run) => run.others?.toFixed(2) ?? '-').join(' / ')}`).join('; ')}`,
  )
  const events = results.flatMap((r) => r.reports.map((e) => `${r.label}: ${e.event}`))
  if (events.length > 0) console.log(`store reports: ${events.join(', ')}`)
}
