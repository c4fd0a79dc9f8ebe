// An application that lets securelogin vouch for its users (docs/tokens.md): a small HTTPS
// server that never sees a password and never talks to the securelogin server. A request
// carries `Authorization: Bearer TOKEN` (from `securelogin token --audience NAME`); the token is
// checked offline against the securelogin server's public keys (its certs/jwks.json), for this
// application's name alone, and the answer says who the user is. Anything else is 401.
//
//   npm run build
//   node dist/examples/app-server.js --jwks certs/jwks.json --audience billing \
//     --cert app-certs/server.crt --key app-certs/server.key --port 8443
//   curl --cacert app-certs/server.crt -H "Authorization: Bearer $(securelogin token --audience billing)" \
//     https://127.0.0.1:8443/whoami
//
// The JWKS file is read again for every request, so a rotated key (`securelogin store
// rotate-signing-key`, then a server restart) is picked up without restarting this one.
import { readFile } from 'node:fs/promises'
import { createServer, type ServerOptions } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'
import { SecureLoginError, verifyToken } from 'securelogin'

const { values } = parseArgs({
  options: {
    jwks: { type: 'string' },
    audience: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8443' },
  },
})
for (const required of ['jwks', 'audience', 'cert', 'key'] as const) {
  if (values[required] === undefined) {
    process.stderr.write(
      `app-server: error: --${required} is required (--jwks FILE --audience NAME --cert FILE --key FILE [--host H] [--port P])\n`,
    )
    process.exit(2)
  }
}
const { jwks: jwksFile, audience } = values as { jwks: string; audience: string }
const log = (fields: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...fields, time: new Date().toISOString() })}\n`)
}

/** 401 with RFC 6750's challenge: the code and the reason, never the token. */
function refuse(response: ServerResponse, code: string, message: string): void {
  response.writeHead(401, {
    'content-type': 'application/json',
    'www-authenticate': `Bearer realm="${audience}", error="invalid_token", error_description="${message.replace(/"/g, "'")}"`,
  })
  response.end(JSON.stringify({ error: code, message }))
}

async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method !== 'GET' || request.url !== '/whoami') {
    response.writeHead(404, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ error: 'not_found' }))
    return log({ event: 'request', path: request.url, status: 404 })
  }
  const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(request.headers.authorization ?? '')
  if (!match) {
    refuse(response, 'ERR_TOKEN_INVALID', 'no bearer token')
    return log({ event: 'request', path: request.url, status: 401, code: 'ERR_TOKEN_INVALID' })
  }
  try {
    const claims = await verifyToken(match[1]!, { jwks: await readFile(jwksFile, 'utf8'), audience })
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(
      JSON.stringify({
        user: claims.sub,
        role: claims.role,
        audience: claims.aud,
        expiresAt: new Date(claims.exp * 1000).toISOString(),
      }),
    )
    log({ event: 'request', path: request.url, status: 200, user: claims.sub, jti: claims.jti })
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    refuse(response, error.code, error.message)
    log({ event: 'request', path: request.url, status: 401, code: error.code })
  }
}

const tls: ServerOptions = {
  cert: await readFile(values.cert!),
  key: await readFile(values.key!),
  minVersion: 'TLSv1.3',
}
const server = createServer(tls, (request, response) => {
  handle(request, response).catch((error: unknown) => {
    log({ event: 'internal_error', error: String(error) })
    if (!response.headersSent) response.writeHead(500)
    response.end()
  })
})
server.listen(Number(values.port), values.host, () => {
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : Number(values.port)
  log({ event: 'listening', url: `https://${values.host}:${port}`, port, audience })
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.close(() => process.exit(0)))
