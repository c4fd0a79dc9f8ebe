import { createHash, randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import srpClient, { type Session } from 'secure-remote-password/client.js'
import srpServer from 'secure-remote-password/server.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword } from '../../src/auth/password-stretch.js'
import {
  createRegistration,
  deriveClientSession,
  derivePrivateKey,
  startClientLogin,
  verifyServerProof,
  type ClientEphemeral,
} from '../../src/auth/srp-client.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import * as srp from '../../src/auth/srp-math.js'
import { finishServerLogin, startServerLogin, type ServerEphemeral } from '../../src/auth/srp-server.js'
import { noteSecret } from '../helpers/secrets.js'
import {
  NAME_CHARS,
  PASSWORD_CHARS,
  bytes,
  flipDigit,
  hexOf,
  leadingZeroByte,
  packageA,
  packageB,
  randomText,
  restoreJsbn,
  search,
  withFastPackage,
} from './package-srp.js'

// Our SRP client (src/auth/srp-client.ts: OpenSSL exponentiations, M2 compared in constant
// time) against the secure-remote-password package's client.js, byte for byte: the same v, the
// same A for the same a, the same M1 and K for the same inputs; our client's proof accepted by
// the package's server and by ours, the package's client's by ours; a wrong password refused by
// both servers; a forged M2 refused by our client. The long run uses the package with its modPow
// on OpenSSL (package-srp.ts says why and how); a smaller run and the leading-zero cases use the
// package exactly as shipped.

/** What src/auth/srp-client.ts computes with: the package's parameters, OpenSSL's object on 3N. */
const clientParams: srp.SrpParams = { group: RFC5054_2048, hash: 'sha256', kRule: 'package', opensslModulus: '3N' }
const { N } = RFC5054_2048

afterEach(restoreJsbn)

interface ClientCase {
  I: string
  /** P': what x hashes in place of the password (the stretch's 64 hex digits, or any text). */
  P: string
  salt?: string
  /** The client's a (hex); otherwise startClientLogin's or the package's generateEphemeral's. */
  a?: string
  /** The server's b (hex); otherwise startServerLogin's or the package's generateEphemeral's. */
  b?: string
}

/**
 * One registration and login, ours and the package's side by side: the same x and v, the same
 * A, M1 and K; the package's server and ours accept our M1 and answer with the same M2 and K,
 * which our client accepts; our server accepts the package client's M1. With `refusals`, also a
 * wrong password (both servers refuse its M1) and a forged M2 (our client refuses it).
 */
function compareClient(i: number, c: ClientCase, refusals: boolean): void {
  const { I, P } = c
  const salt = c.salt ?? randomBytes(32).toString('hex')
  const label = JSON.stringify({ i, ...c, salt })

  // Registration: x = H(s | H(I | ":" | P')), v = g^x % N
  const x = srpClient.derivePrivateKey(salt, I, P)
  expect(srp.x(clientParams, bytes(salt), I, P).toString('hex'), label).toBe(x)
  const verifier = srpClient.deriveVerifier(x)
  expect(srp.v(clientParams, bytes(x)).toString('hex'), label).toBe(verifier)

  // A = g^a % N: our a given to the package, or the package's a given to us, in turn
  let ephemeral: ClientEphemeral
  if (c.a !== undefined) ephemeral = { a: c.a, A: srp.A(clientParams, bytes(c.a)).toString('hex') }
  else if (i % 2 === 0) ephemeral = startClientLogin()
  else {
    const theirs = srpClient.generateEphemeral()
    ephemeral = { a: theirs.secret, A: theirs.public }
    expect(srp.A(clientParams, bytes(ephemeral.a)).toString('hex'), label).toBe(ephemeral.A)
  }
  expect(packageA(ephemeral.a), label).toBe(ephemeral.A)

  // B from our server or the package's, in turn, or from a given b
  let server: ServerEphemeral
  if (c.b !== undefined) server = { b: c.b, B: packageB(verifier, c.b) }
  else if (Math.floor(i / 2) % 2 === 0) server = startServerLogin(verifier)
  else {
    const theirs = srpServer.generateEphemeral(verifier)
    server = { b: theirs.secret, B: theirs.public }
  }

  // u, S, K, M1
  const login = { salt, B: server.B, username: I }
  const ours = deriveClientSession({ ephemeral, ...login, x })
  const theirs = srpClient.deriveSession(ephemeral.a, server.B, salt, I, x)
  expect(ours, label).toEqual({ M1: theirs.proof, K: theirs.key })

  // Both servers accept our M1 and prove the same K with the same M2; our client accepts it.
  const proof = { ephemeral: server, A: ephemeral.A, salt, username: I, verifier }
  const packageServer = srpServer.deriveSession(server.b, ephemeral.A, salt, I, verifier, ours.M1)
  const ourServer = finishServerLogin({ ...proof, M1: ours.M1 })
  expect(ourServer, label).toEqual({ M2: packageServer.proof, K: packageServer.key })
  expect(ourServer.K, label).toBe(ours.K)
  expect(() => verifyServerProof({ A: ephemeral.A, session: ours, M2: ourServer.M2 }), label).not.toThrow()
  // The package's client's M1, to our server.
  expect(finishServerLogin({ ...proof, M1: theirs.proof }), label).toEqual(ourServer)

  if (!refusals) return
  // A wrong password: both clients make the same wrong M1, and both servers refuse it.
  const wrongX = srpClient.derivePrivateKey(salt, I, `${P}!`)
  const wrong = deriveClientSession({ ephemeral, ...login, x: wrongX })
  expect(wrong.M1, label).toBe(srpClient.deriveSession(ephemeral.a, server.B, salt, I, wrongX).proof)
  expect(() => finishServerLogin({ ...proof, M1: wrong.M1 }), label).toThrow(
    expect.objectContaining({ code: 'ERR_AUTH_FAILED' }),
  )
  expect(() => srpServer.deriveSession(server.b, ephemeral.A, salt, I, verifier, wrong.M1), label).toThrow(
    /proof is invalid/,
  )
  // A forged M2: our client refuses it, as the package's does.
  const forged = flipDigit(ourServer.M2)
  expect(() => verifyServerProof({ A: ephemeral.A, session: ours, M2: forged }), label).toThrow(
    expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }),
  )
  expect(() => srpClient.verifySession(ephemeral.A, theirs, forged), label).toThrow(/proof is invalid/)
}

