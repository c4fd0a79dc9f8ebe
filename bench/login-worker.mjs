// One load thread of `npm run bench -- login` (bench/login.mjs): full logins, each over its own new
// TLS 1.3 connection (handshake, login_start -> challenge, login_proof -> server_proof,
// login_otp -> welcome), or with `handshakeOnly` just the handshake, in one of two modes a phase:
//   closed loop  `connections` loops, each awaiting its login before the next: as fast as the server
//                answers, or each paced to its share of `ratePerSecond`. A paced loop measures from
//                when it really began, so a slow login hides those that should have started meanwhile
//                (coordinated omission): the peak phase uses it, where "as fast as it answers" is the point.
//   open loop    (`openLoop: true`) logins on a fixed schedule at `ratePerSecond`: login i is due at
//                t0 + (i + phaseOffset) / rate, and starts then whether or not the ones before it have
//                ended (a timer starts every login whose time has come), up to `maxInFlight` at once;
//                past it a due login waits its turn in a queue. Each login is measured both from its
//                scheduled start (`latencies`, the open-loop figure: wrk2's correction for coordinated
//                omission) and from when it really began (`service`). Scheduling stops at the phase's
//                duration; logins not answered `graceMs` after that are cut off and counted as failures.
// The client's SRP maths is on OpenSSL (srp-math's modPow), not the package's jsbn, so
// that the load side is not the bottleneck; its proofs are exactly what the package computes (the
// server checks them). A login's latency ends at the welcome; its real start is the connect call.
// The client's ephemeral pairs (a, A = g^a) are made before each phase, outside its time and CPU
// figures, as a client could make them ahead of time: each is used once. They were a third of the
// load's CPU, on the same two cores as the server. If a phase runs out, the rest are made inline
// (counted in `madeInline`).
import { randomBytes, X509Certificate } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { connect, createSecureContext } from 'node:tls'
import { parentPort, workerData } from 'node:worker_threads'
import { encodeFrame, FrameDecoder } from '../dist/protocol/frame.js'
import { RFC5054_2048 } from '../dist/auth/srp-group.js'
import * as srp from '../dist/auth/srp-math.js'
import { generateTotp } from '../dist/auth/totp.js'

const params = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
const { N } = RFC5054_2048
const kNum = BigInt(`0x${srp.k(params).toString('hex')}`)
const STEP_MS = 30_000

// The thread lives for the whole benchmark: its users and OpenSSL's group check (about 0.6 s, at
// the first exponentiation) are paid once, before the first phase; each phase is a message.
const { ca, users, thread } = workerData
let port
let renew = false
let stopAt
let latencies
/** Each login's time from its real start (the same as `latencies` in a closed loop). */
let service
let failures
let next = 0
let madeInline
/** Ephemeral pairs made ahead, each used once. */
const ephemerals = []
/** Each user's last TOTP step used: a code works once (RFC 6238 5.2), so the next must be later. */
const lastStep = new Map()

/**
 * The next user who still has an unused code for this step or the next (the server takes one step
 * either side; not the one before, which may have left the window by the time the code arrives).
 */
function nextUser() {
  const nowStep = Math.floor(Date.now() / STEP_MS)
  for (let tries = 0; tries < users.length; tries++) {
    const user = users[next++ % users.length]
    const step = Math.max((lastStep.get(user.name) ?? -Infinity) + 1, nowStep)
    if (step <= nowStep + 1) {
      lastStep.set(user.name, step)
      return { user, step }
    }
  }
  throw new Error(
    `all ${users.length} users of this thread have used every code of this window: give the benchmark more --users`,
  )
}

// One TLS context for every connection (a `ca` option to connect() would parse it and build a new
// context each time). The server's certificate is pinned by comparing its DER with the one given,
// rather than through Node's chain check and checkServerIdentity: those build a JavaScript copy
// of the certificate on every connection (about 1.5 ms here, more than the server's handshake).
const secureContext = createSecureContext({ minVersion: 'TLSv1.3' })
const pinned = new X509Certificate(ca).raw

/**
 * A new connection, from `localAddress` when given; `signal`, when it aborts, ends it (and refuses
 * to open one).
 */
