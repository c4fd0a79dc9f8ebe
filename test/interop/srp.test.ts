import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import srpClient from 'secure-remote-password/client.js'
import { generate } from 'otplib'
import { finishServerLogin, startServerLogin } from '../../src/auth/srp-server.js'
import {
  createRegistration,
  deriveClientSession,
  derivePrivateKey,
  startClientLogin,
  verifyServerProof,
} from '../../src/auth/srp-client.js'
import { DEFAULT_PASSWORD_KDF } from '../../src/auth/password-stretch.js'
import { encodeTotpSecret, secretFromOtpauthUri } from '../../src/auth/totp.js'
import { ServerConnection } from '../../src/client/connection.js'
import { authenticate, submitOtp } from '../../src/client/login.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { startPackageServer } from '../helpers/package-server.js'
import { RawClient } from '../helpers/raw-client.js'
import { noteSecret } from '../helpers/secrets.js'
import { hasUser } from '../helpers/records.js'

const PASSWORD = 'interop password 1'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('SRP maths: the package and our wrappers agree', () => {
  it('our server functions accept the package client and return an M2 it verifies', () => {
    const salt = srpClient.generateSalt()
    const x = srpClient.derivePrivateKey(salt, 'carol', PASSWORD)
    const verifier = srpClient.deriveVerifier(x)
    const client = srpClient.generateEphemeral()
    const server = startServerLogin(verifier)
    const session = srpClient.deriveSession(client.secret, server.B, salt, 'carol', x)
    const { M2, K } = finishServerLogin({
      ephemeral: server,
      A: client.public,
      salt,
      username: 'carol',
      verifier,
      M1: session.proof,
    })
    expect(K).toBe(session.key)
    expect(() => srpClient.verifySession(client.public, session, M2)).not.toThrow()
  })

  it('our server functions refuse a proof made with the wrong password (ERR_AUTH_FAILED)', async () => {
    const { salt, verifier, kdf } = await createRegistration('carol', PASSWORD)
    const client = startClientLogin()
    const server = startServerLogin(verifier)
    const x = await derivePrivateKey({ salt, username: 'carol', password: 'wrong password', kdf })
    const session = deriveClientSession({ ephemeral: client, salt, B: server.B, username: 'carol', x })
    expect(() =>
      finishServerLogin({ ephemeral: server, A: client.A, salt, username: 'carol', verifier, M1: session.M1 }),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_FAILED' }))
  })

  it('our client refuses B = 0 mod N and a wrong M2 (ERR_SERVER_AUTH_FAILED)', async () => {
    const { salt, verifier, kdf } = await createRegistration('carol', PASSWORD)
    const x = await derivePrivateKey({ salt, username: 'carol', password: PASSWORD, kdf })
    const ephemeral = startClientLogin()
    expect(() => deriveClientSession({ ephemeral, salt, B: '0'.repeat(512), username: 'carol', x })).toThrow(
      expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }),
    )
    // B >= N, though not 0 mod N: the package would take it; the client holds B to 0 < B < N.
    const NPlusOne = (RFC5054_2048.N + 1n).toString(16).padStart(512, '0')
    expect(() => deriveClientSession({ ephemeral, salt, B: NPlusOne, username: 'carol', x })).toThrow(
      expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }),
    )
    const server = startServerLogin(verifier)
    const session = deriveClientSession({ ephemeral, salt, B: server.B, username: 'carol', x })
    expect(() => verifyServerProof({ A: ephemeral.A, session, M2: 'f'.repeat(64) })).toThrow(
      expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }),
    )
  })
})

