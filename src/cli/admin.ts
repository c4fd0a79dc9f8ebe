import { call, readAudit } from '../client/calls.js'
import { invokedAs } from '../base/invoked.js'
import { withSession } from '../client/session.js'
import type { AuditEntry, AccountSummary } from '../protocol/calls.js'
import { Role } from '../protocol/fields.js'
import { SecureLoginError } from '../protocol/errors.js'
import { normalizeUsername } from '../auth/username.js'
import { sessionOptions, type ClientArgs } from './client-options.js'
import { printJson, usageError } from './output.js'
import { accountJson, auditEvent } from './json-events.js'
import { parseDuration } from './duration.js'
import { printSessions, resolveSessionId } from './account.js'

// `securelogin admin ...`: user administration over the saved session. Every rule is the
// server's (src/auth/roles.ts); this file only asks and prints.

export interface AdminArgs extends ClientArgs {
  name?: string | undefined
  role?: string | undefined
  expires?: string | undefined
  yes?: boolean | undefined
  id?: string | undefined
  since?: string | undefined
  limit?: number | undefined
  follow?: boolean | undefined
  anchor?: string | undefined
}

const roleOf = (value: string | undefined): Role => {
  const parsed = Role.safeParse(value)
  if (!parsed.success)
    throw usageError(`--role must be regular_user, admin or system_admin, got ${JSON.stringify(value ?? '')}`)
  return parsed.data
}
const nameOf = (args: AdminArgs) => {
  if (args.name === undefined) throw usageError('name the user')
  return normalizeUsername(args.name)
}
/** --expires in seconds, within what the server accepts (src/protocol/calls.ts: 1 min to 30 days). */
const ttlOf = (args: AdminArgs) => {
  const seconds = Math.round(parseDuration(args.expires ?? '24h', '--expires') / 1000)
  if (seconds < 60 || seconds > 30 * 24 * 3600)
    throw usageError(
      `--expires must be from 1m to 30d, got ${JSON.stringify(args.expires)}`,
      'for example --expires 24h',
    )
  return seconds
}

export async function runAdminUsers(args: AdminArgs): Promise<void> {
  await withSession(sessionOptions(args), async (conn) => {
    const { users } = await call(conn, 'users', {})
    if (args.json) return printJson({ event: 'users', users: users.map(accountJson) })
    printUsers(users)
  })
}

function printUsers(users: AccountSummary[]): void {
  const rows = users.map((u) => [
    u.user,
    u.role,
    u.createdAt.slice(0, 10),
    u.lastLoginAt?.slice(0, 16).replace('T', ' ') ?? 'never',
    u.locked ? `until ${u.lockedUntil!.slice(11, 16)}` : 'no',
    u.twoFactor === 'reset' ? 'reset' : 'on',
    String(u.recoveryCodesLeft),
  ])
  const head = ['USER', 'ROLE', 'CREATED', 'LAST LOGIN', 'LOCKED', '2FA', 'CODES']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)) + 2)
  for (const row of [head, ...rows])
    process.stdout.write(`${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('')}\n`)
}

/** `admin invite --role R` (anyone) and `admin add NAME --role R` (that name only): a single-use token, shown once. */
export async function runAdminInvite(args: AdminArgs): Promise<void> {
  const role = roleOf(args.role)
  const user = args.name !== undefined ? normalizeUsername(args.name) : undefined
  const ttlSeconds = ttlOf(args)
  const options = sessionOptions(args)
  await withSession(options, async (conn) => {
    const invite = await call(conn, 'invite', { role, ttlSeconds, ...(user !== undefined ? { user } : {}) })
    if (args.json)
      return printJson({
        event: 'invite',
        token: invite.token,
        role: invite.role,
        user: invite.user,
        expiresAt: invite.expiresAt,
      })
    process.stdout.write(
      `invite for ${invite.user ?? 'any new user name'} as ${invite.role}, single use, expires ${invite.expiresAt}:\n`,
    )
    process.stdout.write(`  ${invite.token}\n`)
    process.stdout.write(
      `give it to the person over a channel you trust; they run:\n  ${invokedAs()} register --server ` +
        `${options.server}${invite.user ? ` --user ${invite.user}` : ''} --invite ${invite.token}\n`,
    )
  })
}

