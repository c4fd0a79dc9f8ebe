import { randomInt, scrypt } from 'node:crypto'
import { join } from 'node:path'
import srp from 'secure-remote-password/client.js'
import { randomBytes } from 'node:crypto'
import * as srpMath from '../../src/auth/srp-math.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword, type PasswordKdf } from '../../src/auth/password-stretch.js'
import { generateTotp, secretFromOtpauthUri } from '../../src/auth/totp.js'
import type { CallArgs, CallOp, CallResult } from '../../src/protocol/calls.js'
import type { Role, ServerMessage, ServerMessageOf } from '../../src/protocol/messages.js'
import type { ServerLimits } from '../../src/server/context.js'
import { Conversation, type Answer } from '../../src/server/conversation.js'
import type { GuardLimits } from '../../src/server/guard.js'
import { createMemoryLogger } from '../../src/server/logger.js'
import { issueBootstrapToken, type RegistrationPolicy } from '../../src/server/invites.js'
import { createServerCore, type ServerCore } from '../../src/server/server.js'
import type { BudgetLimits } from '../../src/server/budget.js'
import type { SessionTimes } from '../../src/server/sessions.js'
import { createPgStore, createStore, openPgStore, openStore, type Store } from '../../src/store/index.js'
import { makeDatabase, type TestDatabase } from './postgres.js'
import { makeTempDir } from './env.js'
import { ROOMY_BUDGETS, TEST_KDF, TEST_PASSPHRASE } from './in-process-server.js'
import { noteOutput, noteSecret } from './secrets.js'

// The middle test layer (issue 15, REDESIGN.md section 4): the server's conversations driven in
// this process, with no socket and no CLI. A real store file in a temp directory, the same
// shared context the TLS server runs on (createServerCore), a clock the test moves, and clients
// that speak the protocol as src/client does: SRP-6a with the real client maths, TOTP codes from
// the secret in the enrolment's otpauth URI, session tokens. What a person sees of the CLI is
// the end-to-end layer's (test/e2e); what the server decides is tested here.

export const MINUTE = 60_000
const STEP_MS = 30_000
export const TOKEN = /^sls_[A-Za-z0-9_-]{43}$/

/** The server's clock: it moves only when the test moves it. */
export class TestClock {
  ms: number

  constructor(startMs: number) {
    this.ms = startMs
  }

  readonly now = (): number => this.ms

  advance(ms: number): number {
    this.ms += ms
    return this.ms
  }

  /** The current TOTP step (RFC 6238: 30 s). */
  get step(): number {
    return Math.floor(this.ms / STEP_MS)
  }
}

/** An error frame, as a client would raise it; `ended` when the server closed the connection after it. */
export class ServerError extends Error {
  readonly code: string
  readonly hint: string | undefined
  readonly ended: boolean

  constructor(frame: ServerMessageOf<'error'>, ended: boolean) {
    super(frame.message)
    this.name = 'ServerError'
    this.code = frame.code
    this.hint = frame.hint
    this.ended = ended
  }
}

/** A registered account and what its owner holds: the password, the authenticator, the recovery codes. */
export interface User {
  name: string
  password: string
  /** The current authenticator's secret (base32), as a phone would hold it. */
  totpSecret: string
  recoveryCodes: string[]
  /** The last TOTP step the server accepted for this user (RFC 6238 5.2: the next must be later). */
  lastStep: number
}

/** What a completed login or resume gave the client. */
export type Welcome = ServerMessageOf<'welcome'>

/** A password that is unique to this run (so the secret check can find it), in the policy's shape. */
export function newPassword(): string {
  return `${randomInt(1e12).toString().padStart(12, '0')} violet lantern`
}

/** A fresh SRP salt (what a client makes for a registration or a password change). */
export function newSalt(): string {
  return srp.generateSalt()
}

/**
 * One client's connection: a Conversation fed one message at a time, as the transport
 * (src/server/connection.ts) feeds it. An answer with `end`, or a pushed end, closes it.
 */
export class Peer {
  readonly conversation: Conversation
  readonly address: string
  /** Frames nobody asked for: audit entries, and the error frame of a pushed end. */
  readonly pushed: ServerMessage[] = []
  #closed = false
  #waiters: Array<() => void> = []

