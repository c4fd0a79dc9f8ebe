// Helpers shared by the benchmarks: child processes that are always reaped, percentiles,
// formatting, a plain-text table, a description of the machine, and for the PostgreSQL store a
// database of the benchmark's own with the counters PostgreSQL keeps of it.
import { createHash, randomBytes } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { cpus, totalmem, release, platform } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'bin', 'securelogin')

/** Child processes started and not yet exited: stopped by killChildren() on error or Ctrl-C. */
const live = new Set()

/**
 * Runs `node ...args`, waits for it to exit, and resolves to its stdout. Rejects (after the
 * child has exited) when it exits non-zero, dies of a signal, or outlives `timeoutMs`, in which
 * case it is killed by its pid first.
 */
export function runNode(args, { env = {}, timeoutMs = 10 * 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    live.add(child)
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (text) => (stdout += text))
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text))
    const timer = setTimeout(() => {
      timedOut = true
      killChild(child)
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      live.delete(child)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      if (code === 0) return resolve(stdout)
      const why = timedOut
        ? `timed out after ${timeoutMs} ms and was killed`
        : signal
          ? `died of ${signal}`
          : `exited with ${code}`
      reject(new Error(`node ${args.join(' ')} ${why}${stderr ? `:\n${stderr.trimEnd()}` : ''}`))
    })
  })
}

function killChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** Kills every child still running and waits until each has exited. */
export async function killChildren() {
  const waiting = [...live].map(
    (child) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('close', resolve)
        killChild(child)
      }),
  )
  await Promise.all(waiting)
}

/** Nearest-rank percentile of numbers (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]
}

export const median = (values) => percentile(values, 50)

/** Milliseconds, with precision suited to their size. */
export function ms(value) {
  if (!Number.isFinite(value)) return '-'
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`
  if (value >= 100) return `${value.toFixed(0)} ms`
  if (value >= 10) return `${value.toFixed(1)} ms`
  return `${value.toFixed(2)} ms`
}

/** Bytes in MB (10^6 bytes), as the goals are stated. */
export function mb(bytes) {
  if (!Number.isFinite(bytes)) return '-'
  const value = bytes / 1e6
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(3)} MB`
}

export function count(n) {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`
  return String(n)
}

/** 1k, 100k, 1M, 1000000, 1e6 -> a number. */
export function parseCount(text) {
  const match = /^(\d+(?:\.\d+)?)(k|m)?$/i.exec(text.trim())
  const value = match ? Number(match[1]) * (match[2] ? (match[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : Number(text)
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`not a positive count: ${text}`)
  return value
}

/** A plain-text table (Markdown-compatible: it can be pasted into docs as is). */
export function table(header, rows) {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => String(row[i]).length)))
  const line = (cells) => `| ${cells.map((cell, i) => String(cell).padEnd(widths[i])).join(' | ')} |`
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

/**
 * CPU time the whole machine has spent busy (user, nice, system, irq, softirq, steal), in ms,
 * from /proc/stat; undefined where there is none. With the CPU time of our own processes it
 * tells how much other work ran meanwhile.
 */
export function machineBusyMs() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = fields
    return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1000) / 100 // USER_HZ is 100 on Linux
  } catch {
    return undefined
  }
}

/** Time the hypervisor gave this machine's CPUs to others (steal, from /proc/stat), in ms summed over CPUs. */
export function machineStealMs() {
  try {
    const steal = Number(readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)[8] ?? 0)
    return (steal * 1000) / 100
  } catch {
    return undefined
  }
}

export function machine() {
  const cores = cpus()
  return `node ${process.version}, ${platform()} ${release()}, ${cores.length} cores (${cores[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`
}

/** Parses `--name value` and `--flag` options against defaults (booleans become flags). */
export class UsageError extends Error {}

/** parseOptions, or with --help the help text printed and undefined (the benchmark then exits 0). */
export function optionsOrHelp(args, defaults, help) {
  const options = parseOptions(args, defaults)
  if (!options.help) return options
  console.log(help)
  return undefined
}

export function parseOptions(args, defaults) {
  const options = { ...defaults }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${arg}`)
    const [name, inline] = arg.slice(2).split('=', 2)
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (key.startsWith('no') && typeof defaults[key[2]?.toLowerCase() + key.slice(3)] === 'boolean') {
      options[key[2].toLowerCase() + key.slice(3)] = false
      continue
    }
    if (!(key in defaults)) throw new UsageError(`unknown option --${name} (--help lists them)`)
    if (typeof defaults[key] === 'boolean') options[key] = inline === undefined ? true : inline !== 'false'
    else {
      const value = inline ?? args[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      options[key] = value
    }
  }
  return options
}

/**
 * `node bin/securelogin server` on 127.0.0.1 port 0 with the store DIR/data/bench.store (or
 * `store`: a postgres:// URL) and the certificate in DIR/certs, and `extraArgs`; resolves once it
 * logs "listening". `onLine` sees every later log line; `nodeArgs` go to node itself (--cpu-prof).
 * stop() ends it by its pid.
 */
export function startServerProcess(dir, passphraseFile, extraArgs = [], { onLine, nodeArgs = [], store } = {}) {
  const args = [
    ...nodeArgs,
    BIN,
    'server',
    '--port',
    '0',
    '--store',
    store ?? join(dir, 'data', 'bench.store'),
    '--certs',
    join(dir, 'certs'),
    '--passphrase-file',
    passphraseFile,
    '--json',
    // The benchmarks register their users from 127.0.0.1, more than an address may in an hour.
    ...(extraArgs.includes('--registrations-per-hour') ? [] : ['--registrations-per-hour', '100000']),
    ...extraArgs,
  ]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let tail = '' // the last of the log, for error messages; the rest is read and dropped so the pipe never fills
  let stderr = ''
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    try {
      process.kill(child.pid, 'SIGTERM')
    } catch {
      return // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }, 10_000)
    await exited
    clearTimeout(timer)
  }
  return new Promise((resolve, reject) => {
    const fail = async (why) => {
      await stop()
      reject(
        new Error(
          `the server did not start: ${why}${stderr ? `\n${stderr.trimEnd()}` : ''}${tail ? `\n${tail.trimEnd()}` : ''}`,
        ),
      )
    }
    const timer = setTimeout(() => fail('no "listening" line within 60 s'), 60_000)
    let listening = false
    let line = ''
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr = (stderr + text).slice(-8192)))
    const passOn = () => {
      const lines = line.split('\n')
      line = lines.pop()
      if (onLine) for (const one of lines) onLine(one)
    }
    child.stdout.setEncoding('utf8').on('data', (text) => {
      tail = (tail + text).slice(-8192)
      line += text
      if (listening) return passOn()
      const end = line.indexOf('\n')
      if (end === -1) return
      clearTimeout(timer)
      listening = true
      const firstLine = line.slice(0, end)
      line = line.slice(end + 1)
      let first
      try {
        first = JSON.parse(firstLine)
      } catch {
        return fail(`its first line is not JSON: ${firstLine}`)
      }
      if (first.event !== 'listening') return fail(`its first line is not "listening": ${firstLine}`)
      resolve({ pid: child.pid, port: first.port, stop, cpuMs: () => processCpuMs(child.pid), exited })
      // The lines that came in the same chunk as "listening" (a server with workers names them at once).
      passOn()
    })
    child.once('error', (error) => fail(error.message))
    exited.then(({ code, signal }) => {
      if (!listening) fail(`it exited (${signal ?? code})`)
    })
  })
}

