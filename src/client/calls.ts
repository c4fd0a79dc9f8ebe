import { CALLS, type CallArgs, type CallOp, type CallResult, type Notice } from '../protocol/calls.js'
import { SecureLoginError } from '../protocol/errors.js'
import { createRegistration } from '../auth/srp-client.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { revealInput, type SecretInput } from '../auth/secret.js'
import type { ServerConnection } from './connection.js'
import { checkCodeShape, enrolmentOf, type Enrolment } from './register.js'

/** One logged-in request: `call {op, args}` -> `result {op, data}`, the data checked against its schema. */
export async function call<Op extends CallOp>(
  conn: ServerConnection,
  op: Op,
  args: CallArgs<Op>,
): Promise<CallResult<Op>> {
  const answer = await conn.request({ type: 'call', op, args: args as Record<string, unknown> }, 'result')
  const parsed = CALLS[op].result.safeParse(answer.data)
  if (answer.op !== op || !parsed.success)
    throw new SecureLoginError('ERR_PROTOCOL', `the server's answer to ${op} does not match its schema`)
  // A notice is for the person, not for the caller of this op: it goes to the connection's
  // listener, and the result is what the op answers.
  const { notice, ...data } = parsed.data as CallResult<Op> & { notice?: Notice }
  if (notice) conn.onNotice?.(notice)
  return data as CallResult<Op>
}

/** After a login with password and TOTP code on `conn`: a new salt and verifier (the password stays here). */
export async function changePassword(
  conn: ServerConnection,
  username: string,
  newPassword: SecretInput,
): Promise<CallResult<'passwd'>> {
  const { salt, verifier, kdf } = await createRegistration(
    username,
    checkNewPassword(revealInput(newPassword), username),
  )
  return call(conn, 'passwd', { salt, verifier, kdf })
}

/** After a login with password and a code on `conn`: the new authenticator to enrol. */
export async function startTotpReset(conn: ServerConnection, username: string): Promise<Enrolment> {
  const { otpauthUri } = await call(conn, 'totp_reset', {})
  return enrolmentOf(username, otpauthUri)
}

export async function confirmTotpReset(conn: ServerConnection, code: string): Promise<void> {
  await call(conn, 'totp_confirm', { code: checkCodeShape(code) })
}

/**
 * Every audit entry the query asks for (the last `limit` matches, or all of them), oldest first,
 * read a page (one frame) at a time from the newest back; and the head when the first page was
 * read. With `follow`, the server then streams what is appended after that head: the entries
 * arrive as `audit_entry` pushes on `conn` (register `conn.onPush` before they matter).
 */
export async function readAudit(
  conn: ServerConnection,
  query: Omit<CallArgs<'audit'>, 'before' | 'after' | 'follow'>,
  opts: { follow?: boolean } = {},
): Promise<Pick<CallResult<'audit'>, 'entries' | 'head'>> {
  const pages: CallResult<'audit'>['entries'][] = []
  let count = 0
  let before: number | undefined
  let head: CallResult<'audit'>['head'] | undefined
  do {
    const limit = query.limit === undefined ? undefined : query.limit - count
    const page = await call(conn, 'audit', {
      ...query,
      ...(limit !== undefined ? { limit } : {}),
      ...(before !== undefined ? { before } : {}),
    })
    head ??= page.head
    pages.unshift(page.entries)
    count += page.entries.length
    before = page.next
  } while (before !== undefined && (query.limit === undefined || count < query.limit))
  if (opts.follow) {
    // From the head the pages were read under: what was appended since is this page, then pushes.
    const { limit: _, ...rest } = query
    const since = await call(conn, 'audit', { ...rest, after: head.n, follow: true })
    pages.push(since.entries)
  }
  return { entries: pages.flat(), head }
}