/** A random name and P', the stretch's 64 hex digits or (every third) any text the package takes. */
const randomCase = (i: number): ClientCase => ({
  I: randomText(NAME_CHARS, 1, 24),
  P: i % 3 === 2 ? randomText(PASSWORD_CHARS, 1, 40) : randomBytes(32).toString('hex'),
})

describe('our client and the package: random logins, byte for byte', () => {
  it('128 logins, the package with its modPow on OpenSSL: the same v, A, M1, K and M2; every fourth with a wrong password and a forged M2', () => {
    const logins = 128
    const { modPows } = withFastPackage(() => {
      for (let i = 0; i < logins; i++) compareClient(i, randomCase(i), i % 4 === 0)
    })
    // The package's exponentiations really went through the swap (seven or more a login).
    expect(modPows).toBeGreaterThan(logins * 6)
  })

  it('6 logins with the package exactly as shipped (jsbn), each with a wrong password and a forged M2', () => {
    for (let i = 0; i < 6; i++) compareClient(i, randomCase(i), true)
  })

  it("createRegistration and derivePrivateKey, with the stretch: the package's x and v from the same P'", async () => {
    const password = `client interop ${randomBytes(6).toString('hex')}`
    noteSecret('password', password)
    const { salt, verifier, kdf } = await createRegistration('zoë.client', password)
    expect(salt).toMatch(/^[0-9a-f]{64}$/)
    expect(kdf).toEqual(DEFAULT_PASSWORD_KDF)
    const stretched = await stretchPassword(password, salt, kdf)
    const x = srpClient.derivePrivateKey(salt, 'zoë.client', stretched)
    expect(verifier).toBe(srpClient.deriveVerifier(x))
    expect(await derivePrivateKey({ salt, username: 'zoë.client', password, kdf })).toBe(x)
  })

  it('a, A and s have the shape the package gives them: 32 random bytes, 256 bytes, 32 random bytes', () => {
    const ephemeral = startClientLogin()
    expect(ephemeral.a).toMatch(/^[0-9a-f]{64}$/)
    expect(ephemeral.A).toMatch(/^[0-9a-f]{512}$/)
    expect(startClientLogin().a).not.toBe(ephemeral.a)
    const { secret, public: A } = srpClient.generateEphemeral()
    expect([secret.length, A.length]).toEqual([ephemeral.a.length, ephemeral.A.length])
  })
})