/** user + system CPU of a process, from /proc/PID/stat (ticks of 10 ms); NaN where there is none. */
export function processCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return NaN
  }
}

/**
 * user + system CPU of every process on this machine whose name (comm) is or starts with
 * "postgres" (the postmaster, its backends, the WAL writer, the checkpointer ...), in ms; NaN
 * where /proc has none. Backends of other databases on the same server count too. A backend
 * that has exited counts through its parent's children's time (cutime + cstime), which the
 * postmaster gains as it reaps each one: a server that opens and closes connections in a
 * phase would otherwise take their CPU with them.
 */
export function postgresCpuMs() {
  let names
  try {
    names = readdirSync('/proc')
  } catch {
    return NaN
  }
  let total = 0
  let found = false
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      if (!stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('postgres')) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 10
      found = true
    } catch {
      // the process ended while we looked
    }
  }
  return found ? total : NaN
}

/** Where the PostgreSQL benchmarks make and drop their databases (a superuser, for track_functions). */
export const PG_ADMIN_URL =
  process.env.SECURELOGIN_BENCH_PG ?? process.env.SECURELOGIN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test'

/** The URL without its password, for output. */
export function shownUrl(url) {
  const shown = new URL(url)
  shown.password = ''
  return shown.toString()
}

/** One statement on a connection of its own. */
export async function pgQuery(url, sql, values = []) {
  const client = new pg.Client({ connectionString: url, application_name: 'securelogin-bench' })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql, values)
  } finally {
    await client.end()
  }
}

/**
 * A fresh database, made through `adminUrl`: its URL, and drop() (WITH (FORCE): a connection
 * left open, by a server that was killed, is ended). `trackFunctions` counts calls of the
 * store's commit function in pg_stat_user_functions (a superuser setting).
 */
