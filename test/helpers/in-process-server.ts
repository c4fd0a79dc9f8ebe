import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createStore, type Store } from '../../src/store/index.js'
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js'
import { createMemoryLogger } from '../../src/server/logger.js'
import type { ServerLimits } from '../../src/server/context.js'
import { makeCerts, makeTempDir } from './env.js'
import type { BudgetLimits } from '../../src/server/budget.js'
import { noteOutput, noteSecret } from './secrets.js'

/** A cheap KDF for tests that are not about the KDF. */
export const TEST_KDF = { name: 'scrypt', logN: 10, r: 8, p: 1 } as const
/** Budgets no test reaches unless it is about them: the suite registers and refuses in bulk. */
export const ROOMY_BUDGETS: Partial<BudgetLimits> = { refusals: 100_000, registrations: 100_000, probes: 100_000 }
export const TEST_PASSPHRASE = 'test passphrase, not a secret of any real store'

export interface InProcessServer {
  server: RunningServer
  store: Store
  logger: ReturnType<typeof createMemoryLogger>
  dir: string
  certPath: string
  /** Every log line the server wrote, as one string, for "no secret in the log" checks. */
  logText(): string
  stop(): Promise<void>
}

/** The real server on a real TLS socket on 127.0.0.1 port 0, with a real store file on disk. */
export async function startInProcessServer(
  opts: {
    now?: () => number
    limits?: Partial<ServerLimits>
    server?: Pick<
      ServerOptions,
      | 'maxConnections'
      | 'maxConnectionsPerAddress'
      | 'handshakeTimeoutMs'
      | 'sleep'
      | 'guard'
      | 'onBootstrapToken'
      | 'registration'
      | 'sessions'
      | 'sessionSweepMs'
      | 'budgets'
    >
  } = {},
): Promise<InProcessServer> {
  noteSecret('passphrase', TEST_PASSPHRASE)
  const { dir, remove } = await makeTempDir('server')
  const { certPath, keyPath } = makeCerts(join(dir, 'certs'))
  const store = await createStore(join(dir, 'data', 'test.store'), TEST_PASSPHRASE, { kdf: TEST_KDF })
  const logger = createMemoryLogger()
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    cert: await readFile(certPath),
    key: await readFile(keyPath),
    store,
    logger,
    // The KDF thread at the process's own priority: at nice 19 the other test files starve it.
    kdfNice: 0,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    budgets: ROOMY_BUDGETS,
    ...opts.server,
  })
  return {
    server,
    store,
    logger,
    dir,
    certPath,
    logText: () => logger.entries.map((e) => JSON.stringify(e)).join('\n'),
    async stop() {
      await server.close()
      noteOutput(
        `in-process server on port ${server.port}`,
        'log',
        logger.entries.map((e) => JSON.stringify(e)).join('\n'),
      )
      await store.close()
      await remove()
    },
  }
}
