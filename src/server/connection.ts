import type { TLSSocket } from 'node:tls'
import { FrameDecoder, encodeFrame } from '../protocol/frame.js'
import type { ServerMessage } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import { Conversation, type Answer } from './conversation.js'
import type { ConnectionState } from './metrics.js'

/**
 * One TLS connection: decodes frames, hands each message to its conversation one at a time,
 * writes the answers, keeps the deadlines and tears down. The protocol itself is the
 * conversation's (src/server/conversation.ts); nothing here knows a message type.
 *
 * Whatever a client sends, what one connection holds is bounded (docs/threat-model.md,
 * "A hostile client"): the next message is taken only after the answer to the last one has
 * been handed to the socket and the socket's unsent output is under `outputHighWater`;
 * reading stops while more than `readBufferBytes` wait undecoded; output above `outputCapBytes`,
 * or output that the peer leaves unread for `drainMs`, ends the connection. Trickling cannot
 * extend a deadline: a frame must be whole within `frameMs` of its first byte, and a connection
 * that is not logged in ends `lifetimeMs` after it was accepted (`awaitingLifetimeMs` while a
 * person is reading a code off a phone).
 */
export class Connection {
  readonly #socket: TLSSocket
  readonly #ctx: ServerContext
  readonly #decoder = new FrameDecoder()
  readonly #conversation: Conversation
  readonly #acceptedAt: number
  /** A message is being handled, or its answer waits for the socket to drain. */
  #busy = false
  /** A handler is running (what a shutdown waits for before the store closes). */
  #handling = false
  #settled: Promise<void> = Promise.resolve()
  #wake: () => void = () => {}
  #closed = false
  #frameTimer: NodeJS.Timeout | undefined
  #lifetimeTimer: NodeJS.Timeout | undefined
  #drainTimer: NodeJS.Timeout | undefined