export async function createBenchDatabase(adminUrl, { trackFunctions = false } = {}) {
  const name = `securelogin_bench_${randomBytes(6).toString('hex')}`
  await pgQuery(adminUrl, `CREATE DATABASE ${name}`)
  let dropped
  const drop = () => (dropped ??= pgQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  try {
    if (trackFunctions) await pgQuery(adminUrl, `ALTER DATABASE ${name} SET track_functions = 'pl'`)
  } catch (error) {
    await drop()
    throw error
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop }
}

/** PostgreSQL's `X/Y` WAL position as a number of bytes. */
const walBytes = (lsn) => {
  const [high, low] = lsn.split('/')
  return Number((BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`))
}

/**
 * PostgreSQL's counters for one database, read before and after a phase: transactions (each of
 * the store's statements runs alone, so one statement is one transaction), calls of the store's
 * commit function, rows written, WAL written (the whole server's), the database's size, the CPU of
 * its backends and of every postgres process, and the transactions of the other databases (work
 * of others on the same server while the phase ran).
 *
 * A backend reports its counters at most once a second while busy, and once idle within
 * PGSTAT_IDLE_INTERVAL (10 s in PostgreSQL 15): settle() waits that out, so that a reading after
 * it holds everything done before it.
 */
export async function openPgMonitor(adminUrl, database, { settleMs = 11_000 } = {}) {
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'securelogin-bench' })
  const inside = new pg.Client({ connectionString: database.url, application_name: 'securelogin-bench' })
  for (const client of [admin, inside]) client.on('error', () => {})
  await admin.connect()
  try {
    await inside.connect()
  } catch (error) {
    await admin.end()
    throw error
  }
  const ownPid = (await inside.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
  let ownStatements = 0
  /** The CPU of the database's backends (this monitor's excepted), by pid, and of every postgres process. */
  const cpu = async () => {
    const { rows } = await admin.query('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2', [
      database.name,
      ownPid,
    ])
    return { backendCpu: new Map(rows.map(({ pid }) => [pid, processCpuMs(pid)])), postgresCpuMs: postgresCpuMs() }
  }
  const read = async () => {
    // One query at a time on each client: node-postgres queues them, and warns of it.
    const [db, fn] = await Promise.all([
      admin.query(
        `SELECT xact_commit + xact_rollback AS xacts, xact_rollback AS rollbacks, sessions, tup_inserted, tup_updated,
           tup_deleted, pg_database_size(datname) AS size, pg_current_wal_lsn()::text AS lsn,
           (SELECT json_object_agg(coalesce(datname, ''), xact_commit + xact_rollback) FROM pg_stat_database
            WHERE datname IS DISTINCT FROM $1) AS others
         FROM pg_stat_database WHERE datname = $1`,
        [database.name],
      ),
      inside.query(
        `SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_user_functions WHERE funcname = 'securelogin_commit'`,
      ),
    ])
    const cpuNow = await cpu()
    // This monitor's own statements in the database: the pid query, and one a reading.
    ownStatements++
    const row = db.rows[0]
    return {
      statements: Number(row.xacts) - ownStatements,
      rollbacks: Number(row.rollbacks),
      // Connections opened to the database (PostgreSQL 14 and later; the monitor's own were opened before).
      sessions: Number(row.sessions),
      commits: Number(fn.rows[0].calls),
      inserted: Number(row.tup_inserted),
      updated: Number(row.tup_updated),
      deleted: Number(row.tup_deleted),
      size: Number(row.size),
      wal: walBytes(row.lsn),
      otherStatements: row.others,
      ...cpuNow,
    }
  }
  return {
    settle: () => new Promise((resolve) => setTimeout(resolve, settleMs)),
    read,
    cpu,
    /**
     * after - before, with the CPU from `cpuAfter` (read as the phase ended, before the wait
     * for the counters); a backend that began meanwhile counts from zero.
     */
    delta(before, after, cpuAfter = after) {
      let backendCpuMs = 0
      for (const [pid, cpuMs] of cpuAfter.backendCpu) backendCpuMs += cpuMs - (before.backendCpu.get(pid) ?? 0)
      const d = {}
      for (const key of [
        'statements',
        'rollbacks',
        'sessions',
        'commits',
        'inserted',
        'updated',
        'deleted',
        'size',
        'wal',
      ])
        d[key] = after[key] - before[key]
      return {
        ...d,
        // Databases made or dropped meanwhile (other sessions' tests) count for what they did while both readings saw them.
        otherStatements: Object.entries(after.otherStatements).reduce(
          (sum, [name, n]) => sum + Math.max(0, n - (before.otherStatements[name] ?? n)),
          0,
        ),
        backendCpuMs,
        backends: cpuAfter.backendCpu.size,
        postgresCpuMs: cpuAfter.postgresCpuMs - before.postgresCpuMs,
      }
    },
    close: async () => {
      await Promise.all([admin.end().catch(() => {}), inside.end().catch(() => {})])
    },
  }
}

/** The commit, whether src/ has changes, and a hash of the compiled code (dist/SUB for each SUB) the benchmark runs. */
export function codeVersion(subs = ['auth', 'protocol', 'server', 'store']) {
  const hash = createHash('sha256')
  for (const sub of subs) {
    const distDir = join(ROOT, 'dist', sub)
    for (const name of readdirSync(distDir)
      .filter((file) => file.endsWith('.js'))
      .sort())
      hash.update(`${sub}/${name}`).update(readFileSync(join(distDir, name)))
  }
  const dist = hash.digest('hex').slice(0, 12)
  const git = (...args) => {
    const result = spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', timeout: 10_000 })
    return result.status === 0 ? result.stdout.trim() : undefined
  }
  const commit = git('rev-parse', '--short', 'HEAD')
  const dirty = git('status', '--porcelain', '--', 'src')
  const describe = `${commit ? `git ${commit}${dirty ? ' with uncommitted changes in src/' : ''}` : 'no git'}, dist/${subs.length === 1 ? subs[0] : `{${subs.join(',')}}`} ${dist}`
  return { dist, describe }
}
