import { vi } from 'vitest'
import { main } from '../../src/cli/main.js'
import { randomBytes, randomInt } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { secretFromOtpauthUri } from '../../src/auth/totp.js'
import { call } from '../../src/client/calls.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticateWith, resumeSession, submitOtp } from '../../src/client/login.js'
import { derivePrivateKey } from '../../src/auth/srp-client.js'
import type { PasswordKdf } from '../../src/auth/password-stretch.js'
import { saveSession } from '../../src/client/session.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import type { CallArgs, CallOp, CallResult } from '../../src/protocol/calls.js'
import { runCli, runCliToEnd, type CliRun } from './cli.js'
import { FileClock } from './clock.js'
import { makeTempDir } from './env.js'
import { checkJsonOutput } from './json-events.js'
import { noteIssuedSecrets, noteOutput, noteSecret } from './secrets.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from './server-process.js'
import { openStoreOf, storeOf } from './store-kind.js'
import type { Store } from '../../src/store/index.js'
import { oathtoolCode } from './tools.js'

// Accounts on a real server process, driven through the real CLI (issue 6): a server with a
// FileClock and --bootstrap-token-file, users registered by bootstrap token, invite or open
// registration, each user with its own SECURELOGIN_HOME (so saved sessions never collide), and
// commands run as a user with their output parsed.

const TOTP_STEP_MS = 30_000
let inProcessRuns = 0

/**
 * SRP's x per (name, password, salt): a direct login repeats the same 64 MiB stretch every time,
 * and the tests make many (setup, not what is under test).
 */
const xs = new Map<string, Promise<string>>()
const cachedX =
  (username: string, password: string) =>
  ({ salt, kdf }: { salt: string; kdf: PasswordKdf }): Promise<string> => {
    const key = JSON.stringify([username, password, salt, kdf])
    const x = xs.get(key) ?? derivePrivateKey({ salt, username, password, kdf })
    xs.set(key, x)
    return x
  }

export type Role = 'regular_user' | 'admin' | 'system_admin'

export interface Account {
  name: string
  password: string
  /** The current authenticator's secret (base32), as a phone would hold it. */
  totpSecret: string
  recoveryCodes: string[]
  /** This user's SECURELOGIN_HOME: their saved session lives under it. */
  home: string
  /** The last TOTP step the server accepted for this user (RFC 6238 5.2: the next must be later). */
  lastStep: number
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** Every JSON line of stdout. */
  events: Array<Record<string, any>>
  /** The last JSON line of stdout, if any. */
  json: Record<string, any> | undefined
  /** The JSON error line on stderr, if any. */
  error: { event: 'error'; code: string; message: string; hint?: string } | undefined
}

export function parseResult(result: { code: number | null; stdout: string; stderr: string }): CliResult {
  const parse = (text: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, any>)
  const events = parse(result.stdout)
  const error = parse(result.stderr).find((event) => event['event'] === 'error') as CliResult['error']
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, events, json: events.at(-1), error }
}

/** Describes a result for a failed assertion, without its stdout (which may hold issued secrets). */
export function describeResult(result: CliResult): string {
  return `exit ${result.code}, error ${result.error ? `${result.error.code}: ${result.error.message}` : 'none'}, stdout events ${result.events.map((e) => e['event']).join(',') || 'none'}`
}

/**
 * A password that passes the policy and is unique to this test run (so the secret check can find
 * it). Digits, not hex: hex letters spell user names such as "ada" or "bea" now and then, and the
 * policy refuses a password that contains the user's name.
 */
export function newPassword(): string {
  return `${randomInt(1e12).toString().padStart(12, '0')} violet lantern`
}

export interface LabOptions {
  /** Extra `securelogin server` flags, e.g. ['--registration', 'open', '--session-idle', '30m']. */
  serverArgs?: string[]
  /** The TOTP clock's start (ms); it is moved to the middle of a 30 s step, so a code for the next step is within the window. */
  startMs?: number
}

