import yargs, { type Argv } from 'yargs'
import { reportError } from './output.js'
import { defaultStore } from './store-default.js'
import { SecureLoginError } from '../protocol/errors.js'

// The whole CLI: parse, call one handler, one catch that prints and sets the exit code.
// Handlers are imported lazily so `--help` and `--version` load neither Ink nor the server.

/** Where the server is and how it is trusted, and the output format: every client command. */
const connectionOptions = (y: Argv) =>
  y
    .option('server', {
      type: 'string',
      describe: 'server address HOST:PORT (env SECURELOGIN_SERVER)',
      default: process.env['SECURELOGIN_SERVER'] ?? '127.0.0.1:7443',
      defaultDescription: '127.0.0.1:7443',
    })
    .option('ca', { type: 'string', describe: "pin this certificate file (the server's certs/server.crt)" })
    .option('accept-fingerprint', { type: 'string', describe: 'trust a new server whose SHA-256 fingerprint is this' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout, errors as JSON on stderr' })

/** Commands that log in or register: a user name and the password. */
const clientOptions = (y: Argv) =>
  connectionOptions(y)
    .option('user', { type: 'string', describe: 'user name (1-64 of a-z 0-9 . _ -)' })
    .option('password-stdin', {
      type: 'boolean',
      default: false,
      describe: "read the password from stdin's first line",
    })

/** Commands that run as the saved session (no password). */
const sessionOptions = (y: Argv) =>
  connectionOptions(y).option('password-stdin', { type: 'boolean', default: false, hidden: true })

const nameArg = { type: 'string', describe: 'user name' } as const
const roleOption = { type: 'string', demandOption: true, describe: 'regular_user, admin or system_admin' } as const
const expiresOption = {
  type: 'string',
  default: '24h',
  describe: 'how long the token stays valid (s, m, h, d; 1m to 30d)',
} as const

const storeOptions = (y: Argv) =>
  y
    .option('store', {
      type: 'string',
      default: defaultStore(),
      describe: 'encrypted store: a file, or postgres://USER@HOST:PORT/DB ($SECURELOGIN_STORE)',
    })
    .option('passphrase-file', { type: 'string', describe: "read the admin passphrase from this file's first line" })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout, errors as JSON on stderr' })

const kdfLogn = { type: 'number', describe: 'scrypt cost N = 2^logN, 10 to 20 (default 17: about 0.5 s)' } as const
const acceptRollback = {
  type: 'boolean',
  default: false,
  describe: 'open a store older than its state file says (a backup restored on purpose), and record it as current',
} as const

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json')
  try {
    await yargs(argv)
      .scriptName('securelogin')
      .usage('$0 <command> [options]')
      .command(
        'server',
        'run the login server (TLS 1.3, SRP-6a, TOTP, encrypted store)',
        (y) =>
          y
            .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
            .option('port', { type: 'number', default: 7443, describe: 'port to listen on (0 picks a free one)' })
            .option('store', {
              type: 'string',
              default: defaultStore(),
              describe:
                'encrypted store, made on first run: a file, or postgres://USER@HOST:PORT/DB ($SECURELOGIN_STORE)',
            })
            .option('workers', {
              type: 'number',
              describe: 'serve from this many processes on one port (a PostgreSQL store only)',
            })
            .option('kdf-logn', {
              ...kdfLogn,
              describe: `${kdfLogn.describe}, for a store made on first run; an existing store keeps its own`,
            })
            .option('certs', {
              type: 'string',
              default: 'certs',
              describe: 'directory of server.crt and server.key (made on first run)',
            })
            .option('passphrase-file', {
              type: 'string',
              describe: "read the admin passphrase from this file's first line",
            })
            .option('json', { type: 'boolean', default: false, describe: 'log JSON lines on stdout' })
            .option('ops-listen', {
              type: 'string',
              describe:
                'serve /healthz, /readyz and /metrics on HOST:PORT: plain HTTP on loopback, else HTTPS with ' +
                'the server certificate (off by default; docs/operations.md)',
            })
            .option('print-fingerprint', {
              type: 'boolean',
              default: false,
              describe: "print the SHA-256 fingerprint of --certs' server.crt and exit (no passphrase, no store)",
            })
            .option('registration', {
              choices: ['open', 'invite', 'closed'] as const,
              describe: 'who may register (default: invite; the first start prints a token for the first system_admin)',
            })
            .option('session-idle', {
              type: 'string',
              default: '30m',
              describe: 'a session unused this long ends (s, m, h, d)',
            })
            .option('session-max', {
              type: 'string',
              default: '12h',
              describe: 'a session ends this long after its login whatever its use',
            })
            .option('bootstrap-token-file', {
              type: 'string',
              describe: 'write the bootstrap token here (mode 0600) instead of the terminal',
            })
            .option('accept-rollback', acceptRollback)
            .option('srp-engine', {
              choices: ['openssl', 'package'] as const,
              default: 'openssl' as const,
              describe: "SRP maths: OpenSSL's (fast), or the secure-remote-password package's (for comparison)",
            })
            .option('lockout-after', {
              type: 'number',
              default: 10,
              describe: 'lock a user name for 15 minutes after this many failed logins in a row (1 to 100)',
            })
            .option('registrations-per-hour', {
              type: 'number',
              default: 20,
              describe: 'registrations one address may start per hour (each costs ten recovery-code hashes)',
            })
            // Tests only (hidden): how long the first delayed failure answer waits (it doubles after).
            .option('failure-delay-ms', { type: 'number', hidden: true, describe: 'base delay of failure answers' })
            // The login benchmark only (hidden): time SRP, TOTP and the store commit; SIGUSR2 logs the totals.
            .option('stage-times', { type: 'boolean', hidden: true, describe: 'measure where login time goes' })
            // Tests only (hidden): time passes when the test says so (TOTP steps, lockouts).
            .option('clock-file', {
              type: 'string',
              hidden: true,
              describe: 'read the current time (ms since the epoch) from this file',
            })
            // Tests only (hidden): the KDF thread's nice value; the suite runs it at 0 so that a busy
            // machine cannot starve it.
            // Tests only (hidden): the scrypt cost of recovery-code hashes (10 to 20, default 14); each
            // registration hashes ten, and the e2e suite registers dozens of users.
            .option('recovery-kdf-logn', {
              type: 'number',
              hidden: true,
              describe: 'scrypt logN of new recovery-code hashes',
            })
            .option('kdf-nice', {
              type: 'number',
              hidden: true,
              describe: 'nice value of the server KDF thread (default 19)',
            })
            // Tests only (hidden): shorter connection deadlines, so that a test of connections held
            // to their deadlines waits seconds, not minutes; none can be made longer than its default.
            .option('connection-limits', {
              type: 'string',
              hidden: true,
              describe: 'NAME=MS,... shorter connection deadlines (frameMs, lifetimeMs, idleMs, ...)',
            }),
        async (args) => (await import('./server.js')).runServer(args),
      )
      .command(
        'store',
        'the encrypted store: init, info, verify, compact, rekey, rotate-signing-key, copy ' +
          '(a store file: never beside a running server)',
        (y) =>
          y
            .command(
              'init',
              'create a new store (the server also does this on first run)',
              (c) => storeOptions(c).option('kdf-logn', kdfLogn),
              async (args) => (await import('./store.js')).runStoreInit(args),
            )
            .command('info', 'print the plaintext header (no passphrase needed)', storeOptions, async (args) =>
              (await import('./store.js')).runStoreInfo(args),
            )
            .command(
              'verify',
              "authenticate every record, check the audit log's hash chain and print counts; non-zero on any problem",
              (c) =>
                storeOptions(c).option('audit-anchor', {
                  type: 'string',
                  describe: 'N:HASH, an earlier audit log head the chain must still contain',
                }),
              async (args) => (await import('./store.js')).runStoreVerify(args),
            )
            .command(
              'compact',
              'rewrite the live state under a fresh data key, atomically',
              (c) => storeOptions(c).option('accept-rollback', acceptRollback),
              async (args) => (await import('./store.js')).runStoreCompact(args),
            )
            .command(
              'rekey',
              'change the admin passphrase (re-wraps the data key), atomically',
              (c) =>
                storeOptions(c)
                  .option('new-passphrase-file', {
                    type: 'string',
                    describe: "read the new passphrase from this file's first line",
                  })
                  .option('kdf-logn', kdfLogn)
                  .option('accept-rollback', acceptRollback),
              async (args) => (await import('./store.js')).runStoreRekey(args),
            )
            .command(
              'rotate-signing-key',
              'make a new token-signing key; the old one verifies until its tokens expire',
              (c) => storeOptions(c).option('accept-rollback', acceptRollback),
              async (args) => (await import('./store.js')).runStoreRotateSigningKey(args),
            )
            .command(
              'copy',
              'copy a store into a new one, between a file and PostgreSQL either way (same passphrase)',
              (c) =>
                c
                  .option('from', {
                    type: 'string',
                    demandOption: true,
                    describe: 'the store to copy: a file or postgres://...',
                  })
                  .option('to', {
                    type: 'string',
                    demandOption: true,
                    describe: 'the new store: a file or postgres://...',
                  })
                  .option('passphrase-file', {
                    type: 'string',
                    describe: "read the admin passphrase from this file's first line",
                  })
                  .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
                  .option('accept-rollback', acceptRollback),
              async (args) => (await import('./store.js')).runStoreCopy(args),
            )
            .demandCommand(1, 'name a store command: init, info, verify, compact, rekey, rotate-signing-key or copy'),
      )
      .command(
        'register',
        'create an account and enrol an authenticator app (TUI, or --password-stdin)',
        (y) =>
          clientOptions(y)
            .option('invite', { type: 'string', describe: 'an invite token from an administrator (sli_...)' })
            .option('bootstrap-token', {
              type: 'string',
              describe: "the server's bootstrap token (slb_...): become its first system_admin",
            }),
        async (args) => (await import('./register.js')).runRegister(args),
      )
      .command(
        'login',
        'sign in with password and TOTP code (TUI, or --password-stdin)',
        (y) =>
          clientOptions(y)
            .option('otp', { type: 'string', describe: 'the 6-digit code (else read from the next stdin line)' })
            .option('recovery-code', {
              type: 'string',
              describe: 'a recovery code instead of a TOTP code (alone or "-": read from the next stdin line)',
            }),
        async (args) => (await import('./login.js')).runLogin(args),
      )
      .command(
        'recovery-codes',
        'log in with password and TOTP code, then replace all your recovery codes with ten new ones',
        (y) =>
          clientOptions(y).option('otp', {
            type: 'string',
            describe: 'the 6-digit code (else read from the next stdin line)',
          }),
        async (args) => (await import('./login.js')).runRecoveryCodes(args),
      )
      .command(
        'servers',
        'the servers this client trusts (known_servers): list them, trust one, forget one',
        (y) =>
          y
            .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
            .command(
              'trust <server>',
              'trust HOST:PORT by its certificate (--ca) or its SHA-256 fingerprint, replacing what was known',
              (c) =>
                c
                  .positional('server', { type: 'string', describe: 'HOST:PORT' })
                  .option('ca', { type: 'string', describe: "the server's certificate file (certs/server.crt)" })
                  .option('fingerprint', {
                    type: 'string',
                    describe: 'its SHA-256 fingerprint, as the server printed it',
                  }),
              async (args) => (await import('./servers.js')).runServersTrust(args),
            )
            .command(
              'forget <server>',
              'forget HOST:PORT (after its certificate was replaced on purpose); the next connection asks again',
              (c) => c.positional('server', { type: 'string', describe: 'HOST:PORT' }),
              async (args) => (await import('./servers.js')).runServersForget(args),
            ),
        async (args) => (await import('./servers.js')).runServersList(args),
      )
      .command('whoami', 'show who the saved session is and when it ends', sessionOptions, async (args) =>
        (await import('./account.js')).runWhoami(args),
      )
      .command('logout', 'revoke the saved session on the server and forget it here', sessionOptions, async (args) =>
        (await import('./account.js')).runLogout(args),
      )
      .command(
        'sessions',
        'list your sessions, or revoke one or all others',
        (y) =>
          sessionOptions(y)
            .option('revoke', {
              type: 'string',
              describe: 'revoke the session with this id (or a unique prefix of 6+ digits)',
            })
            .option('revoke-others', {
              type: 'boolean',
              default: false,
              describe: 'revoke every session but this one',
            }),
        async (args) => (await import('./account.js')).runSessions(args),
      )
      .command(
        'passwd',
        'change your password: proves the current one and a code, then revokes every other session (stdin: ' +
          'current, new, code)',
        (y) =>
          clientOptions(y).option('otp', {
            type: 'string',
            describe: 'the 6-digit code (else read from the stdin line after the new password)',
          }),
        async (args) => (await import('./account.js')).runPasswd(args),
      )
      .command(
        'reset-2fa',
        'enrol a new authenticator app: proves the password and a code or recovery code',
        (y) =>
          clientOptions(y)
            .option('otp', { type: 'string', describe: 'a 6-digit code from the current authenticator' })
            .option('recovery-code', {
              type: 'string',
              describe: 'a recovery code instead (alone or "-": read from the next stdin line)',
            }),
        async (args) => (await import('./account.js')).runReset2fa(args),
      )
      .command(
        'token',
        'a signed token that vouches for you to one application, from the saved session (stdout: the token)',
        (y) =>
          sessionOptions(y)
            .option('audience', {
              type: 'string',
              demandOption: true,
              describe: "the application's name: the token is good for it alone",
            })
            .option('ttl', {
              type: 'string',
              default: '5m',
              describe: 'how long the token lives (10s to 1h; never past the session)',
            }),
        async (args) => (await import('./token.js')).runToken(args),
      )
      .command(
        'jwks',
        "print the server's token-signing public keys (JWKS; no login needed)",
        connectionOptions,
        async (args) => (await import('./token.js')).runJwks({ ...args, passwordStdin: false }),
      )
      .command(
        'verify-token [token]',
        'check a token offline against a JWKS file and print its claims (token "-" or none: read from stdin)',
        (y) =>
          connectionOptions(y)
            .positional('token', {
              type: 'string',
              describe: 'the token (prefer stdin: a command line is visible to other users)',
            })
            .option('jwks', {
              type: 'string',
              demandOption: true,
              describe: 'the JWKS file (certs/jwks.json, or `securelogin jwks` saved)',
            })
            .option('audience', {
              type: 'string',
              demandOption: true,
              describe: "this application's name: a token for any other is refused",
            })
            .option('issuer', { type: 'string', describe: 'the token must be from this issuer (securelogin:STORE_ID)' })
            .option('check-session', {
              type: 'boolean',
              default: false,
              describe: "also ask --server whether the token's session is still live",
            }),
        async (args) => (await import('./token.js')).runVerifyToken({ ...args, passwordStdin: false }),
      )
      .command(
        'home',
        'the terminal UI on the saved session: account, sessions, and administration for admins',
        sessionOptions,
        async (args) => (await import('./account.js')).runHome(args),
      )
      .command('admin', 'user administration (admins and system_admins; the server enforces every rule)', (y) =>
        y
          .command('users', 'list every user: role, created, last login, locked, 2FA', sessionOptions, async (args) =>
            (await import('./admin.js')).runAdminUsers(args),
          )
          .command(
            'invite',
            'make a single-use registration token',
            (c) => sessionOptions(c).option('role', roleOption).option('expires', expiresOption),
            async (args) => (await import('./admin.js')).runAdminInvite(args),
          )
          .command(
            'add <name>',
            'make a single-use registration token for this user name',
            (c) =>
              sessionOptions(c).positional('name', nameArg).option('role', roleOption).option('expires', expiresOption),
            async (args) => (await import('./admin.js')).runAdminInvite(args),
          )
          .command(
            'remove <name>',
            'remove a user and revoke their sessions',
            (c) =>
              sessionOptions(c)
                .positional('name', nameArg)
                .option('yes', { type: 'boolean', default: false, describe: 'confirm: this cannot be undone' }),
            async (args) => (await import('./admin.js')).runAdminRemove(args),
          )
          .command(
            'role <name> <role>',
            "change a user's role",
            (c) =>
              sessionOptions(c)
                .positional('name', nameArg)
                .positional('role', { type: 'string', describe: 'regular_user, admin or system_admin' }),
            async (args) => (await import('./admin.js')).runAdminRole(args),
          )
          .command(
            'reset-2fa <name>',
            'make a user enrol a new authenticator at their next login (revokes their sessions)',
            (c) => sessionOptions(c).positional('name', nameArg),
            async (args) => (await import('./admin.js')).runAdminReset2fa(args),
          )
          .command(
            'unlock <name>',
            'lift a lockout after failed logins',
            (c) => sessionOptions(c).positional('name', nameArg),
            async (args) => (await import('./admin.js')).runAdminUnlock(args),
          )
          .command(
            'sessions [name]',
            'list the sessions of a user, or of everyone you manage',
            (c) => sessionOptions(c).positional('name', nameArg),
            async (args) => (await import('./admin.js')).runAdminSessions(args),
          )
          .command(
            'revoke [id]',
            "revoke one session by id, or all of a user's with --user",
            (c) =>
              sessionOptions(c)
                .positional('id', { type: 'string', describe: 'session id (or a unique prefix of 6+ digits)' })
                .option('user', { type: 'string', describe: 'revoke every session of this user' }),
            async (args) => (await import('./admin.js')).runAdminRevoke({ ...args, name: args.user }),
          )
          .command(
            'audit',
            'read the audit log (newest last); verify its hash chain',
            (c) =>
              sessionOptions(c)
                .option('user', { type: 'string', describe: 'only entries by or about this user' })
                .option('since', {
                  type: 'string',
                  describe: 'only entries since this time (ISO) or this long ago (1h)',
                })
                .option('limit', { type: 'number', describe: 'only the last N entries' })
                .option('follow', {
                  type: 'boolean',
                  default: false,
                  describe: 'then print new entries as they are written, until Ctrl-C',
                })
                .command(
                  'verify',
                  'check the hash chain: a removed, edited, reordered or truncated entry fails',
                  (v) =>
                    sessionOptions(v).option('anchor', {
                      type: 'string',
                      describe: 'N:HASH, an earlier head (from the server log) the chain must still contain',
                    }),
                  async (args) => (await import('./admin.js')).runAdminAuditVerify(args),
                ),
            async (args) => (await import('./admin.js')).runAdminAudit({ ...args, name: args.user }),
          )
          .demandCommand(
            1,
            'name an admin command: users, invite, add, remove, role, reset-2fa, unlock, sessions, revoke or audit',
          ),
      )
      .demandCommand(1, 'name a command')
      .strict()
      .help()
      .alias('h', 'help')
      .version()
      .alias('V', 'version')
      .wrap(Math.min(100, process.stdout.columns ?? 80))
      .fail((message, error) => {
        if (error) throw error
        throw new SecureLoginError('ERR_USAGE', message.replace(/\.$/, '').toLowerCase(), {
          hint: 'securelogin --help lists the commands and options',
        })
      })
      .parseAsync()
  } catch (error) {
    process.exitCode = reportError(error, { json })
  }
}
