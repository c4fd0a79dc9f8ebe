import { spawn } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Jwks } from '../../src/protocol/signed-tokens.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, parseResult, type Account, type CliResult } from '../helpers/accounts.js'
import { Bench } from '../helpers/conversation.js'
import { requireTool } from '../helpers/tools.js'
import { ROOT } from '../helpers/env.js'
import { noteOutput, noteSecret } from '../helpers/secrets.js'

// Signed session tokens (issue 8) through the real server process and the real CLI: the
// signing key made on the first start, certs/jwks.json and `securelogin jwks`, `token` and its
// output, offline `verify-token` and its exit codes, `--check-session` after a logout, another
// server's token, the example application, and `store rotate-signing-key` with the old key kept
// until its tokens have expired. The claims, token_check, jose's own verifier and the audit
// entry are tested one layer down: test/conversation/signed-tokens.test.ts. "Another server" is
// a server core in this process (test/helpers/conversation.ts): only its token and keys matter.
//
// The servers' clocks start five minutes behind this machine's, so a token's iat is never ahead
// of the verifier's clock however far the tests move the server's. Real time goes on meanwhile
// (ten minutes on a loaded machine): a token that a verifier on this machine's clock must accept
// lives an hour, or a 5-minute one would expire by chance.

const hasOathtool = requireTool('oathtool')
const MINUTE = 60_000

let lab: Lab
let other: Bench
let root: Account
let ada: Account

beforeAll(async () => {
  lab = await Lab.start('tokens', { serverArgs: ['--registration', 'open'], startMs: Date.now() - 5 * MINUTE })
  if (!hasOathtool) return
  // Accounts and logins through the client library in this process: the CLI's are other files'.
  root = await lab.registerDirect('root', { invite: await lab.bootstrapToken() })
  ada = await lab.registerDirect('ada')
  await lab.loginDirect(root)
  await lab.loginDirect(ada)
  other = await Bench.start({ registration: 'open', startMs: Date.now() - 5 * MINUTE })
  const { type: _, ...jwks } = await other.connect().request({ type: 'jwks_get' }, 'jwks')
  await writeFile(otherJwksPath(), JSON.stringify(jwks))
}, 240_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
  await other?.stop()
})

function expectOk(result: CliResult, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(0)
}

function expectCode(result: CliResult, code: string, what: string): void {
  expect(result.code, `${what}: ${describeResult(result)}`).toBe(code === 'ERR_USAGE' ? 2 : 1)
  expect(result.error?.code, `${what}: ${describeResult(result)}`).toBe(code)
}

const jwksPath = (of: Lab) => join(of.dir, 'certs', 'jwks.json')
const otherJwksPath = () => join(lab.dir, 'other-jwks.json')
const readJwks = async (of: Lab) => Jwks.parse(JSON.parse(await readFile(jwksPath(of), 'utf8')))

/** `securelogin token` as `who`, in JSON: the token and what the server says of it. */
async function tokenFor(
  who: Account,
  audience: string,
  ttl?: string,
): Promise<{ token: string; kid: string; jti: string; expiresAt: string }> {
  const result = await lab.run(who, ['token', '--audience', audience, ...(ttl ? ['--ttl', ttl] : [])])
  expectOk(result, `token --audience ${audience}`)
  return result.json as { token: string; kid: string; jti: string; expiresAt: string }
}

/** A token from the other server, for one of its users. */
async function foreignToken(): Promise<string> {
  const bea = other.users.get('bea') ?? (await other.register('bea'))
  const { token } = await (await other.login(bea)).peer.call('token', { audience: 'billing', ttlSeconds: 3600 })
  noteSecret('signed token', token)
  return token
}

/** `securelogin verify-token` with the token on stdin (it never goes on a command line here). */
function verify(token: string, audience: string, jwks = jwksPath(lab), more: string[] = []): Promise<CliResult> {
  return lab.run('verifier', ['verify-token', '--jwks', jwks, '--audience', audience, ...more, '-'], `${token}\n`)
}

/** The token with one character of its payload changed (still base64url, still three parts). */
function tampered(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  const changed = Buffer.from(JSON.stringify({ ...claims, role: 'system_admin' })).toString('base64url')
  return `${header}.${changed}.${signature}`
}

/** examples/app-server (built into dist/examples by the build), stopped by its pid. */
async function startApp(args: string[]): Promise<{ port: number; stop: () => Promise<void>; output: () => string }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'examples', 'app-server.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text))
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM')
    await exited
    noteOutput('examples/app-server', 'log', output)
  }
  const deadline = Date.now() + 15_000
  while (!output.includes('"event":"listening"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`the example app did not start: ${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const port = JSON.parse(output.split('\n')[0]!).port as number
  return { port, stop, output: () => output }
}

/** GET https://127.0.0.1:PORT/PATH with the token as a bearer, trusting `caFile`. */
async function httpsGet(
  port: number,
  path: string,
  caFile: string,
  token?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }> {
  const ca = await readFile(caFile)
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, ca, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text || '{}') }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

