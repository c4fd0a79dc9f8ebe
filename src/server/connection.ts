import type { TLSSocket } from 'node:tls'
import { FrameDecoder, encodeFrame } from '../protocol/frame.js'
import type { ServerMessage } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import { Conversation, type Answer } from './conversation.js'

/**
 * One TLS connection: decodes frames, hands each message to its conversation one at a time,
 * writes the answers, keeps the deadlines and tears down. The protocol itself is the
 * conversation's (src/server/conversation.ts); nothing here knows a message type.
 */
export class Connection {
  readonly #socket: TLSSocket
  readonly #ctx: ServerContext
  readonly #decoder = new FrameDecoder()
  readonly #conversation: Conversation
  #queue: Promise<void> = Promise.resolve()
  #closed = false

  constructor(socket: TLSSocket, ctx: ServerContext) {
    this.#socket = socket
    this.#ctx = ctx
    this.#conversation = new Conversation(ctx, socket.remoteAddress ?? 'unknown', {
      send: (message) => this.#write(message),
      end: (error) => this.#fail(error),
    })
    socket.setTimeout(ctx.limits.idleMs)
    socket.on('timeout', () => this.#fail(new SecureLoginError('ERR_TIMEOUT', 'connection idle for too long')))
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.on('error', () => this.#teardown())
    socket.on('close', () => this.#teardown())
  }

  /** Resolves when every message received so far has been handled. */
  get settled(): Promise<void> {
    return this.#queue
  }

  /** Ends the connection for a server shutdown, after the handler in flight (if any) is done. */
  async shutdown(): Promise<void> {
    await this.#queue
    this.#fail(new SecureLoginError('ERR_SHUTTING_DOWN', 'the server is shutting down', { hint: 'try again shortly' }))
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return
    let messages: unknown[]
    try {
      messages = this.#decoder.push(chunk)
    } catch (error) {
      return this.#fail(error)
    }
    for (const raw of messages) this.#queue = this.#queue.then(() => this.#handle(raw))
  }

  async #handle(raw: unknown): Promise<void> {
    if (this.#closed) return
    const answer = await this.#conversation.handle(raw)
    if (!answer.end) {
      const { idleMs, awaitingCodeMs } = this.#ctx.limits
      this.#socket.setTimeout(answer.follow ? 0 : this.#conversation.awaitingPerson ? awaitingCodeMs : idleMs)
    }
    this.#answer(answer)
  }

  #answer(answer: Answer): void {
    this.#write(answer.message)
    if (answer.end) this.#end()
  }

  #write(message: ServerMessage): void {
    if (!this.#closed) this.#socket.write(encodeFrame(message))
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
    this.#conversation.close()
    // A peer that never reads must not hold the socket open after we are done with it.
    setTimeout(() => this.#socket.destroy(), 2_000).unref()
  }
}
