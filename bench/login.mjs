// `npm run bench -- login`: full logins per second against the real server, on each SRP engine in
// the same run, and where the server's time goes. Figures, not a test.
//
// Set-up: a store written directly (dist/store) with --users accounts. They share one password
// and one salt, so the client's scrypt stretch runs once here; x = H(s | H(I | ":" | P')) and
// v = g^x still differ per user, and the server does for each exactly what it does for any user.
// Each user gets its own TOTP secret. Then, per engine, the real server
// (`node bin/securelogin server --srp-engine E --stage-times`) on 127.0.0.1 port 0, and load
// from --threads worker threads with --connections concurrent loops in all
// (bench/login-worker.mjs): each login is a new TLS 1.3 connection, login_start, login_proof,
// login_otp, welcome. Phases:
//   handshakes  connections that only do the TLS handshake: the server's CPU per handshake
//   peak        as fast as the server answers
//   half        at half the peak rate (openssl only): the latency a server has in hand
//   half+kdf    the same while another client changes passwords back to back (openssl only):
//               its scrypt stretches (twice per change) run in that client, a process of its
//               own (bench/password-changer.mjs) at the idle CPU priority (--kdf-client), as
//               they would run on the user's machine and not the server's
//   half+recovery  the same while one more connection logs in and renews its recovery codes
//               back to back (openssl only): the server hashes ten codes with scrypt each time,
//               on its libuv thread pool
//   half+registrations  the same while a hostile client (bench/hostile-client.mjs, a process of
//               its own) registers from 127.0.0.2 back to back at full speed, past its address's
//               budget (the server runs with the default 20 an hour)
//   half+never-read  the same while a hostile client pipelines 30 MB of jwks_get from 127.0.0.3
//               on a connection it never reads, again on a new one each time the server ends it
// The server's event loop delay (perf_hooks, p99 and max over each phase) shows whether work
// blocked its loop, apart from the latency the clients see.
// Server CPU is read from /proc/PID/stat (user + system, 10 ms ticks) around each phase; SRP, TOTP
// and the store commit are timed inside the server (--stage-times, totals logged on SIGUSR2). SRP
// and TOTP are synchronous CPU work; the store commit's wall time includes the fsync wait, so the
// split gives "store and the rest" as the server's CPU less TLS, SRP and TOTP.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { createStore } from '../dist/store/index.js'
import { userChange } from '../dist/server/accounts.js'
import { RFC5054_2048 } from '../dist/auth/srp-group.js'
import * as srp from '../dist/auth/srp-math.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword } from '../dist/auth/password-stretch.js'
import { encodeTotpSecret } from '../dist/auth/totp.js'
import {
  codeVersion,
  machine,
  machineBusyMs,
  machineStealMs,
  ms,
  parseCount,
  optionsOrHelp,
  percentile,
  processCpuMs,
  startServerProcess,
  table,
  UsageError,
} from './lib.mjs'

const PASSPHRASE = 'correct horse battery staple, login benchmark'
const PASSWORD = 'the shared password of the benchmark users 7'
const params = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
const STORE_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 }

const DEFAULTS = {
  users: '9000',
  connections: '16',
  threads: '2',
  duration: '8',
  engines: 'openssl,package',
  cpuProf: '',
  kdfClient: 'idle',
  help: false,
}
const HELP = `usage: npm run bench -- login [options]
  --users 9000          accounts in the store (each can log in at most twice per 30 s: TOTP codes are single-use)
  --connections 16      concurrent logins in all
  --threads 2           load threads (worker threads in this process)
  --duration 8          seconds per phase
  --engines openssl,package   SRP engines to compare, in this order
  --kdf-client idle     the half+kdf phase's password-changing client runs at this CPU priority: idle
                        (SCHED_IDLE, with chrt: it stands in for the user's own machine), low (nice 19),
                        normal (as the server and the load: it shares the two cores with them)
  --cpu-prof DIR        run the server under node --cpu-prof, its profile into DIR (figures then include the profiler's cost)`

const log = (line) => process.stderr.write(`${line}\n`)