/** One server process on port 0 with a file clock, and the accounts registered on it. */
export class Lab {
  readonly dir: string
  readonly clock: FileClock
  readonly passphrase: string
  readonly passphraseFile: string
  readonly bootstrapTokenFile: string
  readonly accounts = new Map<string, Account>()
  server!: ServerProcess
  #serverArgs: string[]
  readonly #remove: () => Promise<void>

  private constructor(
    dir: string,
    remove: () => Promise<void>,
    passphrase: string,
    passphraseFile: string,
    clock: FileClock,
    serverArgs: string[],
  ) {
    this.dir = dir
    this.#remove = remove
    this.passphrase = passphrase
    this.passphraseFile = passphraseFile
    this.clock = clock
    this.bootstrapTokenFile = join(dir, 'bootstrap-token')
    this.#serverArgs = serverArgs
  }

  static async start(prefix: string, opts: LabOptions = {}): Promise<Lab> {
    const { dir, remove } = await makeTempDir(prefix)
    const passphrase = `${prefix} lab passphrase ${randomBytes(4).toString('hex')}`
    const passphraseFile = await writePassphraseFile(dir, passphrase)
    const start = opts.startMs ?? Date.now()
    const clock = new FileClock(dir, Math.floor(start / TOTP_STEP_MS) * TOTP_STEP_MS + TOTP_STEP_MS / 2)
    const lab = new Lab(dir, remove, passphrase, passphraseFile, clock, opts.serverArgs ?? [])
    await lab.startServer()
    return lab
  }

  get port(): number {
    return this.server.port
  }

  /**
   * The server's `--store`, for store commands: its file, or its database's URL when this file
   * runs on PostgreSQL (test/helpers/store-kind.ts).
   */
  get storePath(): string {
    return storeOf(this.dir)
  }

  /** The server's store, opened in this process whatever its kind (a file store's server must be stopped). */
  openStore(): Promise<Store> {
    return openStoreOf(this.dir, this.passphrase)
  }

  get certPath(): string {
    return join(this.dir, 'certs', 'server.crt')
  }