function open({ localAddress, signal } = {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const socket = connect({ host: '127.0.0.1', port, localAddress, secureContext, rejectUnauthorized: false })
    if (signal) {
      const abort = () => socket.destroy(signal.reason)
      signal.addEventListener('abort', abort, { once: true })
      socket.once('close', () => signal.removeEventListener('abort', abort))
    }
    socket.setNoDelay(true)
    socket.once('secureConnect', () => {
      if (socket.getPeerX509Certificate()?.raw.equals(pinned)) return resolve(socket)
      socket.destroy()
      reject(new Error('not the pinned certificate'))
    })
    socket.once('error', reject)
  })
}

/** Sends a message and resolves with the next one of the expected type (an error message rejects). */
function exchange(socket, decoder, message, expected) {
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      const [reply] = decoder.push(chunk)
      if (reply === undefined) return
      cleanup()
      if (reply.type === expected) resolve(reply)
      else reject(new Error(`${reply.type}${reply.code ? ` ${reply.code}` : ''}`))
    }
    const onEnd = () => {
      cleanup()
      reject(new Error('connection closed'))
    }
    const cleanup = () => {
      socket.off('data', onData)
      socket.off('close', onEnd)
      socket.off('error', onEnd)
    }
    socket.on('data', onData)
    socket.once('close', onEnd)
    socket.once('error', onEnd)
    socket.write(encodeFrame(message))
  })
}

function ephemeral() {
  const a = randomBytes(32)
  return { a, A: srp.A(params, a) }
}

const big = (bytes) => BigInt(`0x${bytes.toString('hex')}`)
const bytesOf = (n) => Buffer.from(n.toString(16).padStart(RFC5054_2048.byteLength * 2, '0'), 'hex')

/** One login over a new connection (`how` goes to open()): when it really began and when it ended. */
async function login(how) {
  const { user, step } = nextUser()
  const code = await generateTotp(user.totp, step * STEP_MS + 1000)
  const started = performance.now()
  const socket = await open(how)
  try {
    const decoder = new FrameDecoder()
    // A = g^a, made ahead
    const { a, A } = ephemerals.pop() ?? (madeInline++, ephemeral())
    const challenge = await exchange(
      socket,
      decoder,
      { type: 'login_start', username: user.name, A: A.toString('hex') },
      'challenge',
    )
    const B = Buffer.from(challenge.B, 'hex')
    const salt = Buffer.from(challenge.salt, 'hex')
    // u = H(A, B); S = (B - k * g^x) ^ (a + u * x), with g^x = v, kept from set-up
    const u = srp.u(params, A, B)
    const base = (((big(B) - kNum * user.v) % N) + N) % N
    const S = bytesOf(srp.modPow(RFC5054_2048, base, bytesOf(big(a) + big(u) * user.x)))
    const K = srp.K(params, S)
    const M1 = srp.M1(params, user.name, salt, A, B, K)
    const proof = await exchange(socket, decoder, { type: 'login_proof', M1: M1.toString('hex') }, 'server_proof')
    if (proof.M2 !== srp.M2(params, A, M1, K).toString('hex')) throw new Error('wrong M2')
    await exchange(socket, decoder, { type: 'login_otp', code }, 'welcome')
    // The server's own KDF work: ten recovery codes hashed with scrypt on its thread pool.
    if (renew) await exchange(socket, decoder, { type: 'recovery_codes_renew' }, 'recovery_codes')
  } finally {
    socket.destroy()
  }
  return { started, ended: performance.now() }
}

async function handshake(how) {
  const started = performance.now()
  const socket = await open(how)
  socket.destroy()
  return { started, ended: performance.now() }
}

function failed(error) {
  const why = String(error?.message ?? error).slice(0, 80)
  failures.set(why, (failures.get(why) ?? 0) + 1)
}

async function loop(index, { connections, ratePerSecond, handshakeOnly }) {
  // With a rate, each loop keeps to its share of it; without, it goes as fast as the server answers.
  const interval = ratePerSecond > 0 ? (connections * 1000) / ratePerSecond : 0
  let due = performance.now() + (interval * index) / connections
  while (performance.now() < stopAt) {
    if (interval > 0) {
      const wait = due - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      due += interval
    }
    try {
      const { started, ended } = await (handshakeOnly ? handshake() : login())
      latencies.push(ended - started)
      service.push(ended - started)
    } catch (error) {
      failed(error)
    }
  }
}