export async function main(args) {
  const options = optionsOrHelp(args, DEFAULTS, HELP)
  if (!options) return 0
  const users = parseCount(options.users)
  const connections = parseCount(options.connections)
  const threads = parseCount(options.threads)
  const durationMs = parseCount(options.duration) * 1000
  const engines = options.engines.split(',')
  const kdfClient = options.kdfClient
  if (!Object.hasOwn(PRIORITIES, kdfClient))
    throw new UsageError(`--kdf-client takes ${Object.keys(PRIORITIES).join(', ')}`)
  for (const engine of engines)
    if (!['openssl', 'package'].includes(engine)) throw new UsageError(`unknown engine ${engine}`)
  if (connections < threads) throw new UsageError('--connections must be at least --threads')

  const dir = await mkdtemp(join(tmpdir(), 'securelogin-bench-login-'))
  let server
  let workers
  let renewer
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

  const results = []
  try {
    const passphraseFile = join(dir, 'passphrase')
    await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 })
    log(`writing ${users} users to a new store ...`)
    const accounts = await makeStore(dir, users)
    // A few users of their own for the password changes of the half+kdf phase.
    const changers = accounts.splice(0, 40)
    const renewers = accounts.splice(0, 200)
    for (const engine of engines) {
      server = await startBenchServer(dir, passphraseFile, engine, options.cpuProf)
      const ca = await readFile(join(dir, 'certs', 'server.crt'))
      workers ??= await startLoad(ca, accounts, threads)
      const run = (phase, opts) => runPhase(server, workers, { phase, engine, connections, durationMs, ...opts })
      log(`${engine}: handshakes ...`)
      const handshakes = await run('handshakes', { handshakeOnly: true })
      log(`${engine}: peak ...`)
      const peak = await run('peak', {})
      results.push({ ...peak, tlsMs: handshakes.serverCpuPerOpMs })
      if (engine === 'openssl') {
        const rate = Math.round(peak.rate / 2)
        log(`${engine}: half the peak (${rate}/s) ...`)
        const half = await run('half', { ratePerSecond: rate })
        results.push({ ...half, tlsMs: handshakes.serverCpuPerOpMs })
        log(`${engine}: half the peak while passwords change ...`)
        const kdf = await run('half+kdf', {
          ratePerSecond: rate,
          background: () => changePasswords(server.port, ca, changers, kdfClient),
        })
        results.push({ ...kdf, tlsMs: handshakes.serverCpuPerOpMs })
        log(`${engine}: half the peak while recovery codes are renewed ...`)
        renewer ??= (await startLoad(ca, renewers, 1))[0]
        const recovery = await run('half+recovery', {
          ratePerSecond: rate,
          background: () => renewRecoveryCodes(renewer, server.port, durationMs),
        })
        results.push({ ...recovery, tlsMs: handshakes.serverCpuPerOpMs })
        for (const mode of ['registrations', 'never-read']) {
          log(`${engine}: half the peak while a hostile client sends ${mode} ...`)
          const hostile = await run(`half+${mode}`, {
            ratePerSecond: rate,
            background: () => hostileClient(mode, server.port),
          })
          results.push({ ...hostile, tlsMs: handshakes.serverCpuPerOpMs })
        }
      }
      await server.stop()
      server = undefined
    }
  } finally {
    await cleanUp()
  }
  report(results, { threads, connections, kdfClient })
  if (codeVersion().dist !== code.dist)
    console.log('\nWARNING: dist/ changed while the benchmark ran: the figures may mix two versions. Run it again.')
  return 0
}

