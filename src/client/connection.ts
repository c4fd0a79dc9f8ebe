import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { isIP } from 'node:net'
import { FrameDecoder, encodeFrame } from '../protocol/frame.js'
import { ServerMessage, type ClientMessage, type ServerMessageOf } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { Notice } from '../protocol/calls.js'
import { lookupKnownServer, normalizeFingerprint, rememberKnownServer, replaceKnownServer } from './known-servers.js'

export type TrustPolicy =
  /** Pin this certificate (or CA): the server must present a chain to it, for this host name. */
  | {
      kind: 'ca'
      ca: Buffer
      caFile: string
      /**
       * The known-servers file to record the pinned certificate's fingerprint in, so that later
       * commands without --ca trust the same server (the CLI's --ca is remembered, as ssh's
       * StrictHostKeyChecking=accept-new records a host it was told about).
       */
      rememberIn?: string
    }
  /** Trust on first use, recorded in a known-servers file, as ssh does. */
  | {
      kind: 'known-servers'
      file: string
      /** Accept a server not yet known if its fingerprint is exactly this (non-interactive TOFU). */
      acceptFingerprint?: string
      /** Asked when the server is not yet known; without it an unknown server is refused. */
      confirmNewServer?: (fingerprint: string) => Promise<boolean>
    }

export interface ConnectOptions {
  host: string
  port: number
  trust: TrustPolicy
  /** For connecting and for each answer. */
  timeoutMs?: number
  /**
   * Told of a notice a call's result carried for this session (docs/protocol.md, "Notices"):
   * something its owner must hear, such as their authenticator replaced elsewhere.
   */
  onNotice?: (notice: Notice) => void
}

const DEFAULT_TIMEOUT_MS = 30_000

/** A TLS 1.3 connection to a securelogin server that speaks in request/answer pairs. */
export class ServerConnection {
  readonly server: string
  readonly fingerprint: string
  readonly #socket: TLSSocket
  readonly #timeoutMs: number
  /** Where a notice goes (ConnectOptions.onNotice); call() hands it over. */
  readonly onNotice: ((notice: Notice) => void) | undefined
  readonly #decoder = new FrameDecoder()
  readonly #inbox: ServerMessage[] = []
  #waiter: { resolve: (m: ServerMessage) => void; reject: (e: unknown) => void } | undefined
  #failure: SecureLoginError | undefined
  /** Frames the client did not ask for (audit entries while following), and errors that arrive meanwhile. */
  #push: ((message: ServerMessageOf<'audit_entry'> | ServerMessageOf<'error'>) => void) | undefined
  #ended: Array<(error: SecureLoginError) => void> = []

  private constructor(
    socket: TLSSocket,
    server: string,
    fingerprint: string,
    timeoutMs: number,
    onNotice?: (notice: Notice) => void,
  ) {
    this.onNotice = onNotice
    this.#socket = socket
    this.server = server
    this.fingerprint = fingerprint
    this.#timeoutMs = timeoutMs
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.on('error', (error) => this.#abort(connectionLost(server, error)))
    socket.on('close', () => this.#abort(connectionLost(server)))
  }

  static async open(opts: ConnectOptions): Promise<ServerConnection> {
    const server = `${opts.host}:${opts.port}`
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const socket = await handshake(opts, server, timeoutMs)
    try {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256
      if (!fingerprint) throw new SecureLoginError('ERR_TLS_UNTRUSTED', `server ${server} presented no certificate`)
      if (opts.trust.kind === 'known-servers') await checkKnownServer(opts.trust, server, fingerprint)
      else if (opts.trust.rememberIn !== undefined) {
        const file = opts.trust.rememberIn
        const known = await lookupKnownServer(file, server)
        if (known === undefined || normalizeFingerprint(known) !== fingerprint)
          await replaceKnownServer(file, server, fingerprint)
      }
      return new ServerConnection(socket, server, fingerprint, timeoutMs, opts.onNotice)
    } catch (error) {
      socket.destroy()
      throw error
    }
  }

  /** Sends one message and waits for the answer, which must be of type `expect` (or an error). */
  async request<T extends ServerMessage['type']>(message: ClientMessage, expect: T): Promise<ServerMessageOf<T>> {
    if (this.#failure) throw this.#failure
    this.#socket.write(encodeFrame(message))
    const answer = await this.#next()
    if (answer.type === 'error') {
      throw new SecureLoginError(answer.code, answer.message, answer.hint === undefined ? {} : { hint: answer.hint })
    }
    if (answer.type !== expect) {
      this.close()
      throw new SecureLoginError('ERR_PROTOCOL', `expected ${expect} from the server, got ${answer.type}`)
    }
    return answer as ServerMessageOf<T>
  }

  /** Takes unsolicited frames (`audit_entry`, and an `error` that ends a stream) while no answer is awaited. */
  onPush(listener: (message: ServerMessageOf<'audit_entry'> | ServerMessageOf<'error'>) => void): void {
    this.#push = listener
  }

  /** Resolves when the connection is gone, with why. */
  ended(): Promise<SecureLoginError> {
    if (this.#failure) return Promise.resolve(this.#failure)
    return new Promise((resolve) => this.#ended.push(resolve))
  }

  close(): void {
    this.#socket.end()
    this.#socket.destroy()
  }

  #next(): Promise<ServerMessage> {
    const queued = this.#inbox.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined
        reject(new SecureLoginError('ERR_TIMEOUT', `no answer from ${this.server} in ${this.#timeoutMs / 1000} s`))
        this.close()
      }, this.#timeoutMs)
      this.#waiter = {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      }
    })
  }

  #receive(chunk: Buffer): void {
    try {
      for (const raw of this.#decoder.push(chunk)) {
        const parsed = ServerMessage.safeParse(raw)
        if (!parsed.success)
          throw new SecureLoginError('ERR_PROTOCOL', 'the server sent a message that does not match its schema')
        this.#deliver(parsed.data)
      }
    } catch (error) {
      this.#abort(error instanceof SecureLoginError ? error : new SecureLoginError('ERR_PROTOCOL', String(error)))
      this.close()
    }
  }