/** What a login still running, or still waiting for its turn, when the grace runs out counts as. */
const NOT_ANSWERED = 'not answered within the phase + grace'
/** The server takes at most this many connections at once from one address (its default). */
const PER_ADDRESS = 64

/**
 * Logins on a fixed schedule (see the top of the file), and once it ends, until every one started
 * has ended or `graceMs` has passed. Resolves when nothing of the phase is left running.
 */
async function openLoop({
  durationMs,
  ratePerSecond,
  phaseOffset = 0,
  maxInFlight = 1024,
  graceMs = 10_000,
  handshakeOnly,
}) {
  // Past PER_ADDRESS connections from one address the server refuses more: this thread's
  // connections come from as many loopback addresses of its own as its cap needs, in turn.
  const addresses = Array.from(
    { length: Math.ceil(maxInFlight / PER_ADDRESS) },
    (_, i) => `127.0.${thread + 1}.${i + 1}`,
  )
  const cutOff = new AbortController()
  // One listener for each connection open at once.
  setMaxListeners(maxInFlight + 1, cutOff.signal)
  const interval = 1000 / ratePerSecond
  const t0 = performance.now()
  const end = t0 + durationMs
  /** Scheduled starts of due logins waiting for one in flight to end, first due first. */
  const waiting = []
  let due = 0
  let inFlight = 0
  let opened = 0
  let scheduling = true
  let ended
  const allEnded = new Promise((resolve) => (ended = resolve))
  let scheduledAll
  const allScheduled = new Promise((resolve) => (scheduledAll = resolve))
  const checkEnded = () => {
    if (!scheduling && inFlight === 0 && waiting.length === 0) ended()
  }
  const start = async (scheduled) => {
    inFlight++
    const how = { localAddress: addresses[opened++ % addresses.length], signal: cutOff.signal }
    try {
      const { started: began, ended: at } = await (handshakeOnly ? handshake(how) : login(how))
      if (!cutOff.signal.aborted) {
        latencies.push(at - scheduled)
        service.push(at - began)
      }
    } catch (error) {
      if (!cutOff.signal.aborted) failed(error)
    }
    inFlight--
    if (waiting.length > 0) start(waiting.shift())
    else checkEnded()
  }
  // Starts every login whose time has come, then sleeps until the next one's.
  const tick = () => {
    const now = performance.now()
    for (;;) {
      // (A rate of 0 schedules nothing: its first time is NaN or Infinity.)
      const scheduled = t0 + (due + phaseOffset) * interval
      if (!(scheduled < end)) {
        scheduling = false
        scheduledAll()
        return checkEnded()
      }
      if (scheduled > now) return setTimeout(tick, scheduled - now)
      due++
      if (inFlight < maxInFlight) start(scheduled)
      else waiting.push(scheduled)
    }
  }
  tick()
  await allScheduled
  // The phase lasts its whole schedule, even when its last login has ended before the end.
  await new Promise((resolve) => setTimeout(resolve, end - performance.now()))
  let graceTimer
  const graceOver = new Promise((resolve) => (graceTimer = setTimeout(resolve, end + graceMs - performance.now())))
  await Promise.race([allEnded, graceOver])
  clearTimeout(graceTimer)
  const unanswered = inFlight + waiting.length
  if (unanswered > 0) {
    failures.set(NOT_ANSWERED, unanswered)
    waiting.length = 0
    // Their connections end now, so that none runs on into the next phase.
    cutOff.abort(new Error(NOT_ANSWERED))
    await allEnded
  }
}

// The users arrive as hex; x and v are needed as numbers.
for (const user of users) {
  user.x = BigInt(`0x${user.x}`)
  user.v = BigInt(`0x${user.v}`)
}
ephemeral() // the group check, now rather than inside the first login
parentPort.on('message', async (phase) => {
  if (phase.prepare !== undefined) {
    while (ephemerals.length < phase.prepare) ephemerals.push(ephemeral())
    return parentPort.postMessage('prepared')
  }
  port = phase.port
  madeInline = 0
  renew = phase.renew ?? false
  stopAt = performance.now() + phase.durationMs
  latencies = []
  service = []
  failures = new Map()
  if (phase.openLoop) await openLoop(phase)
  else await Promise.all(Array.from({ length: phase.connections }, (_, i) => loop(i, phase)))
  parentPort.postMessage({ latencies, service, failures: Object.fromEntries(failures), madeInline })
})
parentPort.postMessage('ready')