  constructor(socket: TLSSocket, ctx: ServerContext) {
    this.#socket = socket
    this.#ctx = ctx
    this.#acceptedAt = Date.now()
    this.#conversation = new Conversation(ctx, socket.remoteAddress ?? 'unknown', {
      send: (message) => this.#write(message),
      end: (error) => this.#fail(error),
    })
    socket.setTimeout(ctx.limits.idleMs)
    socket.on('timeout', () => {
      ctx.metrics?.cut('idle')
      this.#fail(new SecureLoginError('ERR_TIMEOUT', 'connection idle for too long'))
    })
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.on('drain', () => this.#drained())
    socket.on('error', () => this.#teardown())
    socket.on('close', () => this.#teardown())
    this.#armLifetime()
  }

  /** The conversation's state (the connections gauge, read at scrape time): every one is a gauge label. */
  get state(): ConnectionState {
    return this.#conversation.state.name
  }

  /** Resolves when the message in flight (if any) has been handled. */
  get settled(): Promise<void> {
    return this.#settled
  }

  /** Ends the connection for a server shutdown, after the handler in flight (if any) is done. */
  async shutdown(): Promise<void> {
    await this.#settled
    this.#fail(new SecureLoginError('ERR_SHUTTING_DOWN', 'the server is shutting down', { hint: 'try again shortly' }))
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return
    this.#decoder.append(chunk)
    // Undecoded bytes beyond a few frames' worth: stop reading until the handler catches up
    // (TCP then pushes back on the peer).
    if (this.#decoder.pending > this.#ctx.limits.readBufferBytes) this.#socket.pause()
    this.#pump()
  }

  /** Takes the next whole frame, when nothing is in flight and the peer reads its answers. */
  #pump(): void {
    if (this.#busy || this.#closed) return
    let raw: unknown
    try {
      raw = this.#decoder.next()
    } catch (error) {
      return this.#fail(error)
    }
    if (raw === undefined) {
      if (this.#socket.isPaused()) this.#socket.resume()
      // Part of a frame and no more: the rest must come within frameMs of where it began.
      if (this.#decoder.pending > 0) this.#frameTimer ??= this.#deadline(this.#ctx.limits.frameMs, 'a frame')
      return
    }
    clearTimeout(this.#frameTimer)
    this.#frameTimer = undefined
    this.#busy = true
    this.#handling = true
    this.#settled = new Promise((resolve) => (this.#wake = resolve))
    void this.#conversation.handle(raw).then((answer) => this.#answered(answer))
  }

  #answered(answer: Answer): void {
    this.#handling = false
    this.#wake()
    if (!answer.end && !this.#closed) {
      const { idleMs, awaitingCodeMs } = this.#ctx.limits
      this.#socket.setTimeout(answer.follow ? 0 : this.#conversation.awaitingPerson ? awaitingCodeMs : idleMs)
      this.#armLifetime()
    }
    this.#answer(answer)
    if (this.#closed) return
    if (this.#socket.writableLength > this.#ctx.limits.outputHighWater) {
      // The peer is not reading: take nothing more until it does, and not for ever.
      this.#drainTimer = this.#deadline(this.#ctx.limits.drainMs, 'reading the answers')
      return
    }
    this.#free()
    this.#pump()
  }

  #drained(): void {
    if (!this.#busy || this.#drainTimer === undefined || this.#closed) return
    clearTimeout(this.#drainTimer)
    this.#drainTimer = undefined
    this.#free()
    this.#pump()
  }

  #free(): void {
    this.#busy = false
  }

  #answer(answer: Answer): void {
    this.#write(answer.message)
    if (answer.end) this.#end()
  }

  #write(message: ServerMessage): void {
    if (this.#closed) return
    this.#socket.write(encodeFrame(message))
    // Pushed messages (an audit follower's entries) count too: a follower that stops reading
    // is ended like any other peer.
    if (this.#socket.writableLength > this.#ctx.limits.outputCapBytes) {
      this.#ctx.metrics?.cut('output_cap')
      this.#ctx.logger.log('warn', 'connection_output_cap', {
        address: this.#socket.remoteAddress ?? 'unknown',
        bytes: this.#socket.writableLength,
      })
      this.#socket.destroy()
      this.#teardown()
    }
  }

  /** A not-logged-in connection's deadline from its accept; none once logged in. */
  #armLifetime(): void {
    clearTimeout(this.#lifetimeTimer)
    this.#lifetimeTimer = undefined
    if (this.#conversation.state.name === 'authenticated' || this.#closed) return
    const { lifetimeMs, awaitingLifetimeMs } = this.#ctx.limits
    const limit = this.#conversation.awaitingPerson ? awaitingLifetimeMs : lifetimeMs
    this.#lifetimeTimer = this.#deadline(this.#acceptedAt + limit - Date.now(), 'a connection that is not logged in')
  }

  #deadline(ms: number, what: string): NodeJS.Timeout {
    const timer = setTimeout(
      () => {
        this.#ctx.metrics?.cut('deadline')
        this.#ctx.logger.log('warn', 'connection_deadline', { address: this.#socket.remoteAddress ?? 'unknown', what })
        this.#fail(new SecureLoginError('ERR_TIMEOUT', `${what} took too long`))
      },
      Math.max(0, ms),
    )
    timer.unref()
    return timer
  }

  #fail(error: unknown): void {
    if (this.#closed) return
    this.#answer(this.#conversation.fail(error))
  }

  #end(): void {
    if (this.#closed) return
    this.#socket.end()
    this.#teardown()
  }

  #teardown(): void {
    if (this.#closed) return
    this.#closed = true
    for (const timer of [this.#frameTimer, this.#lifetimeTimer, this.#drainTimer]) clearTimeout(timer)
    this.#conversation.close()
    if (!this.#handling) this.#wake()
    // A peer that never reads must not hold the socket open after we are done with it.
    setTimeout(() => this.#socket.destroy(), 2_000).unref()
  }
}
