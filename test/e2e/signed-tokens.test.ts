import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { generateSigningKey, signToken, verifyToken, type SigningKey } from '../../src/auth/signed-tokens.js'
import { runStoreRotateSigningKey } from '../../src/cli/store.js'
import { runToken, runVerifyToken } from '../../src/cli/token.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { Jwks, type TokenClaims } from '../../src/protocol/signed-tokens.js'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, parseResult, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'
import { storeKind, storeKindAvailable } from '../helpers/store-kind.js'
import { ROOT } from '../helpers/env.js'
import { noteOutput, noteSecret } from '../helpers/secrets.js'

// Signed session tokens (issue 8) through the real server process and the real CLI: the
// signing key made on the first start, certs/jwks.json and `securelogin jwks`, `token` and its
// output, offline `verify-token` and its exit codes, `--check-session` after a logout, another
// server's token, the example application, and `store rotate-signing-key` with the old key kept
// until its tokens have expired. The claims, token_check, jose's own verifier and the audit
// entry are tested one layer down: test/conversation/signed-tokens.test.ts; verifyToken() case
// by case: test/unit/verify-token.test.ts.
//
// A CLI process costs about half a second, so each command's output, exit code and error line
// is shown by one or two runs, and the rest of a table goes through the same code in this
// process: `verify-token` reads the JWKS file and hands it to verifyToken() (src/cli/token.ts),
// which verifiedHere() calls on the very file the server wrote; a refusal the command makes
// before printing anything is its run function called here; every error becomes the exit code
// and the stderr line in one place (src/cli/output.ts, reportError), which the runs here show
// for both codes. Tokens that are only inputs come from the `token` call on the saved session,
// in this process. "Another server" is another Ed25519 key signing a token as a server does.
//
// The servers' clocks start five minutes behind this machine's, so a token's iat is never ahead
// of the verifier's clock however far the tests move the server's. Real time goes on meanwhile
// (ten minutes on a loaded machine): a token that a verifier on this machine's clock must accept
// lives an hour, or a 5-minute one would expire by chance.

// Once on each store kind (vitest.config.ts): skipped, with one line, without oathtool or the
// kind's server (PostgreSQL); under CI either fails instead.
const canRun = requireTool('oathtool') && (await storeKindAvailable())
const MINUTE = 60_000

let lab: Lab
let ada: Account
let otherKey: SigningKey

beforeAll(async () => {
  lab = await Lab.start('tokens', { serverArgs: ['--registration', 'open'], startMs: Date.now() - 5 * MINUTE })
  if (!canRun) return
  await noteBootstrapToken()
  // The account and its login through the client library in this process: the CLI's are other files'.
  ada = await lab.registerDirect('ada')
  await lab.loginDirect(ada)
  otherKey = await generateSigningKey()
  await writeFile(otherJwksPath(), JSON.stringify({ keys: [otherKey.publicJwk] }))
}, 240_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

/** No system_admin is made here, so each start writes a fresh bootstrap token: noted, for the secret check. */
async function noteBootstrapToken(): Promise<void> {
  await lab.bootstrapToken()
}

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
): Promise<{ token: string; kid: string; jti: string; expiresAt: string }> {
  const result = await lab.run(who, ['token', '--audience', audience])
  expectOk(result, `token --audience ${audience}`)
  return result.json as { token: string; kid: string; jti: string; expiresAt: string }
}

/** Tokens from the `token` call on the session saved in `home` (ada's unless given), in this process. */
async function issue(
  audience: string,
  ttlSeconds: number,
  home = ada.home,
): Promise<{ token: string; kid: string; jti: string; expiresAt: string }> {
  const issued = await lab.asUser(home, (run) => run('token', { audience, ttlSeconds }))
  noteSecret('signed token', issued.token)
  return issued
}

/**
 * `token --audience billing --ttl 10s` in plain output, run once for the file: its stdout is the
 * token alone, and by this machine's clock the token expired long ago (the server's is five
 * minutes behind).
 */
