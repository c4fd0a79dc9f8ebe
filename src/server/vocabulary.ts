import type { ClientMessage, ServerMessage } from '../protocol/messages.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { AuditEntry } from '../protocol/calls.js'
import type { Secret } from '../auth/secret.js'
import type { ServerEphemeral } from '../auth/srp-server.js'
import type { PasswordKdf } from '../auth/password-stretch.js'
import type { AccountRecord } from './accounts.js'
import type { ServerContext } from './context.js'
import type { Grant } from './invites.js'
import type { NameHold } from './pending-names.js'

// The words every handler and the conversation share. A leaf: it imports no handler, so a
// handler can name a state or a reply without importing the dispatcher that calls it.

/** What a conversation keeps of an account: the record without its secrets, which travel wrapped. */
export type Account = Omit<AccountRecord, 'verifier' | 'totpSecret'>

/**
 * How this connection reached 'authenticated': a login with a TOTP code or a recovery code, or
 * `session` (a saved session resumed, no password on this connection).
 */
export type SecondFactor = 'totp' | 'recovery_code' | 'session'

/** A TOTP secret just shown to the person, and the wrong codes typed for it so far. */
export interface Enrolment {
  secret: Secret
  attempts: number
}

export interface PendingRegistration {
  username: string
  salt: string
  verifier: Secret
  kdf: PasswordKdf
  enrolment: Enrolment
  /** What the account will be, and the token it spends (src/server/invites.ts). */
  grant: Grant
  /** The name held in the store while the enrolment code is awaited (src/server/pending-names.ts). */
  hold: NameHold
}

/** What every login keeps between login_start and login_proof. */
interface LoginCommon {
  username: string
  salt: string
  verifier: Secret
  kdf: PasswordKdf
  A: string
  ephemeral: ServerEphemeral
  /** The id of the valid device key login_start carried for this name (src/server/devices.ts). */
  device?: string | undefined
  /** With metrics on: login_start's SRP time (ms), added to login_proof's for the login's `srp` stage. */
  srpMs?: number
}

/**
 * A login under way. For a name with no account `user` is undefined: the login runs on decoy
 * credentials and always fails at M1, so it never reaches a state that needs the account.
 */
export type LoginStarted =
  (LoginCommon & { user: Account; totpSecret: Secret }) | (LoginCommon & { user: undefined; totpSecret: undefined })

/** A login whose password is proven: the account and its secret are there. */
export interface LoginProven extends LoginCommon {
  user: Account
  totpSecret: Secret
  /** After `admin reset-2fa`: the new TOTP secret offered in server_proof; the code must come from it. */
  newTotp?: Enrolment
}

/** Where one connection stands; a message the current state does not accept ends it. */
export type ConversationState =
  | { name: 'ready' }
  | { name: 'awaiting_enrol_code'; pending: PendingRegistration }
  | { name: 'awaiting_proof'; login: LoginStarted }
  | { name: 'awaiting_otp'; login: LoginProven }
  | { name: 'authenticated'; user: Account; factor: SecondFactor; sessionId: string; totpReset?: Enrolment }

export type StateName = ConversationState['name']
export type StateOf<N extends StateName> = Extract<ConversationState, { name: N }>
export type MessageType = ClientMessage['type']
export type MessageOf<T extends MessageType> = Extract<ClientMessage, { type: T }>

/** A handler's answer: the frame to send and the state after it. */
export interface Reply {
  message: ServerMessage
  next: ConversationState
  /** Close the connection after sending (a logout, an account that removed itself). */
  end?: boolean
  /** The connection now streams (audit --follow): no idle timeout. */
  follow?: boolean
}

/** A frame the client did not ask for (an audit entry), or the end of the connection with an error. */
export type Push = (message: { type: 'audit_entry'; entry: AuditEntry } | { end: SecureLoginError }) => void

/** Everything a handler gets, the same for every message. */
export interface Request<N extends StateName = StateName> {
  ctx: ServerContext
  state: StateOf<N>
  /** The peer's address, for the log and the audit entry. */
  address: string
  push: Push
  /** Runs `stop` when the connection ends (an audit follower's unsubscribe). */
  onClose: (stop: () => void) => void
}

/** One row of the message table: the states that accept a message, and its handler. */
export interface Route<T extends MessageType = MessageType> {
  in: readonly StateName[]
  run(req: Request, message: MessageOf<T>): Promise<Reply>
}

/** A row whose handler sees the state narrowed to the ones it is accepted in. */
export function route<T extends MessageType, N extends StateName>(
  states: readonly N[],
  run: (req: Request<N>, message: MessageOf<T>) => Promise<Reply>,
): Route<T> {
  return { in: states, run: run as unknown as Route<T>['run'] }
}

/**
 * A wrong code for a secret just shown (registration, `totp_confirm`): the connection stays, so
 * the person can type the next code, until `last`.
 */
export class EnrolCodeRejected extends SecureLoginError {
  readonly last: boolean
  constructor(last: boolean) {
    super('ERR_ENROL_CODE', last ? 'the code did not match, too many attempts' : 'the code did not match', {
      hint: 'check the clocks of this machine and the phone; codes change every 30 s',
    })
    this.last = last
  }
}

/**
 * A refusal the conversation survives: a logged-in call that was refused or failed (the person
 * stays logged in and may try another), or a `register_start` refused before it began (the
 * person may try another name or token on the same connection).
 */
export class KeepsConnection extends Error {
  readonly error: SecureLoginError
  constructor(error: SecureLoginError) {
    super(error.message, { cause: error })
    this.error = error
  }
}