/** The store, written directly: users with one shared password and salt, each its own x, v and TOTP secret. */
async function makeStore(dir, count) {
  await mkdir(join(dir, 'data'), { recursive: true, mode: 0o700 })
  const salt = randomBytes(32).toString('hex')
  const stretched = await stretchPassword(PASSWORD, salt, DEFAULT_PASSWORD_KDF)
  const store = await createStore(join(dir, 'data', 'bench.store'), PASSPHRASE, { kdf: STORE_KDF })
  const accounts = []
  try {
    for (let start = 0; start < count; start += 5000) {
      const batch = []
      for (let i = start; i < Math.min(count, start + 5000); i++) {
        const name = `user${String(i).padStart(6, '0')}`
        const x = srp.x(params, Buffer.from(salt, 'hex'), name, stretched)
        const v = srp.v(params, x)
        const totp = encodeTotpSecret(randomBytes(20))
        batch.push({
          username: name,
          salt,
          verifier: v.toString('hex'),
          kdf: DEFAULT_PASSWORD_KDF,
          totpSecret: totp,
          role: 'regular_user',
          createdAt: new Date().toISOString(),
        })
        accounts.push({ name, x: x.toString('hex'), v: v.toString('hex'), totp })
      }
      await store.commitEach(batch.map(userChange))
    }
  } finally {
    await store.close()
  }
  return accounts
}