describe('over the wire', () => {
  let server: InProcessServer

  it("the package's own client registers and logs in to our server", async () => {
    server = await startInProcessServer({ server: { registration: 'open' } })
    cleanups.push(() => server.stop())
    const raw = await RawClient.open(server.server.port)
    cleanups.push(() => raw.close())

    const salt = srpClient.generateSalt()
    // The package's client with our stretch in front of it: x = H(s, H(I | ':' | scrypt(p, s))).
    const x = await derivePrivateKey({ salt, username: 'dave', password: PASSWORD, kdf: DEFAULT_PASSWORD_KDF })
    const enrol = await raw.request({
      type: 'register_start',
      username: 'dave',
      salt,
      verifier: srpClient.deriveVerifier(x),
      kdf: DEFAULT_PASSWORD_KDF,
    })
    expect(enrol.type).toBe('enrol')
    const secret = secretFromOtpauthUri(enrol.otpauthUri)!
    expect(await raw.request({ type: 'register_confirm', code: await generate({ secret }) })).toEqual({
      type: 'registered',
      user: 'dave',
      recoveryCodes: expect.any(Array),
    })

    const client = srpClient.generateEphemeral()
    const challenge = await raw.request({ type: 'login_start', username: 'dave', A: client.public })
    expect(challenge).toMatchObject({ type: 'challenge', salt, kdf: DEFAULT_PASSWORD_KDF })
    const session = srpClient.deriveSession(client.secret, challenge.B, salt, 'dave', x)
    const proof = await raw.request({ type: 'login_proof', M1: session.proof })
    expect(proof.type).toBe('server_proof')
    expect(() => srpClient.verifySession(client.public, session, proof.M2)).not.toThrow()
    // The next step's code: the enrolment used this step's, and a code is accepted once.
    const welcome = await raw.request({
      type: 'login_otp',
      code: await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 }),
    })
    expect(welcome).toMatchObject({ type: 'welcome', user: 'dave', role: 'regular_user' })
  })

  it("our client logs in to the package's server", async () => {
    const account = await accountFor('erin')
    const pkg = await startPackageServer(account)
    cleanups.push(() => pkg.close())
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: pkg.port,
      trust: { kind: 'ca', ca: await readFile(pkg.certPath), caFile: pkg.certPath },
    })
    cleanups.push(() => conn.close())
    await authenticate(conn, 'erin', PASSWORD)
    const result = await submitOtp(conn, await generate({ secret: account.totpSecret }))
    expect(result).toMatchObject({ user: 'erin', role: 'regular_user' })
  })

  it('our client rejects a server whose M2 is wrong, and never sends it a code', async () => {
    const account = await accountFor('frank')
    const pkg = await startPackageServer(account, { tamperM2: true })
    cleanups.push(() => pkg.close())
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: pkg.port,
      trust: { kind: 'ca', ca: await readFile(pkg.certPath), caFile: pkg.certPath },
    })
    cleanups.push(() => conn.close())
    await expect(authenticate(conn, 'frank', PASSWORD)).rejects.toMatchObject({ code: 'ERR_SERVER_AUTH_FAILED' })
    expect(pkg.received).toEqual(['login_start', 'login_proof'])
  })

  it.each([
    ['a downgrade to 1 KiB', { name: 'scrypt', logN: 3, r: 8, p: 1 }],
    ['1 GiB', { name: 'scrypt', logN: 20, r: 8, p: 1 }],
  ] as const)(
    'our client refuses a challenge asking for %s of stretching (ERR_KDF_LIMIT) and sends no proof',
    async (_, kdf) => {
      const account = await accountFor('gina')
      const pkg = await startPackageServer(account, { kdf })
      cleanups.push(() => pkg.close())
      const conn = await ServerConnection.open({
        host: '127.0.0.1',
        port: pkg.port,
        trust: { kind: 'ca', ca: await readFile(pkg.certPath), caFile: pkg.certPath },
      })
      cleanups.push(() => conn.close())
      await expect(authenticate(conn, 'gina', PASSWORD)).rejects.toMatchObject({ code: 'ERR_KDF_LIMIT' })
      expect(pkg.received).toEqual(['login_start'])
    },
  )

  it('our server refuses a registration whose stretching is under the floor (ERR_KDF_LIMIT), and stores nothing', async () => {
    server = await startInProcessServer()
    cleanups.push(() => server.stop())
    const raw = await RawClient.open(server.server.port)
    cleanups.push(() => raw.close())
    const salt = srpClient.generateSalt()
    const verifier = srpClient.deriveVerifier(srpClient.derivePrivateKey(salt, 'hank', PASSWORD))
    const kdf = { name: 'scrypt', logN: 10, r: 8, p: 1 }
    expect(await raw.request({ type: 'register_start', username: 'hank', salt, verifier, kdf })).toMatchObject({
      type: 'error',
      code: 'ERR_KDF_LIMIT',
    })
    expect(await hasUser(server.store, 'hank')).toBe(false)
  })
})

async function accountFor(username: string) {
  const { salt, verifier, kdf } = await createRegistration(username, PASSWORD)
  return { username, salt, verifier, kdf, totpSecret: encodeTotpSecret(crypto.getRandomValues(new Uint8Array(20))) }
}
