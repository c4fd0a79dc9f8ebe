import { ClientMessage, type ServerMessage } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { ServerContext } from './context.js'
import { ROUTES } from './routes.js'
import { KeepsConnection, EnrolCodeRejected, type ConversationState, type Push, type Route } from './vocabulary.js'

/** What the transport does with one answer. */
export interface Answer {
  message: ServerMessage
  /** Close the connection after sending. */
  end: boolean
  /** The connection now streams (audit --follow): no idle timeout. */
  follow: boolean
}

/** Where the conversation sends what nobody asked for: audit entries, and an end with an error. */
export interface Outbox {
  send(message: ServerMessage): void
  end(error: SecureLoginError): void
}

/**
 * One client's side of the protocol, without a socket: it holds the state and answers one
 * message at a time. The transport (src/server/connection.ts) frames, times out and tears down;
 * a test can drive this directly. Every message goes through one table (src/server/routes.ts).
 */
export class Conversation {
  readonly #ctx: ServerContext
  readonly #address: string
  readonly #outbox: Outbox
  #state: ConversationState = { name: 'ready' }
  #closed = false
  /** Run at close (an audit follower's unsubscribe). */
  readonly #onClose: Array<() => void> = []

  constructor(ctx: ServerContext, address: string, outbox: Outbox) {
    this.#ctx = ctx
    this.#address = address
    this.#outbox = outbox
  }

  get state(): ConversationState {
    return this.#state
  }

  /** While a person is reading a code off a phone, the transport waits longer. */
  get awaitingPerson(): boolean {
    return this.#state.name !== 'ready' && this.#state.name !== 'authenticated'
  }

  /** Checks one decoded message against its schema and the state, runs its handler, answers. */
  async handle(raw: unknown): Promise<Answer> {
    // The transport stops feeding a closed conversation; this answer is never sent.
    if (this.#closed)
      return { message: { type: 'error', code: 'ERR_PROTOCOL', message: 'closed' }, end: true, follow: false }
    try {
      const parsed = ClientMessage.safeParse(raw)
      if (!parsed.success) {
        const reason = describeIssue(parsed.error.issues[0])
        throw new SecureLoginError('ERR_PROTOCOL', `message does not match its schema: ${reason}`)
      }
      const message = parsed.data
      const row = ROUTES[message.type] as Route
      if (!row.in.includes(this.#state.name)) {
        throw new SecureLoginError('ERR_PROTOCOL', `unexpected ${message.type} message in state ${this.#state.name}`)
      }
      const reply = await row.run(this.#request(), message)
      this.#state = reply.next
      return { message: reply.message, end: reply.end ?? false, follow: reply.follow ?? false }
    } catch (error) {
      if (endsConnection(error)) return this.fail(error)
      return { message: this.#errorFrame(error), end: false, follow: false }
    }
  }

  /**
   * The answer that ends the conversation with `error` (any thrown value: one that is not a
   * SecureLoginError is logged and answered as an internal error, without its text).
   */
  fail(error: unknown): Answer {
    const message = this.#errorFrame(error)
    this.close()
    return { message, end: true, follow: false }
  }

  /** The connection is gone: stops followers and frees a user name held for a registration. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const stop of this.#onClose.splice(0)) stop()
    if (this.#state.name === 'awaiting_enrol_code') {
      const { hold } = this.#state.pending
      this.#ctx.pendingNames
        .release(hold)
        .catch((error: unknown) =>
          this.#ctx.logger.log('error', 'name_release_failed', { user: hold.username, error: String(error) }),
        )
    }
    this.#state = { name: 'ready' }
  }

  #request() {
    const push: Push = (message) => {
      if (this.#closed) return
      if ('end' in message) this.#outbox.end(message.end)
      else this.#outbox.send(message)
    }
    return {
      ctx: this.#ctx,
      state: this.#state,
      address: this.#address,
      push,
      onClose: (stop: () => void) => void this.#onClose.push(stop),
    }
  }

  /** The one place an error becomes an `error` frame. */
  #errorFrame(thrown: unknown): ServerMessage {
    const error = thrown instanceof KeepsConnection ? thrown.error : thrown
    if (!(error instanceof SecureLoginError)) {
      this.#ctx.logger.log('error', 'internal_error', { address: this.#address, error: String(error) })
      return { type: 'error', code: 'ERR_INTERNAL', message: 'internal error' }
    }
    if (error.code === 'ERR_PROTOCOL') {
      this.#ctx.logger.log('warn', 'protocol_error', { address: this.#address, reason: error.message })
    }
    // The store's words name its keys (a user name, a role): they go to the log, and the peer
    // hears only what happened. A conflict or an unreachable database may be retried; any other
    // store fault is internal.
    if (error.code.startsWith('ERR_STORE_')) {
      this.#ctx.logger.log('error', 'store_error', { address: this.#address, code: error.code, error: error.message })
      const retryable = RETRYABLE_STORE_ERRORS[error.code]
      if (retryable) return { type: 'error', code: error.code, ...retryable }
      return { type: 'error', code: 'ERR_INTERNAL', message: 'internal error' }
    }
    return { type: 'error', code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
  }
}

/**
 * Store faults a client may retry, and what it hears of them: a conflict with a change made at
 * the same moment, and a database that is down or restarting (a PostgreSQL store; the server
 * reconnects by itself, and the database's address stays in the log).
 */
const RETRYABLE_STORE_ERRORS: Partial<Record<string, { message: string; hint: string }>> = {
  ERR_STORE_CONFLICT: { message: 'the change met another one made at the same moment', hint: 'try again' },
  ERR_STORE_UNAVAILABLE: {
    message: "the server cannot reach its store's database",
    hint: 'retry in a moment; the server reconnects by itself',
  },
}

/**
 * The one rule for which errors end a connection: all of them, except a logged-in call that was
 * refused or failed (the person may try something else), a `register_start` refused by a rule
 * (another name or token may follow) and a wrong enrolment code before the last allowed one. A
 * protocol error or a shutdown inside either still ends it.
 */
export function endsConnection(error: unknown): boolean {
  const inner = error instanceof KeepsConnection ? error.error : error
  if (inner instanceof EnrolCodeRejected) return inner.last
  if (error instanceof KeepsConnection)
    return error.error.code === 'ERR_PROTOCOL' || error.error.code === 'ERR_SHUTTING_DOWN'
  return true
}

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (!issue) return 'invalid'
  const path = issue.path.map(String).join('.')
  // Bounded: the reason goes back to the peer inside an error frame.
  return (path ? `${path}: ${issue.message}` : issue.message).slice(0, 200)
}
