import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP } from 'node:net'
import type { AddressInfo } from 'node:net'
import { SecureLoginError } from '../protocol/errors.js'
import type { Logger } from './logger.js'

// The operator listener (`--ops-listen HOST:PORT`, off by default): /healthz, /readyz and
// /metrics for a load balancer and Prometheus (docs/operations.md). Plain HTTP on a loopback
// address, where only this machine can reach it; anywhere else HTTPS with the server's own
// certificate. It serves nothing a client of the login protocol could use, and it is bounded
// so that it cannot be used to take the server down: few connections, small headers, no
// bodies, short deadlines.

export interface OpsAddress {
  host: string
  port: number
}

export interface OpsOptions extends OpsAddress {
  /** The server's certificate and key: required for an address that is not loopback. */
  cert?: Buffer
  key?: Buffer
  /** The text of /metrics and its Content-Type. */
  metrics: () => Promise<{ contentType: string; text: string }>
  /** Undefined while the server can serve, else why not (one line): /readyz. */
  readiness: () => Promise<string | undefined>
  logger: Logger
}

export interface OpsListener extends OpsAddress {
  /** HTTPS (an address that is not loopback) or plain HTTP. */
  tls: boolean
  /** From now on /readyz answers 503 "stopping" (a graceful stop has begun), until the process exits. */
  stopping(): void
  /** New connections of an HTTPS listener use this pair (a certificate reloaded on SIGHUP). */
  setCertificate(cert: Buffer, key: Buffer): void
  close(): Promise<void>
}

/** Connections the listener holds at once: a load balancer's checks and a scraper or two. */
export const OPS_MAX_CONNECTIONS = 32
/** A request's headers must be whole within this, and the whole request too. */
const REQUEST_TIMEOUT_MS = 5_000
/** A kept-alive connection with no request for this long is closed. */
const IDLE_MS = 15_000
/** Bytes of request headers (Node's floor is far above what a scraper sends). */
const MAX_HEADER_BYTES = 8 * 1024
const ROUTES = new Set(['/healthz', '/readyz', '/metrics'])

/**
 * `HOST:PORT` (an IPv6 address in brackets: `[::1]:9464`); port 0 picks a free one. Refused
 * with ERR_USAGE when it is not one.
 */
export function parseOpsListen(text: string): OpsAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim())
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  if (!match || host === undefined || !(port >= 0 && port <= 65_535) || (match[1] !== undefined && isIP(host) !== 6))
    throw new SecureLoginError('ERR_USAGE', `--ops-listen takes HOST:PORT, not ${JSON.stringify(text.slice(0, 80))}`, {
      hint: 'for example --ops-listen 127.0.0.1:9464 (plain HTTP on loopback), or [::1]:9464',
    })
  return { host, port }
}

/** 127.0.0.0/8, ::1 (and IPv4-mapped 127.x), or `localhost`: only this machine reaches it. */
export function isLoopback(host: string): boolean {
  const lower = host.toLowerCase()
  if (lower === 'localhost' || lower === '::1') return true
  const v4 = lower.startsWith('::ffff:') ? lower.slice(7) : lower
  return isIP(v4) === 4 && v4.split('.')[0] === '127'
}

export async function startOpsListener(opts: OpsOptions): Promise<OpsListener> {
  const tls = !isLoopback(opts.host)
  if (tls && (!opts.cert || !opts.key))
    throw new SecureLoginError('ERR_CONFIG', `--ops-listen ${opts.host} is not loopback: it needs the certificate`)
  let stopping = false
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void answer(req, res, opts, () => stopping).catch((error: unknown) => {
      opts.logger.log('error', 'ops_error', { path: routeOf(req), error: String(error) })
      if (!res.headersSent) send(res, 500, 'internal error\n')
      else res.destroy()
    })
  }
  const limits = {
    maxHeaderSize: MAX_HEADER_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: IDLE_MS,
    // How often the deadlines above are checked (default 30 s).
    connectionsCheckingInterval: 1_000,
  }
  const server: Server = tls
    ? createHttpsServer(
        {
          ...limits,
          cert: opts.cert,
          key: opts.key,
          minVersion: 'TLSv1.3',
          handshakeTimeout: REQUEST_TIMEOUT_MS,
        },
        handler,
      )
    : createHttpServer(limits, handler)
  server.maxConnections = OPS_MAX_CONNECTIONS
  server.timeout = IDLE_MS
  // A peer that never finishes a TLS handshake or sends garbage: drop it, quietly.
  server.on('clientError', (_error, socket) => socket.destroy())
  if (tls) server.on('tlsClientError', (_error, socket) => socket.destroy())

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  }).catch((error: NodeJS.ErrnoException) => {
    throw new SecureLoginError('ERR_CONFIG', `cannot listen on ${opts.host}:${opts.port} (${error.code ?? error})`, {
      hint: 'choose another --ops-listen port (0 picks a free one) or host',
    })
  })
  const address = server.address() as AddressInfo
  return {
    host: address.address,
    port: address.port,
    tls,
    stopping() {
      stopping = true
    },
    setCertificate(cert, key) {
      if (tls) (server as ReturnType<typeof createHttpsServer>).setSecureContext({ cert, key, minVersion: 'TLSv1.3' })
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}

async function answer(req: IncomingMessage, res: ServerResponse, opts: OpsOptions, stopping: () => boolean) {
  const path = routeOf(req)
  if (!ROUTES.has(path)) return send(res, 404, 'not found\n')
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    return send(res, 405, 'method not allowed\n')
  }
  // No endpoint takes a body: one is refused, and discarded as it arrives (never kept; the
  // request deadline bounds how long it may take). Closing on it instead would reset the
  // connection under the answer.
  if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)
    return send(res, 413, 'no request body is accepted\n')
  if (path === '/healthz') return send(res, 200, 'ok\n')
  if (path === '/readyz') {
    const reason = stopping() ? 'stopping' : await opts.readiness()
    return reason === undefined ? send(res, 200, 'ready\n') : send(res, 503, `${oneLine(reason)}\n`)
  }
  const { contentType, text } = await opts.metrics()
  send(res, 200, text, contentType)
}

/** The path without its query: the same answer whatever a scraper appends. */
function routeOf(req: IncomingMessage): string {
  const url = req.url ?? ''
  const query = url.indexOf('?')
  return query < 0 ? url : url.slice(0, query)
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') {
  res.statusCode = status
  res.setHeader('Content-Type', type)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** A reason is one short line whatever it came from. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 200)
}
