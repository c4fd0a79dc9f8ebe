import { ServerConnection, type ConnectOptions } from '../client/connection.js'
import { confirmEnrolment, startRegistration } from '../client/register.js'
import { authenticate, renewRecoveryCodes, submitOtp, submitRecoveryCode } from '../client/login.js'
import { SecureLoginError } from '../protocol/errors.js'
import { Secret } from '../auth/secret.js'
import type { TuiClient, Enrolment, LoginResult } from '../tui/types.js'

/**
 * The TUI's view of the network. connect() only checks the server (trust prompt included);
 * each registration or login then opens its own connection, so the time a person spends
 * typing never runs into the server's idle timeout.
 */
export function createTuiClient(server: string, options: (confirm?: (fp: string) => Promise<boolean>) => Promise<ConnectOptions>): TuiClient {
  let connectOpts: ConnectOptions | undefined
  let conn: ServerConnection | undefined

  const reopen = async (): Promise<ServerConnection> => {
    if (!connectOpts) throw new SecureLoginError('ERR_INTERNAL', 'connect() must come first')
    conn?.close()
    conn = await ServerConnection.open(connectOpts)
    return conn
  }
  const current = (): ServerConnection => {
    if (!conn) throw new SecureLoginError('ERR_INTERNAL', 'no conversation in progress')
    return conn
  }

  return {
    server,
    async connect(confirmNewServer) {
      const opts = await options(confirmNewServer)
      const probe = await ServerConnection.open(opts)
      probe.close()
      // Later connections must present the certificate just checked (now in known_servers, or the --ca).
      connectOpts = opts.trust.kind === 'known-servers' ? { ...opts, trust: { kind: 'known-servers', file: opts.trust.file } } : opts
    },
    async startRegistration(username, password): Promise<Enrolment> {
      const { otpauthUri, secret } = await startRegistration(await reopen(), username, new Secret(password))
      return { otpauthUri, secret }
    },
    confirmEnrolment: (code) => confirmEnrolment(current(), code),
    async startLogin(username, password) {
      await authenticate(await reopen(), username, new Secret(password))
    },
    submitOtp: (code): Promise<LoginResult> => submitOtp(current(), code),
    submitRecoveryCode: (code): Promise<LoginResult> => submitRecoveryCode(current(), code),
    renewRecoveryCodes: () => renewRecoveryCodes(current()),
    close() {
      conn?.close()
      conn = undefined
    },
  }
}