let plainShort: Promise<CliResult> | undefined
const plainShortToken = () =>
  (plainShort ??= runCliToEnd(
    ['token', '--audience', 'billing', '--ttl', '10s', '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath],
    '',
    { env: { SECURELOGIN_HOME: ada.home } },
  ).then(parseResult))

/** A token of ada's claims, signed by the other key under another issuer: what another server's looks like. */
async function foreignToken(like: string): Promise<string> {
  const claims = { ...(decodeJwt(like) as TokenClaims), iss: `securelogin:${randomBytes(8).toString('hex')}` }
  const token = await signToken(otherKey.privateJwk, otherKey.kid, claims)
  noteSecret('signed token', token)
  return token
}

/** `securelogin verify-token` with the token on stdin (it never goes on a command line here). */
function verify(token: string, audience: string, jwks = jwksPath(lab), more: string[] = []): Promise<CliResult> {
  return lab.run('verifier', ['verify-token', '--jwks', jwks, '--audience', audience, ...more, '-'], `${token}\n`)
}

/** What `verify-token` decides for this token against this JWKS file: 'ok', or the error's code. */
async function verifiedHere(token: string, audience: string, jwks = jwksPath(lab)): Promise<string> {
  try {
    await verifyToken(token, { jwks: await readFile(jwks, 'utf8'), audience })
    return 'ok'
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    return error.code
  }
}

const clientArgs = () => ({ server: `127.0.0.1:${lab.port}`, ca: lab.certPath, json: true, passwordStdin: false })

/**
 * A command's run function in this process, as the client whose home is `home`, for a refusal
 * it makes before printing anything: the error's code (and nothing written to stdout).
 */
async function refusedHere(home: string, work: () => Promise<void>): Promise<string> {
  const saved = process.env['SECURELOGIN_HOME']
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
  process.env['SECURELOGIN_HOME'] = home
  try {
    await work()
    return 'ok'
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    return error.code
  } finally {
    if (saved === undefined) delete process.env['SECURELOGIN_HOME']
    else process.env['SECURELOGIN_HOME'] = saved
    const written = stdout.mock.calls.length
    stdout.mockRestore()
    expect(written, 'written to stdout before the refusal').toBe(0)
  }
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

describe.skipIf(!canRun)('signed tokens', () => {
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

  it('token: the token, its key, jti and expiry in JSON, logged by the server without the token; the token alone in plain output', async () => {
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
    // The server logs each token issued, never the token.
    expect(lab.server.log()).not.toContain(issued.token)
    expect(lab.server.log()).toMatch(new RegExp(`"event":"token_issued"[^\\n]*"jti":"${issued.jti}"`))
    // Plain output is the token alone, for $(securelogin token ...).
    const plain = await plainShortToken()
    expect(plain.code, describeResult(plain)).toBe(0)
    expect(plain.stdout).toMatch(/^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/)
  })

  it('verify-token prints the claims of a good token; refuses another audience, a tampered one and an expired one with their codes', async () => {
    const { token } = await issue('billing', 3600)
    const good = await verify(token, 'billing')
    expectOk(good, 'verify-token')
    expect(good.json).toMatchObject({
      event: 'token_valid',
      claims: { sub: 'ada', role: 'regular_user', aud: 'billing' },
      sessionChecked: false,
    })
    // As the command line the issue gives (the token as an argument), in the plain output that says who, for people.
    const plain = parseResult(
      await runCliToEnd(['verify-token', '--jwks', jwksPath(lab), '--audience', 'billing', token], ''),
    )
    expect(plain.code, describeResult(plain)).toBe(0)
    expect(plain.stdout).toContain('valid token for billing')
    expect(plain.stdout).toContain('user ada (regular_user)')
    // A refusal through the command: its code on stderr, exit 1 (the 10 s token of `token`'s plain output).
    const short = (await plainShortToken()).stdout.trim()
    expectCode(await verify(short, 'billing'), 'ERR_TOKEN_EXPIRED', 'expired')
    // The other refusals through the same verifyToken() on the same file (see the header).
    expect(await verifiedHere(token, 'payroll'), 'another audience').toBe('ERR_TOKEN_AUDIENCE')
    expect(await verifiedHere(tampered(token), 'billing'), 'tampered').toBe('ERR_TOKEN_INVALID')
  })

  it("refuses another server's token: its key is not in this server's JWKS", async () => {
    const token = await foreignToken((await issue('billing', 3600)).token)
    expect(await verifiedHere(token, 'billing'), "another server's token").toBe('ERR_TOKEN_INVALID')
    expect(await verifiedHere(token, 'billing', otherJwksPath()), 'its own server verifies it').toBe('ok')
  })

  it('--check-session asks the server: live until the session ends, then ERR_TOKEN_REVOKED (offline it still verifies)', async () => {
    const home = lab.homeOf('ada-second')
    await lab.loginDirect(ada, { home })
    const { token } = await issue('billing', 3600, home)
    const live = await verify(token, 'billing', jwksPath(lab), ['--check-session'])
    expectOk(live, 'check-session, live')
    expect(live.json).toMatchObject({ sessionChecked: true })
    // `logout` is the sessions tests' command; here its call, on that session.
    expect(await lab.asUser(home, (run) => run('logout', {}))).toEqual({ revoked: 1 })
    const args = { ...clientArgs(), jwks: jwksPath(lab), audience: 'billing', token, checkSession: true }
    expect(await refusedHere(home, () => runVerifyToken(args)), 'after the logout').toBe('ERR_TOKEN_REVOKED')
    expect(await verifiedHere(token, 'billing'), 'offline, the signature and expiry still hold').toBe('ok')
  })

  it('refuses a token without a session, a bad --ttl and a bad --audience before asking the server', async () => {
    expectCode(await lab.run(ada, ['token', '--audience', 'billing', '--ttl', '2h']), 'ERR_USAGE', 'ttl over an hour')
    // The same command's other refusals, in this process (see the header).
    const token =
      (ttl: string, audience = 'billing') =>
      () =>
        runToken({ ...clientArgs(), audience, ttl })
    expect(await refusedHere(lab.homeOf('nobody'), token('5m')), 'no saved session').toBe('ERR_FORBIDDEN')
    expect(await refusedHere(ada.home, token('5s')), 'ttl under 10 s').toBe('ERR_USAGE')
    expect(await refusedHere(ada.home, token('5m', 'a b')), 'audience with a space').toBe('ERR_USAGE')
    const noJwks = {
      ...clientArgs(),
      jwks: join(lab.dir, 'no-such-jwks.json'),
      audience: 'billing',
      checkSession: false,
    }
    expect(await refusedHere(ada.home, () => runVerifyToken({ ...noJwks, token: 'x.y.z' })), 'no JWKS file').toBe(
      'ERR_USAGE',
    )
  })
})

describe.skipIf(!canRun)('examples/app-server (an application that trusts the tokens)', () => {
  let app: { port: number; stop: () => Promise<void>; output: () => string }

  beforeAll(async () => {
    if (!canRun) return
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
    const { token } = await issue('billing', 3600)
    const answer = await whoami(token)
    expect(answer.status).toBe(200)
    expect(answer.body).toMatchObject({ user: 'ada', role: 'regular_user', audience: 'billing' })
  })

  it("refuses no token, an expired one, another audience's, a tampered one and another server's, each with its code", async () => {
    const { token: expired } = await issue('billing', 10)
    const { token: payroll } = await issue('payroll', 3600)
    const { token: good } = await issue('billing', 3600)
    const foreign = await foreignToken(good)
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

describe.skipIf(!canRun)('signing key rotation', () => {
  it('rotate-signing-key: refused beside the running server; then a new current key, the old one kept until its tokens expire, then dropped', async () => {
    const before = await readJwks(lab)
    const { token: old } = await issue('billing', 3600)
    const storeArgs = { store: lab.storePath, passphraseFile: lab.passphraseFile, json: true }
    // The store lock's refusal, in this process: the server process holds the lock. A database
    // has no lock (many servers share it, docs/scaling.md), so there the rotation is not refused.
    if (storeKind() === 'file')
      expect(await refusedHere(lab.dir, () => runStoreRotateSigningKey(storeArgs)), 'beside the server').toBe(
        'ERR_STORE_LOCKED',
      )

    await lab.stopServer()
    const rotated = parseResult(
      await runCliToEnd(
        ['store', 'rotate-signing-key', '--store', lab.storePath, '--passphrase-file', lab.passphraseFile, '--json'],
        '',
      ),
    )
    expect(rotated.code, describeResult(rotated)).toBe(0)
    expect(rotated.json).toMatchObject({ event: 'signing_key_rotated', retired: before.keys[0]!.kid, keys: 2 })
    await lab.startServer()
    await noteBootstrapToken()
    const after = await readJwks(lab)
    expect(after.keys.map((k) => k.kid)).toEqual([rotated.json!['kid'], before.keys[0]!.kid])
    // The old key's token still verifies; new tokens (the session outlives the restart) are signed with the new key.
    expect(await verifiedHere(old, 'billing'), "the retired key's token").toBe('ok')
    const fresh = await issue('billing', 3600)
    expect(fresh.kid).toBe(rotated.json!['kid'])
    expect(await verifiedHere(fresh.token, 'billing'), "the new key's token").toBe('ok')

    // Once the longest token life and the clock slack have passed since the rotation (the store
    // command used this machine's clock, the server's is five minutes behind), the retired key
    // is dropped at the next start.
    await lab.stopServer()
    // Meanwhile the rotation is in the audit log the store command wrote it to.
    const store = await lab.openStore()
    try {
      const entries = await Promise.all((await store.keys('audit/')).map((key) => store.get<AuditEntry>(key)))
      expect(entries.some((e) => e!.action === 'signing_key.rotated' && e!.target === rotated.json!['kid'])).toBe(true)
    } finally {
      await store.close()
    }
    lab.clock.advance(70 * MINUTE)
    await lab.startServer()
    await noteBootstrapToken()
    expect((await readJwks(lab)).keys.map((k) => k.kid)).toEqual([rotated.json!['kid']])
    expect(await verifiedHere(old, 'billing'), 'a token of a key long retired').toBe('ERR_TOKEN_INVALID')
  })
})