async function startBenchServer(dir, passphraseFile, engine, cpuProfDir) {
  const waiting = []
  const server = await startServerProcess(
    dir,
    passphraseFile,
    // The registration budget at its default: the half+registrations phase floods past it.
    ['--srp-engine', engine, '--stage-times', '--lockout-after', '100', '--registrations-per-hour', '20'],
    {
      nodeArgs: cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [],
      onLine(line) {
        if (!line.includes('"stage_times"')) return
        waiting.shift()?.(JSON.parse(line))
      },
    },
  )
  /** The server's stage totals so far: SIGUSR2, then its stage_times log line. */
  server.stages = () =>
    new Promise((resolve, reject) => {
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

/** One phase: workers' latencies, the server's CPU and stage times over it, the load's CPU. */
/** The load threads, started once: each gets its own users, so no two spend the same user's codes. */
async function startLoad(ca, accounts, threads) {
  const perThread = Math.floor(accounts.length / threads)
  return Promise.all(
    Array.from(
      { length: threads },
      (_, t) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL('./login-worker.mjs', import.meta.url), {
            workerData: { ca, users: accounts.slice(t * perThread, (t + 1) * perThread) },
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

/** Client ephemerals each load thread makes before a phase: its share of the logins expected, and a quarter more. */
const PEAK_GUESS_PER_SECOND = 500
function ephemeralsFor({ ratePerSecond, durationMs, threads, handshakeOnly }) {
  if (handshakeOnly) return 0
  return Math.ceil((1.25 * (ratePerSecond || PEAK_GUESS_PER_SECOND) * durationMs) / 1000 / threads)
}

async function runPhase(
  server,
  workers,
  { phase, engine, connections, durationMs, ratePerSecond = 0, handshakeOnly = false, background },
) {
  const threads = workers.length
  const prepare = ephemeralsFor({ ratePerSecond, durationMs, threads, handshakeOnly })
  await Promise.all(workers.map((worker) => ask(worker, { prepare })))
  const stagesBefore = await server.stages()
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
        connections: Math.floor(connections / threads) + (t < connections % threads ? 1 : 0),
        durationMs,
        ratePerSecond: ratePerSecond / threads,
        handshakeOnly,
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
  const stagesAfter = await server.stages()
  const latencies = outcomes.flatMap((o) => o.latencies)
  const failures = {}
  for (const o of outcomes) for (const [why, n] of Object.entries(o.failures)) failures[why] = (failures[why] ?? 0) + n
  const ok = latencies.length
  const stage = (name) => (stagesAfter[`${name}Ms`] - stagesBefore[`${name}Ms`]) / Math.max(1, ok)
  const loadCpuMs = (load.user + load.system) / 1000
  return {
    engine,
    phase,
    ok,
    failures,
    background: backgroundResult,
    madeInline: outcomes.reduce((sum, o) => sum + o.madeInline, 0),
    rate: ok / (wallMs / 1000),
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    serverCpuPerOpMs: serverCpuMs / Math.max(1, ok),
    srpMs: stage('srp'),
    totpMs: stage('totp'),
    storeWallMs: stage('store'),
    // The server's event loop delay over the phase (the totals before it reset the histogram).
    loopP99: stagesAfter.loopDelayP99Ms,
    loopMax: stagesAfter.loopDelayMaxMs,
    loadCpuPerOpMs: loadCpuMs / Math.max(1, ok),
    otherCores: (busyMs - serverCpuMs - loadCpuMs) / wallMs,
    serverCores: serverCpuMs / wallMs,
    stealCores: stealMs / wallMs,
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
    child.once('message', (outcome) => resolve({ ...outcome, cpuMs }))
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
  child.send({ port, ca: ca.toString('base64'), users: changers, password: PASSWORD })
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

function report(results, { threads, connections, kdfClient }) {
  console.log('')
  console.log(
    table(
      [
        'engine',
        'phase',
        'logins',
        'logins/s',
        'p50',
        'p95',
        'p99',
        'server CPU/login',
        'TLS',
        'SRP',
        'TOTP',
        'store and rest',
        'store commit (wall)',
        'load CPU/login',
        'server cores',
        'stolen cores',
        'loop delay p99 / max',
        'failed',
      ],
      results.map((r) => [
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
        r.rate.toFixed(0),
        ms(r.p50),
        ms(r.p95),
        ms(r.p99),
        ms(r.serverCpuPerOpMs),
        ms(r.tlsMs),
        ms(r.srpMs),
        ms(r.totpMs),
        ms(Math.max(0, r.serverCpuPerOpMs - r.tlsMs - r.srpMs - r.totpMs)),
        ms(r.storeWallMs),
        ms(r.loadCpuPerOpMs),
        r.serverCores.toFixed(2),
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
        `note: ${r.engine} ${r.phase}: ${r.madeInline} client ephemerals were made inside the phase (more logins than prepared for): its load CPU includes them`,
      )
  const peak = (engine) => results.find((r) => r.engine === engine && r.phase === 'peak')
  const fast = peak('openssl')
  const slow = peak('package')
  const half = results.find((r) => r.phase === 'half')
  const kdf = results.find((r) => r.phase === 'half+kdf')
  console.log('')
  console.log(`load: ${threads} threads, ${connections} connections; CPU on this machine: ${cpus().length} cores`)
  if (fast && slow)
    console.log(
      `openssl / package at peak: ${(fast.rate / slow.rate).toFixed(1)}x the logins per second, ${(slow.serverCpuPerOpMs / fast.serverCpuPerOpMs).toFixed(1)}x less server CPU per login`,
    )
  const goal = (text, met) => console.log(`goal: ${text}: ${met ? 'met' : 'missed'}`)
  if (fast) goal(`at least 300 full logins/s (openssl peak ${fast.rate.toFixed(0)}/s)`, fast.rate >= 300)
  if (fast && slow)
    goal(`at least 15x the package engine (${(fast.rate / slow.rate).toFixed(1)}x)`, fast.rate >= 15 * slow.rate)
  if (half) goal(`p99 at half the peak rate under 20 ms (${ms(half.p99)})`, half.p99 < 20)
  if (half && kdf)
    goal(
      `p99 within 1.2x of that while passwords change (${(kdf.p99 / half.p99).toFixed(2)}x; the server's event loop delay p99 ${(kdf.loopP99 / half.loopP99).toFixed(2)}x; the changing client at ${kdfClient} priority used ${ms(kdf.background.cpuMs / Math.max(1, kdf.background.changes))} of CPU a change)`,
      kdf.p99 <= 1.2 * half.p99,
    )
  for (const mode of ['registrations', 'never-read']) {
    const hostile = results.find((r) => r.phase === `half+${mode}`)
    if (half && hostile)
      goal(
        `p99 within 2x of the half-peak phase while a hostile client sends ${mode} (${(hostile.p99 / half.p99).toFixed(2)}x; p50 ${(hostile.p50 / half.p50).toFixed(2)}x)`,
        hostile.p99 <= 2 * half.p99,
      )
  }
  const recovery = results.find((r) => r.phase === 'half+recovery')
  if (half && recovery)
    console.log(
      `while recovery codes are renewed (the server's own scrypt): p99 ${(recovery.p99 / half.p99).toFixed(2)}x, event loop delay p99 ${(recovery.loopP99 / half.loopP99).toFixed(2)}x of the half-peak phase`,
    )
}