  /**
   * Starts the server, or restarts it (after stopServer) on the same port, so the sessions
   * clients saved for HOST:PORT still apply; `serverArgs` replaces the flags given so far.
   */
  async startServer(serverArgs?: string[]): Promise<ServerProcess> {
    if (serverArgs) this.#serverArgs = serverArgs
    const port = this.server?.port
    this.server = await startServerProcess(
      this.dir,
      this.passphraseFile,
      ['--clock-file', this.clock.file, '--bootstrap-token-file', this.bootstrapTokenFile, ...this.#serverArgs],
      port !== undefined ? { port } : {},
    )
    return this.server
  }

  async stopServer(): Promise<number | null> {
    return this.server.stop()
  }

  /** Stops the server and deletes the directory (afterAll; CLI runs are the caller's: killAllCli). */
  async close(): Promise<void> {
    await this.server?.stop()
    await this.#remove()
  }

  /** The server's bootstrap token, from the file it wrote; noted as a secret. */
  async bootstrapToken(): Promise<string> {
    const token = (await readFile(this.bootstrapTokenFile, 'utf8')).trim()
    noteSecret('bootstrap token', token)
    return token
  }

  /** The flags that point a client at this server: address, pinned certificate, JSON output. */
  clientArgs(): string[] {
    return ['--server', `127.0.0.1:${this.port}`, '--ca', this.certPath, '--json']
  }

  homeOf(name: string): string {
    return join(this.dir, 'homes', name)
  }

  /** Where a client keeps its saved session for this server. */
  sessionFile(home: string): string {
    return join(home, 'sessions', `127.0.0.1_${this.port}.json`)
  }

  /** The current TOTP step of the server's clock. */
  get step(): number {
    return Math.floor(this.clock.ms / TOTP_STEP_MS)
  }

  /**
   * A code for a step this user has not used yet (RFC 6238 5.2): the clock's step, or the next
   * (the server accepts one step either side); only when both are spent does the clock move.
   */
  nextCode(secret: string, lastStep: number): { code: string; step: number } {
    while (lastStep > this.step) this.clock.nextStep()
    const step = Math.max(lastStep + 1, this.step)
    return { code: oathtoolCode(secret, step * 30 + 15), step }
  }

  /** Spends a code of `account`'s authenticator and records the step as used. */
  codeFor(account: Account): string {
    const { code, step } = this.nextCode(account.totpSecret, account.lastStep)
    account.lastStep = step
    return code
  }

  /** Runs the CLI with this server's client flags, as the client whose home is `home`. */
  async runIn(home: string, args: string[], stdin = ''): Promise<CliResult> {
    await mkdir(home, { recursive: true, mode: 0o700 })
    return parseResult(await runCliToEnd([...args, ...this.clientArgs()], stdin, { env: { SECURELOGIN_HOME: home } }))
  }

  /**
   * `securelogin ARGS` with this server's client flags through the CLI's main() in this process,
   * as the client whose home is `home`: what it printed and the exit code it set. A CLI process
   * costs about half a second; the same argument parsing, handler and error reporting run here.
   */
  async runHere(home: string, args: string[]): Promise<CliResult> {
    const source = `securelogin ${args.slice(0, 2).join(' ')} (in this process, run ${++inProcessRuns})`
    const saved = { home: process.env['SECURELOGIN_HOME'], exitCode: process.exitCode }
    let stdout = ''
    let stderr = ''
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true))
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true))
    process.env['SECURELOGIN_HOME'] = home
    process.exitCode = 0
    try {
      await main([...args, ...this.clientArgs()])
      return parseResult({ code: Number(process.exitCode), stdout, stderr })
    } finally {
      out.mockRestore()
      err.mockRestore()
      if (saved.home === undefined) delete process.env['SECURELOGIN_HOME']
      else process.env['SECURELOGIN_HOME'] = saved.home
      process.exitCode = saved.exitCode
      noteIssuedSecrets(source, stdout)
      noteOutput(source, 'stdout', stdout)
      noteOutput(source, 'stderr', stderr)
      checkJsonOutput(source, [...args, ...this.clientArgs()], stdout, stderr)
    }
  }

  /** Starts the CLI in `home` and leaves it running: for dialogues (enrolment) and `--follow`. */
  async startIn(home: string, args: string[]): Promise<CliRun> {
    await mkdir(home, { recursive: true, mode: 0o700 })
    return runCli([...args, ...this.clientArgs()], { env: { SECURELOGIN_HOME: home } })
  }

  /**
   * A command that enrols a new authenticator for `account` (`reset-2fa`, a login after `admin
   * reset-2fa`), run in `home`: the password on stdin, the `enrol` line read, a code from its
   * secret written back. On success the account holds the new authenticator.
   */
  async enrolThrough(
    account: Account,
    home: string,
    args: string[],
  ): Promise<{ result: CliResult; secret: string | undefined }> {
    const run = await this.startIn(home, args)
    run.write(account.password)
    let enrol: Record<string, any>
    try {
      enrol = JSON.parse(await run.nextLine())
    } catch {
      return { result: parseResult(await run.done), secret: undefined }
    }
    // The CLI helper notes it as a secret, shown only in this run's own stdout.
    const secret = secretFromOtpauthUri(enrol['otpauthUri'])
    if (enrol['event'] !== 'enrol' || !secret) throw new Error(`expected an enrol line, got event ${enrol['event']}`)
    // Past every step this account has used: the server's replay floor is the highest of them.
    const { code, step } = this.nextCode(secret, account.lastStep)
    run.write(code)
    const result = parseResult(await run.done)
    if (result.code === 0) {
      account.totpSecret = secret
      account.lastStep = step
    }
    return { result, secret }
  }

  /** Runs the CLI as `who` (their own home, so their saved session). */
  run(who: Account | string, args: string[], stdin = ''): Promise<CliResult> {
    return this.runIn(typeof who === 'string' ? this.homeOf(who) : who.home, args, stdin)
  }

  /**
   * `securelogin register --password-stdin --json` end to end: password, the enrolment's code from
   * oathtool, the ten recovery codes. Throws (with the CLI's error) when the server refuses.
   */
  async register(
    name: string,
    opts: { invite?: string; bootstrapToken?: string; password?: string } = {},
  ): Promise<Account> {
    const result = await this.tryRegister(name, opts)
    if (!result.account) throw new Error(`register ${name} failed: ${describeResult(result.result)}`)
    return result.account
  }

  /** As register, but returns a refusal instead of throwing (for tests of the registration policy). */
  async tryRegister(
    name: string,
    opts: { invite?: string; bootstrapToken?: string; password?: string } = {},
  ): Promise<{ result: CliResult; account?: Account }> {
    const password = opts.password ?? newPassword()
    const home = this.homeOf(name)
    await mkdir(home, { recursive: true, mode: 0o700 })
    const tokenArgs =
      opts.invite !== undefined
        ? ['--invite', opts.invite]
        : opts.bootstrapToken !== undefined
          ? ['--bootstrap-token', opts.bootstrapToken]
          : []
    const run = runCli(['register', ...this.clientArgs(), '--user', name, '--password-stdin', ...tokenArgs], {
      env: { SECURELOGIN_HOME: home },
    })
    run.write(password)
    let enrol: Record<string, any>
    try {
      enrol = JSON.parse(await run.nextLine())
    } catch {
      const done = await run.done
      return { result: parseResult(done) }
    }
    const totpSecret = secretFromOtpauthUri(enrol['otpauthUri'])!
    const { code, step } = this.nextCode(totpSecret, -1)
    run.write(code)
    const result = parseResult(await run.done)
    if (result.code !== 0) return { result }
    const account: Account = {
      name,
      password,
      totpSecret,
      recoveryCodes: result.json!['recoveryCodes'],
      home,
      lastStep: step,
    }
    this.accounts.set(name, account)
    return { result, account }
  }

  /**
   * Setup in bulk: the same registration through the client library in this process (no CLI
   * start-up per account). For users a test only needs to exist; what is under test goes
   * through the CLI.
   */
  async registerDirect(name: string, opts: { invite?: string; password?: string } = {}): Promise<Account> {
    const password = opts.password ?? newPassword()
    noteSecret('password', password)
    const conn = await this.connect()
    try {
      const enrolment = await startRegistration(conn, name, password, opts.invite)
      noteSecret('TOTP secret', enrolment.secret)
      const { code, step } = this.nextCode(enrolment.secret, -1)
      const { recoveryCodes } = await confirmEnrolment(conn, code)
      for (const recoveryCode of recoveryCodes) noteSecret('recovery code', recoveryCode)
      const account: Account = {
        name,
        password,
        totpSecret: enrolment.secret,
        recoveryCodes,
        home: this.homeOf(name),
        lastStep: step,
      }
      await mkdir(account.home, { recursive: true, mode: 0o700 })
      this.accounts.set(name, account)
      return account
    } finally {
      conn.close()
    }
  }

  /**
   * Setup in bulk: a login in this process whose session is saved in `home` (default: the
   * account's own) exactly as `securelogin login` saves it.
   */
  async loginDirect(account: Account, opts: { home?: string } = {}): Promise<void> {
    const conn = await this.connect()
    try {
      await authenticateWith(conn, account.name, cachedX(account.name, account.password))
      const result = await submitOtp(conn, this.codeFor(account))
      noteSecret('session token', result.token!)
      const { user, role, sessionId, token, expiresAt, idleExpiresAt } = result
      await saveSession(opts.home ?? account.home, {
        server: `127.0.0.1:${this.port}`,
        user,
        role,
        sessionId,
        token: token!,
        expiresAt,
        idleExpiresAt,
      })
    } finally {
      conn.close()
    }
  }

  /** A TLS connection to this server, pinned to its certificate. */
  async connect(): Promise<ServerConnection> {
    return ServerConnection.open({
      host: '127.0.0.1',
      port: this.port,
      trust: { kind: 'ca', ca: await readFile(this.certPath), caFile: this.certPath },
    })
  }

  /**
   * Setup in bulk: calls made in this process on the session saved for `who` (an account, or a
   * client home), one connection for all. Resuming counts as a use of the session.
   */
  async asUser<T>(
    who: Account | string,
    work: (run: <Op extends CallOp>(op: Op, args: CallArgs<Op>) => Promise<CallResult<Op>>) => Promise<T>,
  ): Promise<T> {
    const home = typeof who === 'string' ? who : who.home
    const saved = await this.savedSession(home)
    if (!saved) throw new Error(`no saved session in ${home}`)
    const conn = await this.connect()
    try {
      await resumeSession(conn, saved['token'])
      return await work((op, args) => call(conn, op, args))
    } finally {
      conn.close()
    }
  }

  /** Setup in bulk: invites for these names, made in this process by `by`, then the registrations. */
  async registerInvitedDirect(
    by: Account,
    people: ReadonlyArray<readonly [string, Role]>,
    parallel = 2,
  ): Promise<Account[]> {
    const tokens = await this.asUser(by, async (run) => {
      const made: string[] = []
      for (const [name, role] of people) {
        const { token } = await run('invite', { role, user: name, ttlSeconds: 24 * 3600 })
        noteSecret('bearer token', token)
        made.push(token)
      }
      return made
    })
    return inBatches(people, parallel, ([name], i) => this.registerDirect(name, { invite: tokens[i]! }))
  }

  /** An invite made by `by` (`admin add NAME` when a name is given, else `admin invite`). */
  async invite(by: Account, role: Role, opts: { name?: string; expires?: string } = {}): Promise<string> {
    const args = opts.name !== undefined ? ['admin', 'add', opts.name] : ['admin', 'invite']
    const result = await this.run(by, [...args, '--role', role, ...(opts.expires ? ['--expires', opts.expires] : [])])
    if (result.code !== 0) throw new Error(`${args.join(' ')} by ${by.name} failed: ${describeResult(result)}`)
    return result.json!['token']
  }

  /** An invite for the name, then its registration. */
  async registerInvited(by: Account, name: string, role: Role): Promise<Account> {
    return this.register(name, { invite: await this.invite(by, role, { name }) })
  }

  /**
   * `securelogin login --password-stdin --otp CODE --json` with a fresh code; the session is saved
   * in `home` (default: the account's own). The saved token is noted as a secret.
   */
  async login(account: Account, opts: { home?: string } = {}): Promise<CliResult> {
    const home = opts.home ?? account.home
    const result = await this.runIn(
      home,
      ['login', '--user', account.name, '--password-stdin', '--otp', this.codeFor(account)],
      `${account.password}\n`,
    )
    if (result.code === 0) noteSecret('session token', (await this.savedSession(home))!['token'])
    return result
  }

  /** As login, but throws unless it succeeded. */
  async mustLogin(account: Account, opts: { home?: string } = {}): Promise<CliResult> {
    const result = await this.login(account, opts)
    if (result.code !== 0) throw new Error(`login ${account.name} failed: ${describeResult(result)}`)
    return result
  }

  /** The saved session file's contents in `home`, or undefined when there is none. */
  async savedSession(home: string): Promise<Record<string, any> | undefined> {
    try {
      return JSON.parse(await readFile(this.sessionFile(home), 'utf8'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }
}

/** Runs `work` over `items`, at most `limit` at a time (two cores: CLI runs cost scrypt). */
export async function inBatches<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index]!, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
