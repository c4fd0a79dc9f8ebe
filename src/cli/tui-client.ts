import { ServerConnection, type ConnectOptions } from '../client/connection.js'
import { confirmEnrolment, startRegistration } from '../client/register.js'
import {
  authenticate,
  authenticateAgain,
  authenticateKeeping,
  codeRefused,
  renewRecoveryCodes,
  resumeSession,
  submitOtp,
  submitRecoveryCode,
  type KeptPassword,
  type LoginResult,
} from '../client/login.js'
import { call, changePassword, confirmTotpReset, readAudit, startTotpReset } from '../client/calls.js'
import { SavedSessions, withSession, type SessionOptions } from '../client/session.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { Notice } from '../protocol/calls.js'
import { Secret } from '../auth/secret.js'
import { normalizeUsername } from '../auth/username.js'
import type { TuiClient } from '../tui/types.js'

/**
 * The TUI's view of the network. connect() only checks the server (trust prompt included);
 * each login opens its own connection, so the time a person spends typing never runs into the
 * server's idle timeout. Once logged in, each request opens a connection and resumes the
 * session by its token: a person may leave the home screen open for as long as the session
 * lives. A password change or a 2FA reset logs in afresh on its own connection, as it must.
 * `sessions` is where a login is saved between runs (the same file the plain commands use); the
 * saved session too is reached only at the certificate connect() checked.
 */
