import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { ConnectOptions, TrustPolicy } from '../client/connection.js'
import type { Notice } from '../protocol/calls.js'
import { normalizeFingerprint } from '../client/known-servers.js'
import { serverKey, type SessionOptions } from '../client/session.js'
import { SecureLoginError } from '../protocol/errors.js'
import { usageError } from './output.js'
import type { NoticeEvent } from './json-events.js'

export interface ClientArgs {
  server: string
  ca?: string | undefined
  acceptFingerprint?: string | undefined
  user?: string | undefined
  passwordStdin: boolean
  json: boolean
}

/** $SECURELOGIN_HOME, else ~/.config/securelogin: the known-servers file lives here. */
export function secureloginHome(): string {
  return process.env['SECURELOGIN_HOME'] || join(homedir(), '.config', 'securelogin')
}

export function parseServerAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim())
  const port = match ? Number(match[3]) : NaN
  if (!match || port < 1 || port > 65535) {
    throw usageError(`--server must be HOST:PORT, got ${JSON.stringify(value)}`, 'for example --server 127.0.0.1:7443')
  }
  return { host: (match[1] ?? match[2])!, port }
}

/** --ca pins a certificate; otherwise the known-servers file decides (trust on first use). */
export async function connectOptions(
  args: ClientArgs,
  confirmNewServer?: (fingerprint: string) => Promise<boolean>,
): Promise<ConnectOptions> {
  const { host, port } = parseServerAddress(args.server)
  let trust: TrustPolicy
  if (args.ca !== undefined) {
    let ca: Buffer
    try {
      ca = await readFile(args.ca)
    } catch (error) {
      throw new SecureLoginError(
        'ERR_USAGE',
        `cannot read --ca file ${args.ca} (${(error as NodeJS.ErrnoException).code})`,
      )
    }
    trust = { kind: 'ca', ca, caFile: args.ca, rememberIn: join(secureloginHome(), 'known_servers') }
  } else {
    if (args.acceptFingerprint !== undefined && !normalizeFingerprint(args.acceptFingerprint)) {
      throw usageError('--accept-fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed)')
    }
    trust = {
      kind: 'known-servers',
      file: join(secureloginHome(), 'known_servers'),
      ...(args.acceptFingerprint !== undefined ? { acceptFingerprint: args.acceptFingerprint } : {}),
      ...(confirmNewServer ? { confirmNewServer } : {}),
    }
  }
  return { host, port, trust, onNotice: (notice) => printNotice(notice, args) }
}

/**
 * A notice the server left for this session (docs/protocol.md, "Notices"), on stderr: stdout
 * holds the command's own output. With --json, one JSON line (docs/cli-json.md).
 */
function printNotice(notice: Notice, args: ClientArgs): void {
  if (args.json) {
    const { event: kind, at, address, renewalHeldUntil, message } = notice
    const line: NoticeEvent = { event: 'notice', kind, at, address, renewalHeldUntil, message }
    process.stderr.write(`${JSON.stringify(line)}\n`)
    return
  }
  // The server's words reach a terminal: no control character (an escape sequence) passes.
  const plain = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
  process.stderr.write(
    `securelogin: notice: your authenticator was replaced at ${plain(notice.at)} from ${plain(notice.address)}, ` +
      `with a recovery code; recovery codes cannot be renewed until ${plain(notice.renewalHeldUntil)}.\n` +
      `  ${plain(notice.message)}\n`,
  )
}

/** Where the session for --server is saved, and how to reach that server. */
export function sessionOptions(args: ClientArgs): SessionOptions {
  return {
    home: secureloginHome(),
    server: serverKey(parseServerAddress(args.server)),
    connect: () => connectOptions(args),
  }
}