export async function runAdminRemove(args: AdminArgs): Promise<void> {
  const user = nameOf(args)
  if (!args.yes)
    throw usageError(
      `removing ${user} cannot be undone: add --yes to confirm`,
      `securelogin admin remove ${user} --yes`,
    )
  await withSession(sessionOptions(args), async (conn) => {
    const { revokedSessions } = await call(conn, 'remove', { user })
    if (args.json) return printJson({ event: 'removed', user, revokedSessions })
    process.stdout.write(`removed ${user}; ${revokedSessions} session${revokedSessions === 1 ? '' : 's'} revoked\n`)
  })
}

export async function runAdminRole(args: AdminArgs): Promise<void> {
  const user = nameOf(args)
  const role = roleOf(args.role)
  await withSession(sessionOptions(args), async (conn) => {
    const { previous } = await call(conn, 'set_role', { user, role })
    if (args.json) return printJson({ event: 'role', user, role, previous })
    process.stdout.write(previous === role ? `${user} is already ${role}\n` : `${user}: ${previous} -> ${role}\n`)
  })
}

export async function runAdminReset2fa(args: AdminArgs): Promise<void> {
  const user = nameOf(args)
  await withSession(sessionOptions(args), async (conn) => {
    const { revokedSessions } = await call(conn, 'reset_2fa', { user })
    if (args.json) return printJson({ event: 'reset_2fa', user, revokedSessions })
    process.stdout.write(
      `${user} will enrol a new authenticator at their next login; ${revokedSessions} ` +
        `session${revokedSessions === 1 ? '' : 's'} revoked\n`,
    )
  })
}

export async function runAdminUnlock(args: AdminArgs): Promise<void> {
  const user = nameOf(args)
  await withSession(sessionOptions(args), async (conn) => {
    const { wasLocked } = await call(conn, 'unlock', { user })
    if (args.json) return printJson({ event: 'unlock', user, wasLocked })
    process.stdout.write(wasLocked ? `unlocked ${user}\n` : `${user} was not locked; failed-login count cleared\n`)
  })
}

export async function runAdminSessions(args: AdminArgs): Promise<void> {
  const user = args.name !== undefined ? normalizeUsername(args.name) : undefined
  await withSession(sessionOptions(args), async (conn) => {
    const { sessions } = await call(conn, 'sessions', user !== undefined ? { user } : { all: true })
    printSessions(sessions, args.json)
  })
}

/** `admin revoke ID` (one session) or `admin revoke --user NAME` (all of theirs). */
export async function runAdminRevoke(args: AdminArgs): Promise<void> {
  if ((args.id === undefined) === (args.name === undefined))
    throw usageError('give a session ID or --user NAME (not both)')
  await withSession(sessionOptions(args), async (conn) => {
    const { revoked } =
      args.id !== undefined
        ? await call(conn, 'revoke', { id: await resolveSessionId(conn, args.id, true) })
        : await call(conn, 'revoke', { user: normalizeUsername(args.name!) })
    if (args.json) return printJson({ event: 'revoked', revoked })
    process.stdout.write(`revoked ${revoked} session${revoked === 1 ? '' : 's'}\n`)
  })
}

/** `--since` as an ISO time or a duration ago ("1h"). */
function sinceOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  if (/^\d+[smhd]$/.test(value.trim())) return new Date(Date.now() - parseDuration(value, '--since')).toISOString()
  const ms = Date.parse(value)
  if (Number.isNaN(ms))
    throw usageError(`--since must be a time (2026-11-25T10:00:00Z) or a duration (1h), got ${JSON.stringify(value)}`)
  return new Date(ms).toISOString()
}

