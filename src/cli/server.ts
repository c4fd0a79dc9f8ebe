import { join } from 'node:path'
import { createStore, openStore, storeExists } from '../store/index.js'
import { startServer } from '../server/server.js'
import { createJsonLogger, createTextLogger, createMemoryLogger, type Logger } from '../server/logger.js'
import { SecureLoginError } from '../protocol/errors.js'
import { checkPassphraseSource, readPassphrase } from './passphrase.js'
import { loadOrCreateCertificate } from './certs.js'

export interface ServerArgs {
  host: string
  port: number
  store: string
  certs: string
  passphraseFile?: string | undefined
  json: boolean
}

/** `securelogin server`: unlock (or create) the store, load (or make) the certificate, listen. */
export async function runServer(args: ServerArgs): Promise<void> {
  const write = (line: string) => process.stdout.write(`${line}\n`)
  const logger: Logger = args.json ? createJsonLogger(write) : createTextLogger(write)
  // Reports made before the server listens go to the log after its first line ("listening").
  const early = createMemoryLogger()
  checkPassphraseSource(args.passphraseFile)

  const isNew = !storeExists(args.store)
  const passphrase = await readPassphrase({ file: args.passphraseFile, isNew, storePath: args.store })
  const onReport = (event: string, fields: Record<string, unknown>) => early.log('warn', event, fields as never)
  const store = isNew ? await createStore(args.store, passphrase, { onReport }) : await openStore(args.store, passphrase, { onReport })
  if (isNew) early.log('info', 'store_created', { path: args.store }, `created store ${args.store}`)

  let server
  try {
    const { cert, key, created } = await loadOrCreateCertificate(args.certs)
    if (created) early.log('info', 'certificate_created', { path: join(args.certs, 'server.crt') }, `created certificate ${join(args.certs, 'server.crt')}`)
    server = await startServer({ host: args.host, port: args.port, cert, key, store, logger }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL' || error.code === 'EACCES') {
        throw new SecureLoginError('ERR_CONFIG', `cannot listen on ${args.host}:${args.port} (${error.code})`, {
          hint: 'choose another --port (0 picks a free one) or --host',
        })
      }
      throw error
    })
  } catch (error) {
    await store.close()
    throw error
  }

  logger.log('info', 'listening', { host: server.host, port: server.port, fingerprint: server.fingerprint },
    `listening on ${server.host}:${server.port} (sha256 ${server.fingerprint})`)
  for (const entry of early.entries) logger.log(entry.level, entry.event, entry.fields, entry.text)

  await waitForSignal()
  logger.log('info', 'stopping', {}, 'stopping: finishing what is in flight')
  await server.close()
  await store.close()
  logger.log('info', 'stopped', {}, 'stopped')
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(signal)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
