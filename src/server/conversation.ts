import type { TLSSocket } from 'node:tls'
import { FrameDecoder, encodeFrame } from '../protocol/frame.js'
import { ClientMessage, type ServerMessage } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import { handleRegisterStart, handleRegisterConfirm, type PendingRegistration } from './register.js'
import {
  handleLoginStart,
  handleLoginProof,
  handleLoginOtp,
  handleLoginRecovery,
  type Account,
  type LoginInProgress,
} from './login.js'
import { handleRecoveryRenew } from './recovery.js'
import { handleCall, handleSessionResume } from './calls.js'
import { handleJwksGet, handleTokenCheck } from './signed-tokens.js'
import type { Secret } from '../auth/secret.js'

/** Where one connection stands; any message not expected in the current state ends it. */
export type ConversationState =
  | { name: 'ready' }
  | { name: 'awaiting_enrol_code'; pending: PendingRegistration; attempts: number }
  | { name: 'awaiting_proof'; login: LoginInProgress }
  | { name: 'awaiting_otp'; login: LoginInProgress }
  | {
      name: 'authenticated'
      user: Account
      factor: SecondFactor
      sessionId: string
      totpReset?: { secret: Secret; attempts: number }
    }

/**
 * How this connection reached 'authenticated': a login with a TOTP code or a recovery code, or
 * `session` (a saved session resumed, no password on this connection).
 */
export type SecondFactor = 'totp' | 'recovery_code' | 'session'

const EXPECTED: Record<ConversationState['name'], ReadonlyArray<ClientMessage['type']>> = {
  ready: ['register_start', 'login_start', 'session_resume', 'jwks_get', 'token_check', 'call'],
  awaiting_enrol_code: ['register_confirm'],
  awaiting_proof: ['login_proof'],
  awaiting_otp: ['login_otp', 'login_recovery'],
  authenticated: ['recovery_codes_renew', 'jwks_get', 'token_check', 'call'],
}

export interface Reply {
  message: ServerMessage
  next: ConversationState
  /** Close the connection after sending (failures end the conversation). */
  end?: boolean
  /** The connection now streams (audit --follow): no idle timeout. */
  follow?: boolean
}

/**
 * One TLS connection: decodes frames, checks each message against its schema and the state
 * machine, runs one handler at a time, and ends the connection on any protocol error.
 */
export class Conversation {
  readonly #socket: TLSSocket
  readonly #ctx: ServerContext
  readonly #decoder = new FrameDecoder()
  readonly #address: string
  #state: ConversationState = { name: 'ready' }
  #queue: Promise<void> = Promise.resolve()
  #closed = false
  /** Run at teardown (an audit follower's unsubscribe). */
  readonly #onClose: Array<() => void> = []

  constructor(socket: TLSSocket, ctx: ServerContext) {
    this.#socket = socket
    this.#ctx = ctx
    this.#address = socket.remoteAddress ?? 'unknown'
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

  /** Ends the conversation for a server shutdown, after the handler in flight (if any) is done. */
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
    try {
      const parsed = ClientMessage.safeParse(raw)
      if (!parsed.success) {
        throw new SecureLoginError(
          'ERR_PROTOCOL',
          `message does not match its schema: ${describeIssue(parsed.error.issues[0])}`,
        )
      }
      const message = parsed.data
      if (!EXPECTED[this.#state.name].includes(message.type)) {
        throw new SecureLoginError('ERR_PROTOCOL', `unexpected ${message.type} message in state ${this.#state.name}`)
      }
      const reply = await this.#dispatch(message)
      this.#state = reply.next
      this.#socket.setTimeout(
        reply.follow
          ? 0
          : this.#state.name === 'ready' || this.#state.name === 'authenticated'
            ? this.#ctx.limits.idleMs
            : this.#ctx.limits.awaitingCodeMs,
      )
      this.#send(reply.message)
      if (reply.end) this.#end()
    } catch (error) {
      this.#fail(error)
    }
  }

  #dispatch(message: ClientMessage): Promise<Reply> {
    const state = this.#state
    const ctx = this.#ctx
    const address = this.#address
    switch (message.type) {
      case 'register_start':
        return handleRegisterStart(ctx, message, address)
      case 'register_confirm':
        if (state.name !== 'awaiting_enrol_code') break
        return handleRegisterConfirm(ctx, message, state, address)
      case 'login_start':
        return handleLoginStart(ctx, message, address)
      case 'login_proof':
        if (state.name !== 'awaiting_proof') break
        return handleLoginProof(ctx, message, state.login, address)
      case 'login_otp':
        if (state.name !== 'awaiting_otp') break
        return handleLoginOtp(ctx, message, state.login, address)
      case 'login_recovery':
        if (state.name !== 'awaiting_otp') break
        return handleLoginRecovery(ctx, message, state.login, address)
      case 'recovery_codes_renew':
        if (state.name !== 'authenticated') break
        return handleRecoveryRenew(ctx, state, address)
      case 'session_resume':
        return handleSessionResume(ctx, message.token, address)
      case 'jwks_get':
        return Promise.resolve(handleJwksGet(ctx, state))
      case 'token_check':
        return handleTokenCheck(ctx, message, state)
      case 'call':
        return handleCall(
          ctx,
          message,
          state,
          address,
          (push) => this.#send(push),
          (stop) => this.#onClose.push(stop),
        )
    }
    throw new SecureLoginError('ERR_PROTOCOL', `unexpected ${message.type} message`)
  }

  #send(message: ServerMessage | { end: SecureLoginError }): void {
    if ('end' in message) return this.#fail(message.end)
    if (!this.#closed) this.#socket.write(encodeFrame(message))
  }

  #fail(error: unknown): void {
    if (this.#closed) return
    const known = error instanceof SecureLoginError
    if (!known) this.#ctx.logger.log('error', 'internal_error', { address: this.#address, error: String(error) })
    const code = known ? error.code : 'ERR_INTERNAL'
    const message = known ? error.message : 'internal error'
    if (known && error.code === 'ERR_PROTOCOL')
      this.#ctx.logger.log('warn', 'protocol_error', { address: this.#address, reason: message })
    this.#send({ type: 'error', code, message, ...(known && error.hint ? { hint: error.hint } : {}) })
    this.#end()
  }

  #end(): void {
    if (this.#closed) return
    this.#socket.end()
    this.#teardown()
  }

  #teardown(): void {
    if (this.#closed) return
    this.#closed = true
    for (const stop of this.#onClose.splice(0)) stop()
    if (this.#state.name === 'awaiting_enrol_code') this.#ctx.pendingNames.delete(this.#state.pending.username)
    this.#state = { name: 'ready' }
    // A peer that never reads must not hold the socket open after we are done with it.
    setTimeout(() => this.#socket.destroy(), 2_000).unref()
  }
}

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (!issue) return 'invalid'
  const path = issue.path.map(String).join('.')
  // Bounded: the reason goes back to the peer inside an error frame.
  return (path ? `${path}: ${issue.message}` : issue.message).slice(0, 200)
}