describe.skipIf(!hasOathtool)('signed tokens', () => {
  it('writes certs/jwks.json on the first start (one Ed25519 key, mode 0644), and `securelogin jwks` prints the same keys', async () => {
    const jwks = await readJwks(lab)
    expect(jwks.keys).toHaveLength(1)
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
    expect(jwks.keys[0]).not.toHaveProperty('d')
    expect((await stat(jwksPath(lab))).mode & 0o777).toBe(0o644)
    const printed = await runCliToEnd(['jwks', '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath], '')
    expect(printed.code).toBe(0)
    expect(JSON.parse(printed.stdout)).toEqual(jwks)
  })

  it('token: the token, its key, jti and expiry in JSON; the token alone in plain output', async () => {
    const issued = await tokenFor(ada, 'billing')
    expect(Object.keys(issued).sort()).toEqual(['audience', 'event', 'expiresAt', 'jti', 'kid', 'token'])
    expect(issued).toMatchObject({
      event: 'token',
      audience: 'billing',
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
    })
    expect(issued.kid).toBe(decodeProtectedHeader(issued.token).kid)
    expect(issued.kid).toBe((await readJwks(lab)).keys[0]!.kid)
    // Five minutes by the server's clock, unless --ttl says otherwise.
    expect(Date.parse(issued.expiresAt) - lab.clock.ms).toBe(5 * MINUTE)
    // Plain output is the token alone, for $(securelogin token ...).
    const plain = await runCliToEnd(
      ['token', '--audience', 'billing', '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath],
      '',
      { env: { SECURELOGIN_HOME: ada.home } },
    )
    expect(plain.code).toBe(0)
    expect(plain.stdout).toMatch(/^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/)
  })

  it('verify-token prints the claims of a good token; refuses another audience, a tampered one and an expired one with their codes', async () => {
    const { token } = await tokenFor(ada, 'billing', '1h')
    const good = await verify(token, 'billing')
    expectOk(good, 'verify-token')
    expect(good.json).toMatchObject({
      event: 'token_valid',
      claims: { sub: 'ada', role: 'regular_user', aud: 'billing' },
      sessionChecked: false,
    })
    expectCode(await verify(token, 'payroll'), 'ERR_TOKEN_AUDIENCE', 'another audience')
    expectCode(await verify(tampered(token), 'billing'), 'ERR_TOKEN_INVALID', 'tampered')
    // The server's clock is five minutes behind: a 10 s token expired long ago by this clock.
    const { token: short } = await tokenFor(ada, 'billing', '10s')
    expectCode(await verify(short, 'billing'), 'ERR_TOKEN_EXPIRED', 'expired')
    // As the command line the issue gives: the token as an argument.
    const positional = parseResult(
      await runCliToEnd(['verify-token', '--jwks', jwksPath(lab), '--audience', 'billing', token, '--json'], ''),
    )
    expect(positional.code, describeResult(positional)).toBe(0)
    expect(positional.json).toMatchObject({ event: 'token_valid', claims: { sub: 'ada' } })
    // The plain output says who, for people.
    const plain = parseResult(
      await runCliToEnd(['verify-token', '--jwks', jwksPath(lab), '--audience', 'billing', '-'], `${token}\n`),
    )
    expect(plain.code).toBe(0)
    expect(plain.stdout).toContain('valid token for billing')
    expect(plain.stdout).toContain('user ada (regular_user)')
  })

  it("refuses another server's token: its key is not in this server's JWKS", async () => {
    const token = await foreignToken()
    expectCode(await verify(token, 'billing'), 'ERR_TOKEN_INVALID', "another server's token")
    expectOk(await verify(token, 'billing', otherJwksPath()), 'its own server verifies it')
  })

  it('--check-session asks the server: live until the session ends, then ERR_TOKEN_REVOKED (offline it still verifies)', async () => {
    const home = lab.homeOf('ada-second')
    await lab.loginDirect(ada, { home })
    const issued = await lab.runIn(home, ['token', '--audience', 'billing', '--ttl', '1h'])
    expectOk(issued, 'token')
    const token = issued.json!['token'] as string
    const check = () => verify(token, 'billing', jwksPath(lab), ['--check-session'])
    const live = await check()
    expectOk(live, 'check-session, live')
    expect(live.json).toMatchObject({ sessionChecked: true })
    expectOk(await lab.runIn(home, ['logout']), 'logout')
    expectCode(await check(), 'ERR_TOKEN_REVOKED', 'after the logout')
    expectOk(await verify(token, 'billing'), 'offline, the signature and expiry still hold')
  })

  it('refuses a token without a session, a bad --ttl and a bad --audience before asking the server', async () => {
    expectCode(await lab.run('nobody', ['token', '--audience', 'billing']), 'ERR_FORBIDDEN', 'no saved session')
    expectCode(await lab.run(ada, ['token', '--audience', 'billing', '--ttl', '2h']), 'ERR_USAGE', 'ttl over an hour')
    expectCode(await lab.run(ada, ['token', '--audience', 'billing', '--ttl', '5s']), 'ERR_USAGE', 'ttl under 10 s')
    expectCode(await lab.run(ada, ['token', '--audience', 'a b']), 'ERR_USAGE', 'audience with a space')
    expectCode(await verify('x.y.z', 'billing', join(lab.dir, 'no-such-jwks.json')), 'ERR_USAGE', 'no JWKS file')
  })

  it('the server logs each token issued, never the token', async () => {
    const { token, jti } = await tokenFor(ada, 'log-check')
    expect(lab.server.log()).not.toContain(token)
    expect(lab.server.log()).toMatch(new RegExp(`"event":"token_issued"[^\\n]*"jti":"${jti}"`))
  })
})

describe.skipIf(!hasOathtool)('examples/app-server (an application that trusts the tokens)', () => {
  let app: { port: number; stop: () => Promise<void>; output: () => string }

  beforeAll(async () => {
    if (!hasOathtool) return
    app = await startApp([
      '--jwks',
      jwksPath(lab),
      '--audience',
      'billing',
      '--cert',
      lab.certPath,
      '--key',
      join(lab.dir, 'certs', 'server.key'),
      '--port',
      '0',
    ])
  })
  afterAll(async () => {
    await app?.stop()
  })

  const whoami = (token?: string, path = '/whoami') => httpsGet(app.port, path, lab.certPath, token)

  it('answers a request with a good token for its audience with who the user is', async () => {
    const { token } = await tokenFor(ada, 'billing', '1h')
    const answer = await whoami(token)
    expect(answer.status).toBe(200)
    expect(answer.body).toMatchObject({ user: 'ada', role: 'regular_user', audience: 'billing' })
  })

  it("refuses no token, an expired one, another audience's, a tampered one and another server's, each with its code", async () => {
    const { token: expired } = await tokenFor(ada, 'billing', '10s')
    const { token: payroll } = await tokenFor(ada, 'payroll', '1h')
    const { token: good } = await tokenFor(ada, 'billing', '1h')
    const foreign = await foreignToken()
    const cases: Array<[string, string | undefined, string]> = [
      ['no token', undefined, 'ERR_TOKEN_INVALID'],
      ['expired', expired, 'ERR_TOKEN_EXPIRED'],
      ['another audience', payroll, 'ERR_TOKEN_AUDIENCE'],
      ['tampered', tampered(good), 'ERR_TOKEN_INVALID'],
      ["another server's", foreign, 'ERR_TOKEN_INVALID'],
    ]
    for (const [what, token, code] of cases) {
      const answer = await whoami(token)
      expect(answer.status, what).toBe(401)
      expect(answer.body, what).toMatchObject({ error: code })
      expect(answer.headers['www-authenticate'], what).toMatch(/^Bearer realm="billing", error="invalid_token"/)
    }
    expect((await whoami(good, '/admin')).status).toBe(404)
    // The application's log names users and codes, never a token.
    for (const token of [expired, payroll, good, foreign]) expect(app.output()).not.toContain(token)
    expect(app.output()).toContain('"status":401')
  })
})

describe.skipIf(!hasOathtool)('signing key rotation', () => {
  it('rotate-signing-key: refused beside the running server; then a new current key, the old one kept until its tokens expire, then dropped', async () => {
    const before = await readJwks(lab)
    const { token: old } = await tokenFor(ada, 'billing', '1h')
    const storeArgs = [
      'store',
      'rotate-signing-key',
      '--store',
      lab.storePath,
      '--passphrase-file',
      lab.passphraseFile,
      '--json',
    ]
    const busy = parseResult(await runCliToEnd(storeArgs, ''))
    expect(busy.error?.code).toBe('ERR_STORE_LOCKED')

    await lab.stopServer()
    const rotated = parseResult(await runCliToEnd(storeArgs, ''))
    expect(rotated.code, describeResult(rotated)).toBe(0)
    expect(rotated.json).toMatchObject({ event: 'signing_key_rotated', retired: before.keys[0]!.kid, keys: 2 })
    await lab.startServer()
    const after = await readJwks(lab)
    expect(after.keys.map((k) => k.kid)).toEqual([rotated.json!['kid'], before.keys[0]!.kid])
    // The old key's token still verifies; new tokens are signed with the new key.
    expectOk(await verify(old, 'billing'), "the retired key's token")
    await lab.loginDirect(ada)
    const fresh = await tokenFor(ada, 'billing', '1h')
    expect(fresh.kid).toBe(rotated.json!['kid'])
    expectOk(await verify(fresh.token, 'billing'), "the new key's token")
    // The rotation is in the audit log.
    const audit = await lab.run(root, ['admin', 'audit'])
    expectOk(audit, 'admin audit')
    expect(
      audit.events.some((e) => e['action'] === 'signing_key.rotated' && e['target'] === rotated.json!['kid']),
    ).toBe(true)

    // Once the longest token life and the clock slack have passed since the rotation (the store
    // command used this machine's clock, the server's is five minutes behind), the retired key
    // is dropped at the next start.
    await lab.stopServer()
    lab.clock.advance(70 * MINUTE)
    await lab.startServer()
    expect((await readJwks(lab)).keys.map((k) => k.kid)).toEqual([rotated.json!['kid']])
    expectCode(await verify(old, 'billing'), 'ERR_TOKEN_INVALID', 'a token of a key long retired')
  })
})
