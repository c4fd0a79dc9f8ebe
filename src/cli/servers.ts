import { readFile } from 'node:fs/promises'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { listKnownServers, normalizeFingerprint, replaceKnownServer } from '../client/known-servers.js'
import { SecureLoginError } from '../protocol/errors.js'
import { parseServerAddress, secureloginHome } from './client-options.js'
import { printJson, usageError } from './output.js'

// `securelogin servers`: the known_servers file as ssh-keygen -R and ssh-keyscan would let a
// person handle it, without opening it in an editor: list it, trust a server by its certificate
// or fingerprint, forget one whose certificate was replaced on purpose.

interface ServersArgs {
  json: boolean
  server?: string | undefined
  ca?: string | undefined
  fingerprint?: string | undefined
}

const knownServersFile = () => join(secureloginHome(), 'known_servers')

/** HOST:PORT as the file keys it (the same parsing as --server). */
function serverName(value: string | undefined): string {
  if (value === undefined) throw usageError('name the server: HOST:PORT')
  const { host, port } = parseServerAddress(value)
  return `${host}:${port}`
}

export async function runServersList(args: ServersArgs): Promise<void> {
  const file = knownServersFile()
  const servers = await listKnownServers(file)
  if (args.json) return printJson({ event: 'known_servers', file, servers })
  if (servers.length === 0) {
    process.stdout.write(`no known servers yet (${file})\n`)
    return
  }
  const width = Math.max(...servers.map((s) => s.server.length))
  for (const { server, fingerprint } of servers) process.stdout.write(`${server.padEnd(width)}  ${fingerprint}\n`)
}

export async function runServersTrust(args: ServersArgs): Promise<void> {
  const server = serverName(args.server)
  if ((args.ca === undefined) === (args.fingerprint === undefined))
    throw usageError('give the certificate (--ca FILE) or its fingerprint (--fingerprint SHA256), one of them')
  let fingerprint: string
  if (args.ca !== undefined) {
    let pem: Buffer
    try {
      pem = await readFile(args.ca)
    } catch (error) {
      throw new SecureLoginError(
        'ERR_USAGE',
        `cannot read --ca file ${args.ca} (${(error as NodeJS.ErrnoException).code})`,
      )
    }
    try {
      fingerprint = new X509Certificate(pem).fingerprint256
    } catch {
      throw new SecureLoginError('ERR_USAGE', `${args.ca} is not a PEM certificate`, {
        hint: "use the server's certs/server.crt",
      })
    }
  } else {
    const normal = normalizeFingerprint(args.fingerprint!)
    if (!normal) throw usageError('--fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed)')
    fingerprint = normal
  }
  const replaced = await replaceKnownServer(knownServersFile(), server, fingerprint)
  if (args.json) return printJson({ event: 'server_trusted', server, fingerprint, replaced })
  process.stdout.write(`trusted ${server} (sha256 ${fingerprint})${replaced > 0 ? ', replacing the old line' : ''}\n`)
}

export async function runServersForget(args: ServersArgs): Promise<void> {
  const server = serverName(args.server)
  const removed = await replaceKnownServer(knownServersFile(), server)
  if (args.json) return printJson({ event: 'server_forgotten', server, removed })
  process.stdout.write(
    removed > 0
      ? `forgot ${server}: the next connection shows its fingerprint and asks again\n`
      : `${server} was not a known server\n`,
  )
}