export async function runAdminAudit(args: AdminArgs): Promise<void> {
  const since = sinceOf(args.since)
  if (args.limit !== undefined && !(Number.isInteger(args.limit) && args.limit >= 1 && args.limit <= 10_000))
    throw usageError('--limit is an integer from 1 to 10000')
  const user = args.name !== undefined ? normalizeUsername(args.name) : undefined
  await withSession(sessionOptions(args), async (conn) => {
    const query = {
      ...(user !== undefined ? { user } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(args.limit !== undefined ? { limit: args.limit } : {}),
    }
    const { entries } = await readAudit(conn, query, { follow: args.follow === true })
    for (const entry of entries) printEntry(entry, args.json)
    if (!args.follow) return
    // Until Ctrl-C, or until the server ends the stream (the session ended, the role was taken away).
    const ended = new Promise<SecureLoginError | undefined>((resolve) => {
      conn.onPush((message) => {
        if (message.type === 'audit_entry') return printEntry(message.entry, args.json)
        resolve(
          new SecureLoginError(message.code, message.message, message.hint !== undefined ? { hint: message.hint } : {}),
        )
      })
      void conn.ended().then((error) => resolve(error))
      const onSignal = () => resolve(undefined)
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
    })
    const error = await ended
    if (error) throw error
  })
}

function printEntry(entry: AuditEntry, json: boolean): void {
  if (json) return printJson(auditEvent(entry))
  process.stdout.write(`${formatAuditLine(entry)}\n`)
}

/** The fields every line has, in this order, after number, time, outcome and action. */
const FIXED_KEYS = ['actor', 'target', 'address'] as const

/**
 * One entry as a line a person reads and grep or awk can split: number, time, outcome and
 * action in columns, then `key=value` pairs, each key once (the client's address is `address=`;
 * a role change's details are `from=` and `to=`). A detail named like a fixed field is written
 * `details.KEY`. A value with a space, a quote or `=` is quoted, as logfmt does, so a reason such
 * as "rate limited" stays one value.
 */
export function formatAuditLine(entry: AuditEntry): string {
  const fixed = { actor: entry.actor ?? '-', target: entry.target ?? '-', address: entry.address ?? '-' }
  const pairs: Array<[string, unknown]> = FIXED_KEYS.map((key) => [key, fixed[key]])
  for (const [key, value] of Object.entries(entry.details ?? {}))
    pairs.push([(FIXED_KEYS as readonly string[]).includes(key) ? `details.${key}` : key, value])
  const text = pairs.map(([key, value]) => `${logfmtValue(key)}=${logfmtValue(String(value))}`).join(' ')
  return `${String(entry.n).padStart(6)} ${entry.at} ${entry.outcome.padEnd(7)} ${entry.action.padEnd(16)} ${text}`
}

/**
 * A value as is when it is plain printable ASCII; otherwise quoted, with every control or
 * non-ASCII character escaped, so no value can end the line, move the cursor or pose as a key.
 */
function logfmtValue(value: string): string {
  if (/^[\x21-\x7e]+$/.test(value) && !/["=\\]/.test(value)) return value
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

export async function runAdminAuditVerify(args: AdminArgs): Promise<void> {
  const anchor = args.anchor !== undefined ? anchorOf(args.anchor) : undefined
  await withSession(sessionOptions(args), async (conn) => {
    const report = await call(conn, 'audit_verify', anchor ? { anchor } : {})
    if (args.json) {
      const { ok, entries, head, problems } = report
      printJson({ event: 'audit_verify', ok, entries, head, problems })
    } else {
      process.stdout.write(`audit log: ${report.entries} entries, head ${report.head.n}:${report.head.hash}\n`)
      for (const problem of report.problems) process.stdout.write(`  entry ${problem.n}: ${problem.problem}\n`)
      if (report.ok) process.stdout.write('the chain is intact\n')
    }
    if (!report.ok)
      throw new SecureLoginError(
        'ERR_STORE_CORRUPT',
        `the audit log fails verification (${report.problems.length} ` +
          `problem${report.problems.length === 1 ? '' : 's'})`,
      )
  })
}

function anchorOf(value: string): { n: number; hash: string } {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(value.trim().toLowerCase())
  if (!match) throw usageError('--anchor is N:HASH, as `admin audit verify` or the server log prints the head')
  return { n: Number(match[1]), hash: match[2]! }
}
