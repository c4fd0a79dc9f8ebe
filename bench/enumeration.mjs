// `npm run bench -- enumeration`: does a name with no account take as long to answer as a real
// user with a wrong password? Figures, not a test.
//
// Starts the real server (`node bin/securelogin server`, a fresh store and certificate in a temp
// directory), registers one user through the compiled client, then runs rounds of two login
// attempts over fresh TLS 1.3 connections: (a) that user with a wrong password, (b) a name with
// no account (a new one each time, as long as the real one); each case goes first in half the
// rounds, and the rounds are shuffled, so neither case always follows the other.
// Each attempt goes to the M1 step only. Client-observed times: login_start sent -> challenge
// received, and login_proof sent -> error received. The TLS handshake and the client's own SRP
// maths are outside both windows. The client sets TCP_NODELAY, as a careful prober would: what
// remains is the server's doing.
//
// The guard (src/server/guard.ts) would otherwise make these figures about its delays: the
// server runs with --failure-delay-ms 0 (every failure delay, per name and per address, is 0 ms)
// and --lockout-after 100 (the largest allowed; the real user is locked after 100 failures, which
// changes neither the answer to a wrong password nor, with no delay, its wait).
import { randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import srpClient from 'secure-remote-password/client.js'
import { encodeFrame, FrameDecoder } from '../dist/protocol/frame.js'
import { ServerConnection } from '../dist/client/connection.js'
import { confirmEnrolment, startRegistration } from '../dist/client/register.js'
import { generateTotp } from '../dist/auth/totp.js'
import {
  codeVersion,
  machine,
  machineBusyMs,
  ms,
  parseCount,
  optionsOrHelp,
  percentile,
  startServerProcess,
  table,
  UsageError,
} from './lib.mjs'

const PASSPHRASE = 'correct horse battery staple, enumeration benchmark'
const KNOWN = 'bench.user'
const PASSWORD = 'the real password of the bench user 42'
const WRONG = 'not the password of the bench user 17'
const CASES = ['known', 'unknown']
const CASE_LABEL = { known: 'known user, wrong password', unknown: 'name with no account' }
const STEPS = [
  ['challenge', 'login_start -> challenge'],
  ['proof', 'login_proof (M1) -> error'],
]

const DEFAULTS = { rounds: '200', warmup: '10', help: false }

const HELP = `usage: npm run bench -- enumeration [options]
  --rounds 200    timed rounds; each is one attempt of each case, each case first in half of them, shuffled
  --warmup 10     untimed rounds first`

const log = (line) => process.stderr.write(`${line}\n`)

export async function main(args) {
  const options = optionsOrHelp(args, DEFAULTS, HELP)
  if (!options) return 0
  const rounds = parseCount(options.rounds)
  const warmup = Number(options.warmup)
  if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError(`--warmup is a whole number, got ${options.warmup}`)

  const dir = await mkdtemp(join(tmpdir(), 'securelogin-bench-enum-'))
  let server
  let stopping = false
  const cleanUp = async () => {
    await server?.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const interrupted = () => {
    stopping = true
    log('\ninterrupted: stopping the server and removing its store')
    cleanUp().finally(() => process.exit(130))
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)

  const code = codeVersion()
  console.log('enumeration timing benchmark (figures, not a test: nothing here passes or fails on a time)')
  console.log(`machine: ${machine()}`)
  console.log(`code: ${code.describe}`)

  let result
  try {
    const passphraseFile = join(dir, 'passphrase')
    await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 })
    log('starting the server (a new store: one KDF run) ...')
    server = await startServerProcess(dir, passphraseFile, SERVER_GUARD_ARGS)
    console.log(
      `server: node bin/securelogin server --port 0 --store ${join(dir, 'data', 'bench.store')} --certs ${join(dir, 'certs')} --passphrase-file FILE --json ${SERVER_GUARD_ARGS.join(' ')} (pid ${server.pid})`,
    )
    console.log(
      'guard neutralised: --failure-delay-ms 0 makes every failure delay 0 ms (per name and per address); --lockout-after 100 is the largest allowed',
    )
    console.log('')
    const ca = await readFile(join(dir, 'certs', 'server.crt'))
    log(`registering ${KNOWN} ...`)
    await register(server.port, ca, join(dir, 'certs', 'server.crt'))
    result = await measure(server, ca, { rounds, warmup })
  } catch (error) {
    if (stopping) await new Promise(() => {}) // the signal handler cleans up and exits
    throw error
  } finally {
    if (!stopping) {
      await cleanUp()
      process.removeListener('SIGINT', interrupted)
      process.removeListener('SIGTERM', interrupted)
    }
  }
  report(result, { rounds, warmup })
  if (codeVersion().dist !== code.dist) {
    console.log('')
    console.log(
      'WARNING: dist/ changed while the benchmark ran (rebuilt by someone else?): the figures may mix two versions of the server. Run it again.',
    )
  }
  return 0
}

const SERVER_GUARD_ARGS = ['--failure-delay-ms', '0', '--lockout-after', '100']

/** Registration as the real client does it (password stretching, TOTP enrolment). */
async function register(port, ca, caFile) {
  const conn = await ServerConnection.open({
    host: '127.0.0.1',
    port,
    trust: { kind: 'ca', ca, caFile },
    timeoutMs: 60_000,
  })
  try {
    const { secret } = await startRegistration(conn, KNOWN, PASSWORD)
    await confirmEnrolment(conn, await generateTotp(secret, Date.now()))
  } finally {
    conn.close()
  }
}

