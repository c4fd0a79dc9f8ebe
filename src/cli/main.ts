import yargs, { type Argv } from 'yargs'
import { reportError } from './output.js'
import { SecureLoginError } from '../protocol/errors.js'

// The whole CLI: parse, call one handler, one catch that prints and sets the exit code.
// Handlers are imported lazily so `--help` and `--version` load neither Ink nor the server.

const clientOptions = (y: Argv) =>
  y
    .option('server', {
      type: 'string',
      describe: 'server address HOST:PORT (env SECURELOGIN_SERVER)',
      default: process.env['SECURELOGIN_SERVER'] ?? '127.0.0.1:7443',
      defaultDescription: '127.0.0.1:7443',
    })
    .option('ca', { type: 'string', describe: "pin this certificate file (the server's certs/server.crt)" })
    .option('accept-fingerprint', { type: 'string', describe: 'trust a new server whose SHA-256 fingerprint is this' })
    .option('user', { type: 'string', describe: 'user name (1-64 of a-z 0-9 . _ -)' })
    .option('password-stdin', { type: 'boolean', default: false, describe: "read the password from stdin's first line" })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout, errors as JSON on stderr' })

const storeOptions = (y: Argv) =>
  y
    .option('store', { type: 'string', default: 'data/securelogin.store', describe: 'encrypted store file' })
    .option('passphrase-file', { type: 'string', describe: "read the admin passphrase from this file's first line" })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout, errors as JSON on stderr' })

const kdfLogn = { type: 'number', describe: 'scrypt cost N = 2^logN, 10 to 20 (default 17: about 0.5 s)' } as const

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
            .option('store', { type: 'string', default: 'data/securelogin.store', describe: 'encrypted store file (made on first run)' })
            .option('certs', { type: 'string', default: 'certs', describe: 'directory of server.crt and server.key (made on first run)' })
            .option('passphrase-file', { type: 'string', describe: "read the admin passphrase from this file's first line" })
            .option('json', { type: 'boolean', default: false, describe: 'log JSON lines on stdout' })
            .option('lockout-after', { type: 'number', default: 10, describe: 'lock a user name for 15 minutes after this many failed logins in a row (1 to 100)' })
            // Tests only (hidden): how long the first delayed failure answer waits (it doubles after).
            .option('failure-delay-ms', { type: 'number', hidden: true, describe: 'base delay of failure answers' })
            // Tests only (hidden): time passes when the test says so (TOTP steps, lockouts).
            .option('clock-file', { type: 'string', hidden: true, describe: 'read the current time (ms since the epoch) from this file' }),
        async (args) => (await import('./server.js')).runServer(args),
      )
      .command('store', 'the encrypted store: init, info, verify, compact, rekey (never beside a running server)', (y) =>
        y
          .command('init', 'create a new store (the server also does this on first run)', (c) => storeOptions(c).option('kdf-logn', kdfLogn), async (args) => (await import('./store.js')).runStoreInit(args))
          .command('info', 'print the plaintext header (no passphrase needed)', storeOptions, async (args) => (await import('./store.js')).runStoreInfo(args))
          .command('verify', 'authenticate every record, check the audit log\'s hash chain and print counts; non-zero on any problem', (c) => storeOptions(c).option('audit-anchor', { type: 'string', describe: 'N:HASH, an earlier audit log head the chain must still contain' }), async (args) => (await import('./store.js')).runStoreVerify(args))
          .command('compact', 'rewrite the live state under a fresh data key, atomically', storeOptions, async (args) => (await import('./store.js')).runStoreCompact(args))
          .command(
            'rekey',
            'change the admin passphrase (re-wraps the data key), atomically',
            (c) =>
              storeOptions(c)
                .option('new-passphrase-file', { type: 'string', describe: "read the new passphrase from this file's first line" })
                .option('kdf-logn', kdfLogn),
            async (args) => (await import('./store.js')).runStoreRekey(args),
          )
          .demandCommand(1, 'name a store command: init, info, verify, compact or rekey'),
      )
      .command(
        'register',
        'create an account and enrol an authenticator app (TUI, or --password-stdin)',
        clientOptions,
        async (args) => (await import('./register.js')).runRegister(args),
      )
      .command(
        'login',
        'sign in with password and TOTP code (TUI, or --password-stdin)',
        (y) =>
          clientOptions(y)
            .option('otp', { type: 'string', describe: 'the 6-digit code (else read from the next stdin line)' })
            .option('recovery-code', { type: 'string', describe: 'a recovery code instead of a TOTP code (alone or "-": read from the next stdin line)' }),
        async (args) => (await import('./login.js')).runLogin(args),
      )
      .command(
        'recovery-codes',
        'log in with password and TOTP code, then replace all your recovery codes with ten new ones',
        (y) => clientOptions(y).option('otp', { type: 'string', describe: 'the 6-digit code (else read from the next stdin line)' }),
        async (args) => (await import('./login.js')).runRecoveryCodes(args),
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
        throw new SecureLoginError('ERR_USAGE', message.replace(/\.$/, '').toLowerCase(), { hint: 'securelogin --help lists the commands and options' })
      })
      .parseAsync()
  } catch (error) {
    process.exitCode = reportError(error, { json })
  }
}
