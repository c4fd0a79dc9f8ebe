import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, type CliRun } from './cli.js'
import { noteSecret } from './secrets.js'
import { prepareStore } from './store-kind.js'

export interface ServerProcess {
  run: CliRun
  port: number
  fingerprint: string
  /** The server's stdout and stderr so far, for "no secret in the log" checks. */
  log(): string
  /** SIGTERM, then waits for the exit; resolves with its code. */
  stop(): Promise<number | null>
}

export async function writePassphraseFile(dir: string, passphrase: string, name = 'passphrase'): Promise<string> {
  noteSecret('passphrase', passphrase)
  const file = join(dir, name)
  await writeFile(file, `${passphrase}\n`, { mode: 0o600 })
  return file
}

/**
 * The real `securelogin server` as a child process on 127.0.0.1 (port 0 unless given), logging
 * JSON. Its store is `dir`'s, of this file's store kind (test/helpers/store-kind.ts), unless
 * `extra` names one.
 */
export async function startServerProcess(
  dir: string,
  passphraseFile: string | undefined,
  extra: string[] = [],
  opts: { port?: number; env?: Record<string, string> } = {},
): Promise<ServerProcess> {
  // A test that names its own store (a PostgreSQL URL) gives --store itself.
  const store = extra.includes('--store') ? [] : ['--store', await prepareStore(dir)]
  const args = [
    'server',
    '--port',
    String(opts.port ?? 0),
    ...store,
    '--certs',
    join(dir, 'certs'),
    // None: the server finds the passphrase itself (a systemd credential, given in opts.env).
    ...(passphraseFile === undefined ? [] : ['--passphrase-file', passphraseFile]),
    '--json',
    // The KDF thread at the process's own priority: at nice 19 the other test files starve it.
    '--kdf-nice',
    '0',
    // A store made on first run at scrypt's test cost: the suite starts about 70 servers.
    ...(extra.includes('--kdf-logn') ? [] : ['--kdf-logn', '10']),
    // And the recovery codes hashed at scrypt's floor here, 1 MiB (a registration hashes ten).
    ...(extra.includes('--recovery-kdf-logn') ? [] : ['--recovery-kdf-logn', '10']),
    // The e2e files register dozens of users from 127.0.0.1: hostile tests ask for the default.
    ...(extra.includes('--registrations-per-hour') ? [] : ['--registrations-per-hour', '100000']),
    ...extra,
  ]
  const run = runCli(args, opts.env === undefined ? {} : { env: opts.env })
  const first = JSON.parse(await run.nextLine(30_000))
  if (first.event !== 'listening') throw new Error(`first log line is not listening: ${JSON.stringify(first)}`)
  return {
    run,
    port: first.port,
    fingerprint: first.fingerprint,
    log: () => run.stdout() + run.stderr(),
    async stop() {
      run.kill('SIGTERM')
      return (await run.done).code
    },
  }
}