  constructor(core: ServerCore, address: string) {
    this.address = address
    this.conversation = new Conversation(core.ctx, address, {
      send: (message) => this.#push(message),
      end: (error) => {
        this.#push(this.conversation.fail(error).message)
        this.#closed = true
      },
    })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Hands one message to the conversation and returns its answer as the transport would get it. */
  async send(message: unknown): Promise<Answer> {
    if (this.#closed) throw new Error('this connection is closed')
    const answer = await this.conversation.handle(message)
    if (answer.end) this.close()
    return answer
  }

  /** Sends and expects an answer of type `expect`; an error frame is thrown as a ServerError. */
  async request<T extends ServerMessage['type']>(message: unknown, expect: T): Promise<ServerMessageOf<T>> {
    const answer = await this.send(message)
    if (answer.message.type === 'error') throw new ServerError(answer.message, answer.end)
    if (answer.message.type !== expect) throw new Error(`expected ${expect}, got ${answer.message.type}`)
    return answer.message as ServerMessageOf<T>
  }

  /** `call {op, args}` -> the result's data; a refusal is thrown as a ServerError. */
  async call<Op extends CallOp>(op: Op, args: CallArgs<Op>): Promise<CallResult<Op>> {
    const result = await this.request({ type: 'call', op, args }, 'result')
    if (result.op !== op) throw new Error(`asked for ${op}, the result is for ${result.op}`)
    return result.data as CallResult<Op>
  }

  /** The ServerError a request must fail with (the test fails when it succeeds). */
  async refusal(message: unknown): Promise<ServerError> {
    const answer = await this.send(message)
    if (answer.message.type !== 'error') throw new Error(`expected an error, got ${answer.message.type}`)
    return new ServerError(answer.message, answer.end)
  }

  /** The ServerError a call must fail with. */
  callRefusal<Op extends CallOp>(op: Op, args: CallArgs<Op>): Promise<ServerError> {
    return this.refusal({ type: 'call', op, args })
  }

  /** Waits for the n-th pushed frame (1-based); fails after `timeoutMs` (a safety net, never the test's condition). */
  async push(n: number, timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs
    while (this.pushed.length < n) {
      if (this.#closed) throw new Error(`the connection closed after ${this.pushed.length} pushed frames`)
      if (Date.now() > deadline) throw new Error(`no pushed frame ${n} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
    return this.pushed[n - 1]!
  }

  /** Waits until the server has ended the connection (a pushed end). */
  async ended(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.#closed) {
      if (Date.now() > deadline) throw new Error(`the connection is still open after ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
  }

  /** The transport's teardown: the connection is gone. */
  close(): void {
    this.#closed = true
    this.conversation.close()
    this.#wake()
  }

  #push(message: ServerMessage): void {
    this.pushed.push(message)
    this.#wake()
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}

/** A logged-in connection, and what its login's welcome said. */
export interface LoggedIn {
  peer: Peer
  welcome: Welcome
  /** The session's bearer token (after a login; noted as a secret). */
  token: string
}

export interface BenchOptions {
  /** Idle and absolute session times (30 min and 12 h unless given). */
  sessions?: Partial<SessionTimes>
  guard?: Partial<GuardLimits>
  registration?: RegistrationPolicy
  limits?: Partial<ServerLimits>
  /** The clock's start (ms); it is moved to the middle of a 30 s step. */
  startMs?: number
  /** Hash recovery codes at their real cost (default: the least, see cheapKdf). */
  realRecoveryKdf?: boolean
  /** Refusal and registration budgets (default: none that a test not about them would reach). */
  budgets?: Partial<BudgetLimits>
  /**
   * The store on PostgreSQL, in a database of its own made here and dropped at stop, instead of a
   * file (test/helpers/postgres.ts must find a server).
   */
  postgres?: boolean
}

/** What is the same for every conversation, and how many clients have spoken. */
interface Core {
  core: ServerCore
  store: Store
  logger: ReturnType<typeof createMemoryLogger>
}

/**
 * x = H(s, H(I | ':' | P')) with P' = scrypt(password, s), as src/auth/srp-client.ts derives it.
 * P' (64 MiB of scrypt) is kept per (password, salt): a login repeats its registration's
 * stretch, and users made in bulk share one password and salt, so it runs once for all of them.
 */
const stretched = new Map<string, Promise<string>>()
async function privateKey(opts: { salt: string; username: string; password: string; kdf: PasswordKdf }) {
  const key = JSON.stringify([opts.salt, opts.password, opts.kdf])
  const stretch = stretched.get(key) ?? stretchPassword(opts.password.normalize('NFKC'), opts.salt, opts.kdf)
  stretched.set(key, stretch)
  return srp.derivePrivateKey(opts.salt, opts.username, await stretch)
}

/**
 * The client's side of an SRP-6a login, as the secure-remote-password client computes it, with
 * the modular exponentiations on OpenSSL (src/auth/srp-math.ts, which the interop tests hold to
 * the package byte for byte): the package's own maths (jsbn) costs about 0.12 s a login, which
 * made a race of three logins fifty times 20 s of one core. The server checks M1 and the client
 * M2, so a slip here fails every login, never passes a wrong one.
 */
const SRP = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' } as const
const int = (bytes: Buffer | string) => BigInt(`0x${Buffer.isBuffer(bytes) ? bytes.toString('hex') : bytes}`)
const bytesOf = (n: bigint) => {
  const hex = n.toString(16)
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex')
}

/** v = g^x % N on OpenSSL, as the package's deriveVerifier makes it. */
export function verifierOf(x: string): string {
  return srpMath.v(SRP, bytesOf(int(x))).toString('hex')
}

/** a random, A = g^a % N. */
export function startLogin(): { a: Buffer; A: string } {
  const a = randomBytes(32)
  return { a, A: srpMath.A(SRP, a).toString('hex') }
}

/** u = H(A, B), S = (B - k g^x)^(a + u x) % N, K = H(S), M1, and the M2 the server must answer. */
export function clientSession(opts: {
  ephemeral: { a: Buffer; A: string }
  salt: string
  B: string
  username: string
  x: string
}) {
  const { N, g } = SRP.group
  const [A, B, s, x] = [
    Buffer.from(opts.ephemeral.A, 'hex'),
    Buffer.from(opts.B, 'hex'),
    Buffer.from(opts.salt, 'hex'),
    int(opts.x),
  ]
  const u = srpMath.u(SRP, A, B)
  const kgx = (int(srpMath.k(SRP)) * srpMath.modPow(SRP.group, g, bytesOf(x))) % N
  const base = (((int(B) - kgx) % N) + N) % N
  const S = srpMath.modPow(SRP.group, base, bytesOf(int(opts.ephemeral.a) + int(u) * x))
  const K = srpMath.K(SRP, bytesOf(S))
  const M1 = srpMath.M1(SRP, opts.username, s, A, B, K)
  return { M1: M1.toString('hex'), M2: srpMath.M2(SRP, A, M1, K).toString('hex') }
}

/**
 * The recovery-code hashes at scrypt's least cost (N = 2): a registration otherwise spends ten
 * 16 MiB scrypt calls on the server, and nothing at this layer is about that cost (the unit tests
 * and the end-to-end layer run the real one). The codes are hashed and matched as before.
 */
const cheapKdf = (input: Buffer, salt: Buffer, cost: { r: number; p: number }): Promise<Buffer> =>
  new Promise((resolve, reject) =>
    scrypt(input, salt, 32, { N: 2, r: cost.r, p: cost.p }, (error, key) => (error ? reject(error) : resolve(key))),
  )

/**
 * One server core on a temp store, its clock, and the users registered on it. `stop()` closes
 * everything it started and removes the directory.
 */
export class Bench {
  readonly dir: string
  readonly clock: TestClock
  readonly users = new Map<string, User>()
  #options: BenchOptions
  readonly #remove: () => Promise<void>
  #core: Core
  /** More cores on the same store (addCore): what separate server processes on one database are. */
  #others: Core[] = []
  #peers = new Set<Peer>()
  #bootstrapToken: string | undefined
  #database: TestDatabase | undefined
  /** What users made in bulk share (see privateKey): they only need to exist. */
  readonly #bulk = { password: newPassword(), salt: newSalt() }

  private constructor(dir: string, remove: () => Promise<void>, clock: TestClock, options: BenchOptions, core: Core) {
    this.dir = dir
    this.#remove = remove
    this.clock = clock
    this.#options = options
    this.#core = core
  }

  static async start(options: BenchOptions = {}): Promise<Bench> {
    noteSecret('passphrase', TEST_PASSPHRASE)
    const { dir, remove } = await makeTempDir('conversation')
    const start = options.startMs ?? Date.now()
    const clock = new TestClock(Math.floor(start / STEP_MS) * STEP_MS + STEP_MS / 2)
    const database = options.postgres ? await makeDatabase() : undefined
    const removeAll = async () => {
      await database?.drop()
      await remove()
    }
    const store = database
      ? await createPgStore(database.url, TEST_PASSPHRASE, { kdf: TEST_KDF })
      : await createStore(join(dir, 'test.store'), TEST_PASSPHRASE, { kdf: TEST_KDF })
    try {
      const core = await Bench.#startCore(store, clock, options)
      const bench = new Bench(dir, removeAll, clock, options, core)
      bench.#database = database
      const bootstrap = await issueBootstrapToken(store, clock.now(), core.core.ctx.randomBytes)
      if (bootstrap) {
        noteSecret('bootstrap token', bootstrap.token)
        bench.#bootstrapToken = bootstrap.token
      }
      return bench
    } catch (error) {
      await store.close()
      await removeAll()
      throw error
    }
  }

  /** The store opened again (after the bench closed it): the file, or the bench's database. */
  #reopen(): Promise<Store> {
    return this.#database
      ? openPgStore(this.#database.url, TEST_PASSPHRASE)
      : openStore(this.storePath, TEST_PASSPHRASE)
  }

  static async #startCore(store: Store, clock: TestClock, options: BenchOptions): Promise<Core> {
    const logger = createMemoryLogger()
    const core = await createServerCore({
      store,
      logger,
      now: clock.now,
      // A failure's wait is the guard's to compute (and log); the tests do not sit through it.
      sleep: () => Promise.resolve(),
      // The KDF thread at the process's own priority: at nice 19 the other test files starve it.
      kdfNice: 0,
      ...(options.sessions ? { sessions: options.sessions } : {}),
      ...(options.guard ? { guard: options.guard } : {}),
      ...(options.registration ? { registration: options.registration } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      budgets: options.budgets ?? ROOMY_BUDGETS,
    })
    if (!options.realRecoveryKdf) core.ctx.kdf = cheapKdf
    return { core, store, logger }
  }

  get core(): ServerCore {
    return this.#core.core
  }

  /**
   * Another server core on this bench's store, with its own logger and everything else of its
   * own, as a second server process on one database: the store object is all the cores share
   * (and the clock, which real processes share through the machine's). Stopped with the bench.
   */
  async addCore(): Promise<ServerCore> {
    const core = await Bench.#startCore(this.#core.store, this.clock, this.#options)
    this.#others.push(core)
    return core.core
  }

  get store(): Store {
    return this.#core.store
  }

  get storePath(): string {
    return join(this.dir, 'test.store')
  }

  /** Every log entry the server wrote since this core started (and the cores addCore made). */
  get log(): Array<{ level: string; event: string; fields: Record<string, unknown> }> {
    return [this.#core, ...this.#others].flatMap((core) => core.logger.entries)
  }

  /** The single-use token for the first system_admin (issued at start, while the store has none). */
  get bootstrapToken(): string {
    if (!this.#bootstrapToken) throw new Error('this store had a system_admin at start: no bootstrap token')
    return this.#bootstrapToken
  }

  /** A new client connection from `address`, to `core` (the first one unless given). */
  connect(address = '127.0.0.1', core: ServerCore = this.core): Peer {
    const peer = new Peer(core, address)
    this.#peers.add(peer)
    return peer
  }

  /**
   * A code of `secret` for a step after `lastStep` (RFC 6238 5.2): the clock's step, or the next
   * (the server accepts one step either side); only when both are spent does the clock move on.
   */
  async nextCode(secret: string, lastStep: number): Promise<{ code: string; step: number }> {
    while (lastStep > this.clock.step) this.clock.advance(STEP_MS)
    const step = Math.max(lastStep + 1, this.clock.step)
    return { code: await codeAt(secret, step), step }
  }

  /** Spends a code of `user`'s authenticator and records its step as used. */
  async codeFor(user: User): Promise<string> {
    const { code, step } = await this.nextCode(user.totpSecret, user.lastStep)
    user.lastStep = step
    return code
  }

  /**
   * register_start (salt and verifier from the password, stretched as the client does) ->
   * enrol; register_confirm with a code from the URI's secret -> registered. `token`: an invite
   * or the bootstrap token.
   */
  async register(
    name: string,
    opts: { token?: string; password?: string; address?: string; bulk?: boolean; core?: ServerCore } = {},
  ): Promise<User> {
    const password = opts.password ?? (opts.bulk ? this.#bulk.password : newPassword())
    noteSecret('password', password)
    const peer = this.connect(opts.address, opts.core)
    try {
      const salt = opts.bulk && opts.password === undefined ? this.#bulk.salt : newSalt()
      const { otpauthUri } = await peer.request(
        {
          type: 'register_start',
          username: name,
          ...(await this.credentials(name, password, salt)),
          ...(opts.token !== undefined ? { token: opts.token } : {}),
        },
        'enrol',
      )
      const totpSecret = secretFromOtpauthUri(otpauthUri)!
      noteSecret('TOTP secret', totpSecret)
      const { code, step } = await this.nextCode(totpSecret, -1)
      const { recoveryCodes } = await peer.request({ type: 'register_confirm', code }, 'registered')
      for (const recoveryCode of recoveryCodes) noteSecret('recovery code', recoveryCode)
      const user: User = { name, password, totpSecret, recoveryCodes, lastStep: step }
      this.users.set(name, user)
      return user
    } finally {
      peer.close()
    }
  }

  /** What `passwd` sends for a new password: a salt, the verifier, the stretching parameters. */
  async credentials(
    name: string,
    password: string,
    salt = newSalt(),
  ): Promise<{ salt: string; verifier: string; kdf: PasswordKdf }> {
    noteSecret('password', password)
    const x = await privateKey({ salt, username: name, password, kdf: DEFAULT_PASSWORD_KDF })
    // v = g^x % N, as the package's deriveVerifier makes it, on OpenSSL (see clientSession).
    return { salt, verifier: verifierOf(x), kdf: DEFAULT_PASSWORD_KDF }
  }

  /** The first system_admin, with the bootstrap token. */
  registerBootstrap(name: string): Promise<User> {
    return this.register(name, { token: this.bootstrapToken })
  }

  /** An invite made by `by` for this name and role, then the registration. */
  async registerInvited(by: Peer, name: string, role: Role, opts: { bulk?: boolean } = {}): Promise<User> {
    const { token } = await by.call('invite', { role, user: name, ttlSeconds: 3600 })
    noteSecret('invite', token)
    return this.register(name, { token, ...opts })
  }

  /**
   * login_start -> challenge -> login_proof (M1 from the password) -> server_proof, checked as
   * the client checks it (M2). Leaves the connection waiting for the second factor.
   */
  async prove(
    user: Pick<User, 'name' | 'password'>,
    opts: { password?: string; peer?: Peer; device?: string } = {},
  ): Promise<{ peer: Peer; proof: ServerMessageOf<'server_proof'> }> {
    const peer = opts.peer ?? this.connect()
    const ephemeral = startLogin()
    const { salt, kdf, B } = await peer.request(
      { type: 'login_start', username: user.name, A: ephemeral.A, ...(opts.device ? { device: opts.device } : {}) },
      'challenge',
    )
    const password = opts.password ?? user.password
    noteSecret('password', password)
    const x = await privateKey({ salt, username: user.name, password, kdf })
    const session = clientSession({ ephemeral, salt, B, username: user.name, x })
    const proof = await peer.request({ type: 'login_proof', M1: session.M1 }, 'server_proof')
    if (proof.M2 !== session.M2) throw new Error('the server did not prove that it holds the verifier (M2)')
    return { peer, proof }
  }

  /** A full login with password and TOTP code: the connection is authenticated. */
  async login(user: User, opts: { peer?: Peer; address?: string; device?: string } = {}): Promise<LoggedIn> {
    const { peer } = await this.prove(user, {
      peer: opts.peer ?? this.connect(opts.address),
      ...(opts.device ? { device: opts.device } : {}),
    })
    return this.finish(peer, await peer.request({ type: 'login_otp', code: await this.codeFor(user) }, 'welcome'))
  }

  /** A login with a recovery code in place of the TOTP code. */
  async loginWithRecoveryCode(user: User, code: string): Promise<LoggedIn> {
    const { peer } = await this.prove(user)
    return this.finish(peer, await peer.request({ type: 'login_recovery', code }, 'welcome'))
  }

  /** A connection running as a saved session (`session_resume`), as every CLI command but login does. */
  async resume(token: string, address?: string, core?: ServerCore): Promise<{ peer: Peer; welcome: Welcome }> {
    const peer = this.connect(address, core)
    const welcome = await peer.request({ type: 'session_resume', token }, 'welcome')
    return { peer, welcome }
  }

  finish(peer: Peer, welcome: Welcome): LoggedIn {
    if (welcome.token === undefined) throw new Error('a login welcome without a token')
    noteSecret('session token', welcome.token)
    if (welcome.device !== undefined) noteSecret('device key', welcome.device)
    return { peer, welcome, token: welcome.token }
  }

  /**
   * The server stops and starts again on the same store file: the conversations end, the store
   * is closed and opened again with its passphrase, and a new core loads from it.
   */
  async restart(): Promise<void> {
    await this.#stopCore()
    const store = await this.#reopen()
    this.#core = await Bench.#startCore(store, this.clock, this.#options)
  }

  /**
   * A restart as the server process makes one (src/server/server.ts, startServer): a new core on
   * the same store, under `registration` when given (the bench's policy otherwise; undefined in
   * it: the default), and a fresh bootstrap token while the store has no system_admin, which
   * replaces the old one. Returns the new token, or undefined when it made none (then
   * `bootstrapToken` throws). Later restarts keep the policy given here.
   */
  async restartServer(opts: { registration?: RegistrationPolicy | undefined } = {}): Promise<string | undefined> {
    if ('registration' in opts) this.#options = { ...this.#options, registration: opts.registration }
    await this.restart()
    return this.newBootstrapToken()
  }

  /** What a server start does on a store with no system_admin: a fresh bootstrap token (replacing the old one). */
  async newBootstrapToken(): Promise<string | undefined> {
    const bootstrap = await issueBootstrapToken(this.store, this.clock.now(), this.core.ctx.randomBytes)
    if (bootstrap) noteSecret('bootstrap token', bootstrap.token)
    this.#bootstrapToken = bootstrap?.token
    return bootstrap?.token
  }

  /** Closes every connection, the core and the store, and deletes the directory. */
  async stop(): Promise<void> {
    try {
      await this.#stopCore()
    } finally {
      await this.#remove()
    }
  }

  /** Between a stop and a start, with no server running: `work` gets the store (e.g. to damage it). */
  async offline<T>(work: (store: Store) => Promise<T>): Promise<T> {
    await this.#stopCore()
    const store = await this.#reopen()
    try {
      return await work(store)
    } finally {
      await store.close()
      const reopened = await this.#reopen()
      this.#core = await Bench.#startCore(reopened, this.clock, this.#options)
    }
  }

  async #stopCore(): Promise<void> {
    for (const peer of this.#peers) peer.close()
    this.#peers.clear()
    for (const other of this.#others.splice(0)) {
      await other.core.close()
      noteOutput('conversation bench', 'log', other.logger.entries.map((e) => JSON.stringify(e)).join('\n'))
    }
    const { core, store, logger } = this.#core
    await core.close()
    noteOutput('conversation bench', 'log', logger.entries.map((e) => JSON.stringify(e)).join('\n'))
    await store.close()
  }
}

/** The RFC 6238 code of `secret` in the middle of `step`. */
export function codeAt(secret: string, step: number): Promise<string> {
  return generateTotp(secret, step * STEP_MS + STEP_MS / 2)
}
