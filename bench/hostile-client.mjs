// The attacker of the login benchmark's hostile phases (bench/login.mjs), as a process of its own
// at the same CPU priority as the server and the load: what it costs the server is what is shown.
//   registrations  from 127.0.0.2, whole registrations back to back at full speed on one
//                  connection (a refused register_start leaves it ready): register_start, the
//                  enrolment code from the otpauth URI, register_confirm. Past the address's
//                  budget each start is answered ERR_RATE_LIMITED, and it goes on asking.
//   never-read     from 127.0.0.3, 30 MB of pipelined jwks_get on a connection it never reads,
//                  then again on a new one once the server has ended it, until stopped.
// Messages: {mode, port} starts; 'stop' ends it, and it answers {counts} and exits.
import { randomBytes } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import { connect } from 'node:tls'
import { encodeFrame, FrameDecoder } from '../dist/protocol/frame.js'
import { DEFAULT_PASSWORD_KDF } from '../dist/auth/password-stretch.js'
import { RFC5054_2048 } from '../dist/auth/srp-group.js'
import * as srp from '../dist/auth/srp-math.js'
import { generateTotp, secretFromOtpauthUri } from '../dist/auth/totp.js'

const params = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
let stopped = false
const counts = {}
const count = (what) => (counts[what] = (counts[what] ?? 0) + 1)

function open(port, localAddress) {
  return new Promise((resolve, reject) => {
    const socket = connect({
      socket: netConnect({ host: '127.0.0.1', port, localAddress }),
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    })
    socket.once('secureConnect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Frames of `socket` one at a time, as promises. */
function reader(socket) {
  const decoder = new FrameDecoder()
  const frames = []
  const waiting = []
  let closed = false
  socket.on('data', (chunk) => {
    for (const frame of decoder.push(chunk)) (waiting.shift() ?? ((f) => frames.push(f)))(frame)
  })
  socket.on('close', () => {
    closed = true
    for (const wake of waiting.splice(0)) wake(undefined)
  })
  socket.on('error', () => {})
  return () =>
    frames.length > 0 ? Promise.resolve(frames.shift()) : closed ? undefined : new Promise((r) => waiting.push(r))
}

async function registrations(port) {
  // One salt and verifier for every name: the server cannot tell, and this process skips the maths.
  const salt = randomBytes(32).toString('hex')
  const verifier = srp.v(params, randomBytes(32)).toString('hex')
  let n = 0
  while (!stopped) {
    const socket = await open(port, '127.0.0.2')
    const next = reader(socket)
    try {
      while (!stopped) {
        const username = `flood${process.pid}x${n++}`
        socket.write(encodeFrame({ type: 'register_start', username, salt, verifier, kdf: DEFAULT_PASSWORD_KDF }))
        const answer = await next()
        if (answer === undefined) break
        if (answer.type === 'error') {
          count(answer.code)
          continue
        }
        const secret = secretFromOtpauthUri(answer.otpauthUri)
        socket.write(encodeFrame({ type: 'register_confirm', code: await generateTotp(secret, Date.now()) }))
        const done = await next()
        if (done === undefined) break
        count(done.type === 'registered' ? 'registered' : done.code)
      }
    } finally {
      socket.destroy()
    }
  }
}

async function neverRead(port) {
  const frame = encodeFrame({ type: 'jwks_get' })
  const flood = Buffer.alloc(Math.ceil((30 * 1024 * 1024) / frame.length) * frame.length, frame)
  while (!stopped) {
    const socket = await open(port, '127.0.0.3')
    socket.on('error', () => {})
    socket.pause()
    const closed = new Promise((resolve) => socket.once('close', resolve))
    socket.write(flood)
    count('connections')
    await Promise.race([closed, new Promise((resolve) => setInterval(() => stopped && resolve(), 50).unref())])
    socket.destroy()
  }
}

process.on('message', async (message) => {
  if (message === 'stop') {
    stopped = true
    return
  }
  let error
  try {
    await (message.mode === 'registrations' ? registrations(message.port) : neverRead(message.port))
  } catch (failure) {
    error = String(failure?.message ?? failure).slice(0, 200)
  }
  while (!stopped) await new Promise((resolve) => setTimeout(resolve, 20))
  process.send({ counts, error }, () => process.exit(0))
})