async function measure(server, ca, { rounds, warmup }) {
  const times = Object.fromEntries(CASES.map((c) => [c, { challenge: [], proof: [] }]))
  const answers = new Set()
  const order = { knownFirst: 0, unknownFirst: 0 }
  log(`${warmup} untimed + ${rounds} timed rounds of one attempt per case, shuffled ...`)
  const cpuBefore = process.cpuUsage()
  const serverCpuBefore = server.cpuMs()
  const busyBefore = machineBusyMs()
  const started = performance.now()
  const orders = [...balancedOrders(warmup), ...balancedOrders(rounds)]
  for (let round = 0; round < warmup + rounds; round++) {
    const cases = orders[round]
    for (const which of cases) {
      const username = which === 'known' ? KNOWN : unknownName()
      const attempt = await attemptToProof(server.port, ca, username)
      answers.add(`${which}: ${attempt.answer}`)
      if (round < warmup) continue
      times[which].challenge.push(attempt.challengeMs)
      times[which].proof.push(attempt.proofMs)
    }
    if (round >= warmup) order[cases[0] === 'known' ? 'knownFirst' : 'unknownFirst']++
    if ((round + 1) % 50 === 0) log(`  ${round + 1} / ${warmup + rounds}`)
  }
  const wallMs = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  const serverCpuMs = server.cpuMs() - serverCpuBefore
  const busyMs = machineBusyMs() - busyBefore
  const others = Number.isFinite(busyMs)
    ? Math.max(0, busyMs - (cpu.user + cpu.system) / 1000 - serverCpuMs) / wallMs
    : undefined
  return { times, answers: [...answers], order, wallMs, serverCpuMs, others }
}

/** Each case first in half the rounds (one more for an odd count), in a random order of rounds. */
function balancedOrders(count) {
  const orders = Array.from({ length: count }, (_, i) => (i % 2 === 0 ? ['known', 'unknown'] : ['unknown', 'known']))
  for (let i = orders.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[orders[i], orders[j]] = [orders[j], orders[i]]
  }
  return orders
}

/** A name with no account, as long as the real one. */
const unknownName = () => `n${randomBytes(8).toString('hex')}`.slice(0, KNOWN.length)

/** One login to the M1 step over a fresh TLS connection, with raw frames; times the two answers. */
function attemptToProof(port, ca, username) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.3', noDelay: true })
    const decoder = new FrameDecoder()
    const ephemeral = srpClient.generateEphemeral()
    let sentAt = 0
    let challengeMs
    let proofMs
    let answer
    const timer = setTimeout(() => finish(new Error(`no answer for ${username} within 30 s`)), 30_000)
    const finish = (error) => {
      clearTimeout(timer)
      socket.destroy()
      if (error) reject(error)
      else resolve({ challengeMs, proofMs, answer })
    }
    socket.once('secureConnect', () => {
      sentAt = performance.now()
      socket.write(encodeFrame({ type: 'login_start', username, A: ephemeral.public }))
    })
    socket.on('data', (chunk) => {
      const now = performance.now()
      let messages
      try {
        messages = decoder.push(chunk)
      } catch (error) {
        return finish(error)
      }
      for (const message of messages) {
        if (challengeMs === undefined) {
          challengeMs = now - sentAt
          if (message.type !== 'challenge')
            return finish(new Error(`login_start for ${username} was answered with ${JSON.stringify(message)}`))
          // Outside the timed windows: the client's own SRP maths.
          const x = srpClient.derivePrivateKey(message.salt, username, WRONG)
          const { proof: M1 } = srpClient.deriveSession(ephemeral.secret, message.B, message.salt, username, x)
          sentAt = performance.now()
          socket.write(encodeFrame({ type: 'login_proof', M1 }))
        } else {
          proofMs = now - sentAt
          answer = JSON.stringify(message)
          return finish()
        }
      }
    })
    socket.once('error', (error) => finish(error))
    socket.once('close', () =>
      finish(new Error(`the server closed the connection for ${username} before answering M1`)),
    )
  })
}

function report({ times, answers, order, wallMs, serverCpuMs, others }, { rounds, warmup }) {
  const stats = (values) => ({
    n: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  })
  const rows = []
  const ratios = []
  for (const [step, label] of STEPS) {
    const byCase = Object.fromEntries(CASES.map((c) => [c, stats(times[c][step])]))
    for (const c of CASES) {
      const s = byCase[c]
      rows.push([label, CASE_LABEL[c], s.n, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean)])
    }
    const ratio = (key) => (byCase.unknown[key] / byCase.known[key]).toFixed(2)
    ratios.push([
      label,
      ratio('p50'),
      ratio('p90'),
      ratio('p99'),
      ratio('mean'),
      ms(byCase.unknown.p50 - byCase.known.p50).replace(/^(?!-)/, '+'),
    ])
  }
  console.log(
    `${rounds} timed rounds after ${warmup} untimed (known user first in ${order.knownFirst}, the unknown name first in ${order.unknownFirst}); client-observed, one TLS connection per attempt`,
  )
  console.log('')
  console.log(table(['step', 'case', 'n', 'p50', 'p90', 'p99', 'mean'], rows))
  console.log('')
  console.log(
    'ratio unknown / known (1.00 means the server takes as long for a name with no account as for a wrong password):',
  )
  console.log('')
  console.log(table(['step', 'p50', 'p90', 'p99', 'mean', 'p50 unknown - known'], ratios))
  console.log('')
  console.log(`answers to M1 (every one): ${answers.join('; ')}`)
  console.log(
    `wall time ${ms(wallMs)}; server CPU ${ms(serverCpuMs)}; ` +
      `CPU used by other processes meanwhile, in cores of ${cpus().length} (approximate, from /proc/stat): ${others?.toFixed(2) ?? '-'}`,
  )
}