describe('values with a leading zero byte, where padding rules show (the package as shipped)', () => {
  const P = randomBytes(32).toString('hex')

  it('A < 2^2040: 512 digits, and u and M1 hash all 256 bytes', () => {
    const a = search(32, (a) => srp.A(clientParams, bytes(a)), leadingZeroByte)
    compareClient(0, { I: 'zero.a', P, a }, true)
  })

  it('B < 2^2040: hashed as the 512 digits the server sent', () => {
    const salt = 'b2'.repeat(32)
    const v = srp.v(clientParams, bytes(srpClient.derivePrivateKey(salt, 'zero.b', P)))
    const b = search(32, (b) => srp.B(clientParams, v, bytes(b)), leadingZeroByte)
    compareClient(0, { I: 'zero.b', P, salt, b }, true)
  })

  it('S < 2^2040: K = H(PAD(S)), as the package hashes S', () => {
    const salt = 'c3'.repeat(32)
    const x = bytes(srpClient.derivePrivateKey(salt, 'zero.s', P))
    const v = srp.v(clientParams, x)
    const a = randomBytes(32).toString('hex')
    const A = srp.A(clientParams, bytes(a))
    // The server's S is the client's (the tests above hold them equal), in two exponentiations.
    const b = search(
      32,
      (b) => srp.S(clientParams, A, v, srp.u(clientParams, A, srp.B(clientParams, v, bytes(b))), bytes(b)),
      leadingZeroByte,
    )
    compareClient(0, { I: 'zero.s', P, salt, a, b }, true)
  })

  it('v < 2^2040: the verifier is 512 digits', () => {
    const salt = search(
      32,
      (salt) => srp.v(clientParams, srp.x(clientParams, bytes(salt), 'zero.v', P)),
      leadingZeroByte,
    )
    compareClient(0, { I: 'zero.v', P, salt }, true)
  })

  it('s with a leading zero byte: hashed as its 32 bytes', () => {
    compareClient(0, { I: 'zero.salt', P, salt: `00${randomBytes(31).toString('hex')}` }, false)
  })

  it('x with a leading zero byte: the same number', () => {
    const salt = search(
      32,
      (salt) => srp.x(clientParams, bytes(salt), 'zero.x', P),
      (x) => x[0] === 0,
    )
    compareClient(0, { I: 'zero.x', P, salt }, false)
  })
})

describe("B: our client refuses what is not 0 < B < N in 512 digits (ERR_SERVER_AUTH_FAILED), the package's verdict beside", () => {
  const I = 'bella'
  const salt = randomBytes(32).toString('hex')
  const x = srpClient.derivePrivateKey(salt, I, randomBytes(32).toString('hex'))
  const digits = (B: bigint) => hexOf(B, 512)
  const rows: Array<{ name: string; B: string; ours: 'ok' | 'refused'; pkg: 'ok' | 'refused' }> = [
    { name: 'B = 0', B: digits(0n), ours: 'refused', pkg: 'refused' },
    { name: 'B = N (0 mod N)', B: digits(N), ours: 'refused', pkg: 'refused' },
    { name: 'B = N + 1 (1 mod N)', B: digits(N + 1n), ours: 'refused', pkg: 'ok' },
    { name: 'B = 2^2048 - 1', B: 'f'.repeat(512), ours: 'refused', pkg: 'ok' },
    { name: 'B in 510 digits (a leading zero byte dropped)', B: digits(5n).slice(2), ours: 'refused', pkg: 'ok' },
    { name: 'B in 514 digits (a zero byte added)', B: `00${digits(N - 5n)}`, ours: 'refused', pkg: 'ok' },
    { name: 'B in 511 digits', B: digits(N - 5n).slice(1), ours: 'refused', pkg: 'ok' },
    { name: 'B that is not hex', B: `zz${digits(N - 5n).slice(2)}`, ours: 'refused', pkg: 'ok' },
    { name: 'B = 1: accepted, the same M1', B: digits(1n), ours: 'ok', pkg: 'ok' },
    { name: 'B = N - 1: accepted, the same M1', B: digits(N - 1n), ours: 'ok', pkg: 'ok' },
    { name: 'B in upper case: accepted, the same M1', B: digits(N - 5n).toUpperCase(), ours: 'ok', pkg: 'ok' },
  ]

  // The package with its modPow on OpenSSL: how it reads, reduces and hashes B is its own code.
  it.each(rows)('$name: ours $ours, the package $pkg', ({ B, ours, pkg }) => {
    const ephemeral = startClientLogin()
    const run = () => deriveClientSession({ ephemeral, salt, B, username: I, x })
    const { result: theirs } = withFastPackage(() => {
      try {
        return srpClient.deriveSession(ephemeral.a, B, salt, I, x)
      } catch (error) {
        return error as Error
      }
    })
    if (pkg === 'ok') expect(theirs).not.toBeInstanceOf(Error)
    else expect(theirs).toEqual(new Error('The server sent an invalid public ephemeral'))
    if (ours === 'refused') expect(run).toThrow(expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }))
    else expect(run()).toEqual({ M1: (theirs as Session).proof, K: (theirs as Session).key })
  })
})