  #deliver(message: ServerMessage): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    if (waiter) waiter.resolve(message)
    else if (this.#push && (message.type === 'audit_entry' || message.type === 'error')) this.#push(message)
    else this.#inbox.push(message)
  }

  #abort(error: SecureLoginError): void {
    this.#failure ??= error
    for (const resolve of this.#ended.splice(0)) resolve(this.#failure)
    const waiter = this.#waiter
    this.#waiter = undefined
    // An error frame sent just before the close is the better explanation: deliver it first.
    if (waiter) {
      const queued = this.#inbox.shift()
      if (queued) waiter.resolve(queued)
      else waiter.reject(this.#failure)
    }
  }
}

function handshake(opts: ConnectOptions, server: string, timeoutMs: number): Promise<TLSSocket> {
  const { trust } = opts
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: opts.host,
      port: opts.port,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ...(isIP(opts.host) ? {} : { servername: opts.host }),
      ...(trust.kind === 'ca' ? { ca: trust.ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
    })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new SecureLoginError('ERR_TIMEOUT', `no TLS handshake with ${server} in ${timeoutMs / 1000} s`))
    }, timeoutMs)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      socket.destroy()
      reject(handshakeError(error, server, trust))
    })
  })
}

function handshakeError(error: NodeJS.ErrnoException, server: string, trust: TrustPolicy): SecureLoginError {
  const code = error.code ?? ''
  if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENOTFOUND', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN'].includes(code)) {
    return new SecureLoginError('ERR_CONNECT', `cannot connect to ${server} (${code})`, {
      hint: 'is the server running? start it with: securelogin server',
      cause: error,
    })
  }
  if (trust.kind === 'ca') {
    return new SecureLoginError(
      'ERR_TLS_UNTRUSTED',
      `server ${server} is not vouched for by ${trust.caFile} (${code || error.message})`,
      {
        hint: 'pass the certificate the server uses (certs/server.crt) as --ca',
        cause: error,
      },
    )
  }
  return new SecureLoginError('ERR_CONNECT', `TLS handshake with ${server} failed (${code || error.message})`, {
    cause: error,
  })
}

async function checkKnownServer(
  trust: Extract<TrustPolicy, { kind: 'known-servers' }>,
  server: string,
  fingerprint: string,
): Promise<void> {
  const known = await lookupKnownServer(trust.file, server)
  if (known !== undefined) {
    if (normalizeFingerprint(known) === fingerprint) return
    throw new SecureLoginError(
      'ERR_TLS_CHANGED',
      `the certificate of ${server} has changed: someone may be intercepting this connection (was ${known}, now ` +
        `${fingerprint})`,
      {
        hint:
          `if the server's certificate was replaced on purpose: securelogin servers forget ${server}, ` +
          "then connect again and compare the new fingerprint with the server's",
      },
    )
  }
  if (trust.acceptFingerprint !== undefined) {
    if (normalizeFingerprint(trust.acceptFingerprint) !== fingerprint) {
      throw new SecureLoginError(
        'ERR_TLS_UNTRUSTED',
        `server ${server} has sha256 fingerprint ${fingerprint}, not the one given`,
        {
          hint: 'compare with the fingerprint the server printed when it started',
        },
      )
    }
  } else if (!trust.confirmNewServer) {
    throw new SecureLoginError(
      'ERR_TLS_UNTRUSTED',
      `the authenticity of server ${server} can't be established (sha256 ${fingerprint})`,
      {
        hint:
          `check it against the fingerprint the server printed, then: securelogin servers trust ${server} ` +
          `--fingerprint ${fingerprint} (or pass --ca certs/server.crt, or --accept-fingerprint once)`,
      },
    )
  } else if (!(await trust.confirmNewServer(fingerprint))) {
    throw new SecureLoginError('ERR_TLS_UNTRUSTED', `server ${server} was not trusted`, {
      hint:
        'compare the fingerprint with the one the server printed at start (ask its operator), then: ' +
        `securelogin servers trust ${server} --fingerprint SHA256, or pass --ca certs/server.crt`,
    })
  }
  await rememberKnownServer(trust.file, server, fingerprint)
}

function connectionLost(server: string, cause?: unknown): SecureLoginError {
  return new SecureLoginError('ERR_CONNECT', `connection to ${server} closed`, cause === undefined ? {} : { cause })
}