export function createTuiClient(
  server: string,
  options: (confirm?: (fp: string) => Promise<boolean>) => Promise<ConnectOptions>,
  opts: { sessions: Omit<SessionOptions, 'connect'>; registerToken?: string },
): TuiClient {
  let connectOpts: ConnectOptions | undefined
  let conn: ServerConnection | undefined
  let session: { user: string; token: string } | undefined
  let heard: Notice | undefined
  // The login in progress: its stretched password, so a wrong code is retyped alone; wiped when
  // the login ends, whichever way.
  let kept: KeptPassword | undefined
  let loginEnrols = false
  // Codes this client had accepted, and when: a code works once, and the person who types the
  // same one again should hear that, not "check the clock".
  const accepted = new Map<string, number>()
  const REUSE_MS = 90_000
  const accept = (code: string) => {
    const now = Date.now()
    for (const [seen, at] of accepted) if (now - at > REUSE_MS) accepted.delete(seen)
    accepted.set(code, now)
  }
  const forgetLogin = () => {
    kept?.x.wipe()
    kept = undefined
  }
  /** A refused second factor, with a hint about the code; anything else as it came. */
  const asCodeFailure = (error: unknown, kind: 'totp' | 'recovery', code: string): unknown => {
    if (!(error instanceof SecureLoginError) || error.code !== 'ERR_AUTH_FAILED') return error
    const now = Date.now()
    const at = accepted.get(code)
    return codeRefused(kind, { reused: at !== undefined && now - at <= REUSE_MS, nowMs: now })
  }
  const secondFactor = async (c: ServerConnection, code: string): Promise<LoginResult> => {
    const recovery = !/^\d{6}$/.test(code.replace(/\s/g, ''))
    try {
      const result = recovery ? await submitRecoveryCode(c, code) : await submitOtp(c, code)
      if (!recovery) accept(code.replace(/\s/g, ''))
      return result
    } catch (error) {
      throw asCodeFailure(error, recovery ? 'recovery' : 'totp', code.replace(/\s/g, ''))
    }
  }
  const followers = new Set<ServerConnection>()
  // Every connection open now, and a trust question waiting for its answer: close() ends them
  // all, so nothing holds the process once the screen is gone (Ctrl-C at the trust prompt).
  const live = new Set<ServerConnection>()
  let refuseTrust: (() => void) | undefined
  let closed = false
  const tracked = async (opening: Promise<ServerConnection>): Promise<ServerConnection> => {
    const c = await opening
    if (closed) {
      c.close()
      throw new SecureLoginError('ERR_CONNECT', `connection to ${server} closed`)
    }
    live.add(c)
    void c.ended().then(() => live.delete(c))
    return c
  }
  const pinned = async (): Promise<ConnectOptions> => {
    if (!connectOpts) throw new SecureLoginError('ERR_INTERNAL', 'connect() must come first')
    return connectOpts
  }
  const sessions: SessionOptions = { home: opts.sessions.home, server: opts.sessions.server, connect: pinned }
  const saved = new SavedSessions(sessions)

  const open = async (): Promise<ServerConnection> => tracked(ServerConnection.open(await pinned()))
  const reopen = async (): Promise<ServerConnection> => {
    conn?.close()
    conn = await open()
    return conn
  }
  const current = (): ServerConnection => {
    if (!conn) throw new SecureLoginError('ERR_INTERNAL', 'no conversation in progress')
    return conn
  }
  const loggedIn = async (result: LoginResult): Promise<LoginResult> => {
    if (result.token !== undefined) {
      session = { user: result.user, token: result.token }
      await saved.save(result)
    }
    // The screens never hold the bearer token: it lives in this closure and the session file.
    const { token: _, device: __, ...shown } = result
    return shown
  }
  /** A connection running as this TUI's session (not whatever the file holds now). */
  const resumed = async (): Promise<ServerConnection> => {
    if (!session)
      throw new SecureLoginError('ERR_FORBIDDEN', 'not logged in', { hint: 'log in first: securelogin login' })
    const c = await open()
    try {
      await resumeSession(c, session.token)
      return c
    } catch (error) {
      c.close()
      throw error
    }
  }
  const asSession = async <T>(work: (c: ServerConnection) => Promise<T>): Promise<T> => {
    const c = await resumed()
    try {
      return await work(c)
    } finally {
      c.close()
    }
  }
  /** A fresh login on `conn` (password, then a TOTP code or a recovery code). */
  const freshLogin = async (
    password: string,
    code: string,
  ): Promise<{ conn: ServerConnection; result: LoginResult }> => {
    if (!session) throw new SecureLoginError('ERR_FORBIDDEN', 'not logged in')
    const c = await reopen()
    await authenticate(c, session.user, new Secret(password), { device: await saved.deviceKey(session.user) })
    return { conn: c, result: await loggedIn(await secondFactor(c, code)) }
  }

  return {
    server,
    notice: () => heard,
    async connect(confirmNewServer) {
      // A notice goes to the home screen: on stderr it would tear through the app's drawing.
      const ask =
        confirmNewServer &&
        ((fingerprint: string) =>
          closed
            ? Promise.resolve(false)
            : new Promise<boolean>((resolve, reject) => {
                refuseTrust = () => resolve(false)
                confirmNewServer(fingerprint).then(resolve, reject)
              }).finally(() => (refuseTrust = undefined)))
      const opts = { ...(await options(ask)), onNotice: (notice: Notice) => void (heard = plain(notice)) }
      const probe = await tracked(ServerConnection.open(opts))
      probe.close()
      // Later connections must present the certificate just checked (now in known_servers, or the --ca).
      connectOpts =
        opts.trust.kind === 'known-servers'
          ? { ...opts, trust: { kind: 'known-servers', file: opts.trust.file } }
          : opts
    },
    startRegistration: async (username, password) =>
      startRegistration(await reopen(), username, new Secret(password), opts.registerToken),
    async confirmEnrolment(code) {
      const result = await confirmEnrolment(current(), code)
      accept(code)
      return result
    },
    async startLogin(username, password) {
      const user = normalizeUsername(username)
      forgetLogin()
      const started = await authenticateKeeping(await reopen(), user, new Secret(password), {
        device: await saved.deviceKey(user),
      })
      kept = started.kept
      loginEnrols = started.enrol !== undefined
      session = { user, token: '' }
      return started.enrol ? { enrol: started.enrol } : {}
    },
    async startLoginAgain() {
      if (!kept) throw new SecureLoginError('ERR_INTERNAL', 'no login in progress')
      const again = kept
      try {
        const { enrol } = await authenticateAgain(await reopen(), again, {
          device: await saved.deviceKey(again.username),
        })
        loginEnrols = enrol !== undefined
        return enrol ? { enrol } : {}
      } catch (error) {
        forgetLogin()
        throw error
      }
    },
    async submitOtp(code) {
      // After an admin's reset the code is the new authenticator's: a refusal is about that enrolment.
      const result = loginEnrols ? await submitOtp(current(), code) : await secondFactor(current(), code)
      forgetLogin()
      return loggedIn(result)
    },
    async submitRecoveryCode(code) {
      const result = await secondFactor(current(), code)
      forgetLogin()
      return loggedIn(result)
    },
    renewRecoveryCodes: () => renewRecoveryCodes(current()),
    resumeSession: () =>
      withSession(sessions, async (_c, result, kept) => {
        session = { user: kept.user, token: kept.token }
        return loggedIn(result)
      }),
    whoami: () => asSession((c) => call(c, 'whoami', {})),
    async logout() {
      try {
        await asSession((c) => call(c, 'logout', {}))
      } finally {
        await saved.forget()
        session = undefined
      }
    },
    listSessions: async (query = {}) => (await asSession((c) => call(c, 'sessions', query))).sessions,
    revokeSession: async (id) => (await asSession((c) => call(c, 'revoke', { id }))).revoked,
    revokeOtherSessions: async () => (await asSession((c) => call(c, 'revoke', { others: true }))).revoked,
    async changePassword(currentPassword, code, newPassword) {
      const { conn: c } = await freshLogin(currentPassword, code)
      return changePassword(c, session!.user, new Secret(newPassword))
    },
    async startTotpReset(password, code) {
      const { conn: c, result } = await freshLogin(password, code)
      const enrolment = await startTotpReset(c, session!.user)
      return result.recoveryCodesLeft !== undefined
        ? { ...enrolment, recoveryCodesLeft: result.recoveryCodesLeft }
        : enrolment
    },
    async confirmTotpReset(code) {
      await confirmTotpReset(current(), code)
      accept(code)
    },
    listUsers: async () => (await asSession((c) => call(c, 'users', {}))).users,
    removeUser: (user) => asSession((c) => call(c, 'remove', { user })),
    setRole: (user, role) => asSession((c) => call(c, 'set_role', { user, role })),
    resetUser2fa: (user) => asSession((c) => call(c, 'reset_2fa', { user })),
    unlockUser: (user) => asSession((c) => call(c, 'unlock', { user })),
    revokeUserSessions: async (user) => (await asSession((c) => call(c, 'revoke', { user }))).revoked,
    invite: (role, options = {}) =>
      asSession((c) =>
        call(c, 'invite', {
          role,
          ttlSeconds: options.ttlSeconds ?? 24 * 3600,
          ...(options.user !== undefined ? { user: options.user } : {}),
        }),
      ),
    async audit(query, onEntry) {
      if (!onEntry) {
        const { entries, head } = await asSession((c) => readAudit(c, query))
        return { entries, head, stop: () => {} }
      }
      const c = await resumed()
      followers.add(c)
      try {
        const { entries, head } = await readAudit(c, query, { follow: true })
        c.onPush((message) => {
          if (message.type === 'audit_entry') onEntry(message.entry)
        })
        return {
          entries,
          head,
          stop: () => {
            followers.delete(c)
            c.close()
          },
        }
      } catch (error) {
        followers.delete(c)
        c.close()
        throw error
      }
    },
    // Its own connection, not the follow's: that one carries pushed entries.
    async auditPage({ before, limit }) {
      const { entries, next } = await asSession((c) => call(c, 'audit', { before, ...(limit ? { limit } : {}) }))
      return next === undefined ? { entries } : { entries, next }
    },
    close() {
      forgetLogin()
      closed = true
      refuseTrust?.()
      conn?.close()
      conn = undefined
      for (const c of followers) c.close()
      followers.clear()
      for (const c of live) c.close()
      live.clear()
    },
  }
}

/** The server's words reach a terminal: no control character (an escape sequence) passes. */
function plain(notice: Notice): Notice {
  const strip = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
  return { ...notice, address: strip(notice.address), message: strip(notice.message) }
}