describe("M2: our client takes only H(A | M1 | K) in 32 bytes (else ERR_SERVER_AUTH_FAILED), the package's verdict beside", () => {
  // One honest login with our server; each row changes only the M2 the client is sent.
  function honestLogin() {
    const I = 'mira'
    const salt = randomBytes(32).toString('hex')
    const x = srpClient.derivePrivateKey(salt, I, randomBytes(32).toString('hex'))
    const verifier = srp.v(clientParams, bytes(x)).toString('hex')
    const ephemeral = startClientLogin()
    const server = startServerLogin(verifier)
    const session = deriveClientSession({ ephemeral, salt, B: server.B, username: I, x })
    const { M2 } = finishServerLogin({ ephemeral: server, A: ephemeral.A, salt, username: I, verifier, M1: session.M1 })
    return { A: ephemeral.A, session, M2 }
  }
  type Login = ReturnType<typeof honestLogin>
  const H = (...parts: Buffer[]) => parts.reduce((hash, part) => hash.update(part), createHash('sha256')).digest()

  const rows: Array<{ name: string; M2: (login: Login) => string; ours: 'ok' | 'refused'; pkg: 'ok' | 'refused' }> = [
    { name: 'the right M2', M2: (login) => login.M2, ours: 'ok', pkg: 'ok' },
    { name: 'the right M2 in upper case', M2: (login) => login.M2.toUpperCase(), ours: 'ok', pkg: 'ok' },
    { name: 'one digit changed', M2: (login) => flipDigit(login.M2), ours: 'refused', pkg: 'refused' },
    { name: 'one byte short', M2: (login) => login.M2.slice(0, -2), ours: 'refused', pkg: 'refused' },
    { name: 'one byte long', M2: (login) => `${login.M2}00`, ours: 'refused', pkg: 'refused' },
    // The same number: the package compares numbers and takes it; we compare 32 bytes.
    { name: 'the right M2 with a leading 00 byte', M2: (login) => `00${login.M2}`, ours: 'refused', pkg: 'ok' },
    { name: 'empty', M2: () => '', ours: 'refused', pkg: 'refused' },
    // Not `zz` first: the package skips what is not a digit, so that is the right M2 when its first byte is 00.
    { name: 'not hex', M2: (login) => `${login.M2.slice(0, -2)}zz`, ours: 'refused', pkg: 'refused' },
    { name: 'the M2 of another login', M2: () => honestLogin().M2, ours: 'refused', pkg: 'refused' },
    {
      // What a server without the verifier can make: the right formula, its own guess at K.
      name: 'H(A | M1 | K) with a K of its own',
      M2: (login) => H(bytes(login.A), bytes(login.session.M1), randomBytes(32)).toString('hex'),
      ours: 'refused',
      pkg: 'refused',
    },
  ]

  it.each(rows)('$name: ours $ours, the package $pkg', ({ M2: make, ours, pkg }) => {
    const login = honestLogin()
    const M2 = make(login)
    const run = () => verifyServerProof({ A: login.A, session: login.session, M2 })
    const theirs = () => srpClient.verifySession(login.A, { key: login.session.K, proof: login.session.M1 }, M2)
    if (pkg === 'ok') expect(theirs).not.toThrow()
    else expect(theirs).toThrow(/proof is invalid/)
    if (ours === 'ok') expect(run).not.toThrow()
    else expect(run).toThrow(expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }))
  })
})

describe('inputs that are ours, not the server', () => {
  it('derivePrivateKey refuses a salt that is not hex digits in pairs, before the stretch', async () => {
    for (const salt of ['abc', 'zz'.repeat(32)])
      await expect(
        derivePrivateKey({ salt, username: 'ivy', password: 'unused', kdf: DEFAULT_PASSWORD_KDF }),
      ).rejects.toThrow(TypeError)
  })

  it('deriveClientSession refuses a salt that is not hex (ERR_SERVER_AUTH_FAILED: it came from the server)', () => {
    const ephemeral = startClientLogin()
    const B = hexOf(N - 5n, 512)
    expect(() => deriveClientSession({ ephemeral, salt: 'xyz', B, username: 'ivy', x: '11'.repeat(32) })).toThrow(
      expect.objectContaining({ code: 'ERR_SERVER_AUTH_FAILED' }),
    )
  })
})
