import { createHash, randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import srpClient from 'secure-remote-password/client.js'
import srpServer from 'secure-remote-password/server.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import * as srp from '../../src/auth/srp-math.js'
import {
  deriveDecoyCredentials,
  finishServerLogin,
  startServerLogin,
  type ServerEphemeral,
} from '../../src/auth/srp-server.js'
import {
  BigInteger,
  NAME_CHARS,
  PASSWORD_CHARS,
  bytes,
  flipDigit,
  hexOf,
  jsbnModPow,
  jsbnToBigInt,
  leadingZeroByte,
  packageA,
  packageB,
  packageParams,
  randomText,
  restoreJsbn,
  search,
  withFastPackage,
} from './package-srp.js'

// Our SRP server (OpenSSL exponentiations, constant-time proof check) against the
// secure-remote-password package's server.js, byte for byte, with the package's client.js
// logging in to ours. The 1,000-login run uses the package with its modPow on OpenSSL
// (package-srp.ts says why and how); a smaller run and the leading-zero cases use the package
// exactly as shipped.

const params: srp.SrpParams = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
const { N } = RFC5054_2048

afterEach(restoreJsbn)

// --- one login, compared ---------------------------------------------------------------------

interface LoginCase {
  I: string
  P: string
  salt?: string
  /** Our b (hex) instead of a random one: ours and the package's server both use it. */
  b?: string
  /** The client's a (hex) instead of the package's random one. */
  a?: string
}

/**
 * One registration and login: the package's client registers and logs in; our server and the
 * package's server, given the same b, must answer with the same B, K and M2, the package's client
 * must accept our M2, and both servers must refuse the same wrong M1.
 */
function compareLogin(useOurB: boolean, c: LoginCase): void {
  const { I, P } = c
  const salt = c.salt ?? srpClient.generateSalt()
  const label = JSON.stringify({ ...c, salt })
  const x = srpClient.derivePrivateKey(salt, I, P)
  const verifier = srpClient.deriveVerifier(x)
  // Registration maths: x = H(s | H(I | ":" | P)), v = g^x % N.
  expect(srp.x(params, bytes(salt), I, P).toString('hex'), label).toBe(x)
  expect(srp.v(params, bytes(x)).toString('hex'), label).toBe(verifier)

  const client =
    c.a === undefined
      ? srpClient.generateEphemeral()
      : { secret: c.a, public: srp.A(params, bytes(c.a)).toString('hex') }
  let ephemeral: ServerEphemeral
  if (c.b !== undefined) {
    ephemeral = { b: c.b, B: srp.B(params, bytes(verifier), bytes(c.b)).toString('hex') }
    expect(ephemeral.B, label).toBe(packageB(verifier, c.b))
  } else if (useOurB) {
    ephemeral = startServerLogin(verifier)
    expect(ephemeral.B, label).toBe(packageB(verifier, ephemeral.b))
  } else {
    const theirs = srpServer.generateEphemeral(verifier)
    ephemeral = { b: theirs.secret, B: srp.B(params, bytes(verifier), bytes(theirs.secret)).toString('hex') }
    expect(ephemeral.B, label).toBe(theirs.public)
  }

  const session = srpClient.deriveSession(client.secret, ephemeral.B, salt, I, x)
  const login = { ephemeral, A: client.public, salt, username: I, verifier }
  const ours = finishServerLogin({ ...login, M1: session.proof })
  const theirs = srpServer.deriveSession(ephemeral.b, client.public, salt, I, verifier, session.proof)
  expect(ours, label).toEqual({ M2: theirs.proof, K: theirs.key })
  expect(ours.K, label).toBe(session.key)
  expect(() => srpClient.verifySession(client.public, session, ours.M2), label).not.toThrow()

  const wrongM1 = flipDigit(session.proof)
  expect(() => finishServerLogin({ ...login, M1: wrongM1 }), label).toThrow(
    expect.objectContaining({ code: 'ERR_AUTH_FAILED' }),
  )
  expect(() => srpServer.deriveSession(ephemeral.b, client.public, salt, I, verifier, wrongM1), label).toThrow(
    /proof is invalid/,
  )
}

const randomCase = (): LoginCase => ({ I: randomText(NAME_CHARS, 1, 24), P: randomText(PASSWORD_CHARS, 1, 40) })

// --- the tests -------------------------------------------------------------------------------

describe('the package parameters', () => {
  it("the RFC 5054 2048-bit group is the package's N and g, and k = H(N | g) is its k", () => {
    expect(RFC5054_2048.NBytes.toString('hex')).toBe(packageParams.N.toHex())
    // The package's g is the one byte 0x02: k hashes it unpadded.
    expect(packageParams.g.toHex()).toBe('02')
    expect(RFC5054_2048.gBytes.toString('hex')).toBe('02')
    expect(srp.k(params).toString('hex')).toBe(packageParams.k.toHex())
    expect(srp.k({ ...params, kRule: 'rfc5054' }).toString('hex')).not.toBe(packageParams.k.toHex())
  })
})

describe('1,000 random logins: our server and the package agree byte for byte', () => {
  it('1,000 logins, the package with its modPow on OpenSSL: the same B, K, M2, the same verdicts on M1', () => {
    const logins = 1000
    const { modPows } = withFastPackage(() => {
      for (let i = 0; i < logins; i++) compareLogin(i % 2 === 0, randomCase())
    })
    // The package's exponentiations really went through the swap (about a dozen a login).
    expect(modPows).toBeGreaterThan(logins * 8)
  })

  it('16 logins with the package exactly as shipped (jsbn)', () => {
    for (let i = 0; i < 16; i++) compareLogin(i % 2 === 0, randomCase())
  })
})

describe('values with a leading zero byte, where padding rules show (the package as shipped)', () => {
  it('B < 2^2040: B is sent and hashed as 512 digits', () => {
    const salt = 'a1'.repeat(32)
    const verifier = srpClient.deriveVerifier(srpClient.derivePrivateKey(salt, 'zero.b', 'pw'))
    const b = search(32, (b) => srp.B(params, bytes(verifier), bytes(b)), leadingZeroByte)
    expect(srp.B(params, bytes(verifier), bytes(b)).toString('hex')).toBe(packageB(verifier, b))
    compareLogin(true, { I: 'zero.b', P: 'pw', salt, b })
  })

  it('A < 2^2040: the client sends 512 digits and u, M1 and M2 hash all 256 bytes', () => {
    const a = search(32, (a) => srp.A(params, bytes(a)), leadingZeroByte)
    expect(srp.A(params, bytes(a)).toString('hex')).toBe(packageA(a))
    compareLogin(true, { I: 'zero.a', P: 'pw', a })
  })

  it('v < 2^2040: the verifier is stored as 512 digits', () => {
    const salt = search(32, (salt) => srp.v(params, srp.x(params, bytes(salt), 'zero.v', 'pw')), leadingZeroByte)
    compareLogin(true, { I: 'zero.v', P: 'pw', salt })
  })

  it('S < 2^2040: K = H(PAD(S)), as the package hashes S', () => {
    const salt = 'c3'.repeat(32)
    const x = srpClient.derivePrivateKey(salt, 'zero.s', 'pw')
    const v = srp.v(params, bytes(x))
    const a = randomBytes(32).toString('hex')
    const A = srp.A(params, bytes(a))
    const b = search(
      32,
      (b) => srp.S(params, A, v, srp.u(params, A, srp.B(params, v, bytes(b))), bytes(b)),
      leadingZeroByte,
    )
    compareLogin(true, { I: 'zero.s', P: 'pw', salt, a, b })
  })
})

describe('refusals: each is ERR_AUTH_FAILED', () => {
  // A login whose only fault is the one each row puts in: the package's client with the right
  // password, our b, so the row's A or M1 is all that differs.
  function honestLogin() {
    const I = 'mallory'
    const salt = srpClient.generateSalt()
    const x = srpClient.derivePrivateKey(salt, I, 'right password')
    const verifier = srpClient.deriveVerifier(x)
    const ephemeral = startServerLogin(verifier)
    const client = srpClient.generateEphemeral()
    const session = srpClient.deriveSession(client.secret, ephemeral.B, salt, I, x)
    return { I, salt, verifier, ephemeral, A: client.public, M1: session.proof }
  }
  type Login = ReturnType<typeof honestLogin>

  /** The M1 that goes with a chosen A and S, hashed as the package hashes (A as sent). */
  function proofFor(login: Login, A: string, S: bigint): string {
    const H = (...parts: Array<Buffer | string>) => {
      const hash = createHash('sha256')
      for (const part of parts) hash.update(part)
      return hash.digest()
    }
    const K = H(bytes(hexOf(S, 512)))
    const Hg = H(RFC5054_2048.gBytes)
    const HNxorHg = Buffer.from(H(RFC5054_2048.NBytes).map((byte, i) => byte ^ Hg[i]!))
    return H(HNxorHg, H(login.I), bytes(login.salt), bytes(A), bytes(login.ephemeral.B), K).toString('hex')
  }

  // With A % N == 0, S = 0 whatever the password: anyone could make this M1.
  const zeroS = (A: bigint, digits: number) => (login: Login) => {
    const hex = hexOf(A, digits)
    return { A: hex, M1: proofFor(login, hex, 0n) }
  }

  const rows: Array<{ name: string; make: (login: Login) => { A?: string; M1?: string }; packageAccepts: boolean }> = [
    { name: 'A = 0, with the M1 for S = 0', make: zeroS(0n, 512), packageAccepts: false },
    { name: 'A = N, with the M1 for S = 0', make: zeroS(N, 512), packageAccepts: false },
    { name: 'A = 2N, with the M1 for S = 0', make: zeroS(2n * N, 514), packageAccepts: false },
    {
      // A = N + 1 is A = 1 to the package, which takes it; only a client that is not ours sends A >= N.
      name: 'A = N + 1 (not in 0 < A < N), with the M1 the package takes for it',
      make: (login) => {
        const A = hexOf(N + 1n, 512)
        const u = srp.u(params, bytes(A), bytes(login.ephemeral.B))
        const S = srp.modPow(
          RFC5054_2048,
          srp.modPow(RFC5054_2048, BigInt(`0x${login.verifier}`), u),
          bytes(login.ephemeral.b),
        )
        return { A, M1: proofFor(login, A, S) }
      },
      packageAccepts: true,
    },
    { name: 'a wrong M1', make: (login) => ({ M1: flipDigit(login.M1) }), packageAccepts: false },
    // The last byte dropped: dropping the first would be the same number when it is 00 (1 in 256), which the package takes.
    { name: 'an M1 one byte short', make: (login) => ({ M1: login.M1.slice(0, -2) }), packageAccepts: false },
    { name: 'an M1 one byte long', make: (login) => ({ M1: `${login.M1}00` }), packageAccepts: false },
    // The same number with a leading zero byte: the package compares numbers and takes it; we compare 32 bytes.
    { name: 'the right M1 with a leading 00 byte', make: (login) => ({ M1: `00${login.M1}` }), packageAccepts: true },
    { name: 'an M1 that is not hex', make: (login) => ({ M1: `zz${login.M1.slice(2)}` }), packageAccepts: false },
  ]

  it('the honest login the rows start from is accepted', () => {
    const login = honestLogin()
    const { K } = finishServerLogin({
      ephemeral: login.ephemeral,
      A: login.A,
      salt: login.salt,
      username: login.I,
      verifier: login.verifier,
      M1: login.M1,
    })
    expect(K).toMatch(/^[0-9a-f]{64}$/)
  })

  it.each(rows)('$name', ({ make, packageAccepts }) => {
    const login = honestLogin()
    const { A = login.A, M1 = login.M1 } = make(login)
    expect(() =>
      finishServerLogin({
        ephemeral: login.ephemeral,
        A,
        salt: login.salt,
        username: login.I,
        verifier: login.verifier,
        M1,
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_FAILED', message: 'authentication failed' }))
    const pkg = () => srpServer.deriveSession(login.ephemeral.b, A, login.salt, login.I, login.verifier, M1)
    if (packageAccepts) expect(pkg).not.toThrow()
    else expect(pkg).toThrow()
  })
})

describe.each(['N', '3N'] as const)('modPow on OpenSSL (its object on %s), against jsbn', (modulus) => {
  const q = (N - 1n) / 2n
  const jsbn = (base: bigint, exponent: bigint) =>
    jsbnToBigInt(
      jsbnModPow.call(
        new BigInteger(hexOf(base < 0n ? -base : base), 16),
        new BigInteger(hexOf(exponent), 16),
        new BigInteger(hexOf(N), 16),
      ),
    )
  const rows: Array<[name: string, base: bigint, exponent: Buffer]> = [
    ['a random base and exponent', BigInt(`0x${randomBytes(255).toString('hex')}`), randomBytes(32)],
    ['base 0 (OpenSSL refuses it)', 0n, randomBytes(32)],
    ['base 1 (OpenSSL refuses it)', 1n, randomBytes(32)],
    ['base N - 1, odd exponent (OpenSSL refuses it)', N - 1n, Buffer.from([0x03])],
    ['base N - 1, even exponent (OpenSSL refuses it)', N - 1n, Buffer.from([0x04])],
    ['base N (0 mod N)', N, randomBytes(32)],
    ['base N + 2 (2 mod N)', N + 2n, randomBytes(32)],
    ['base 2N + 1 (1 mod N)', 2n * N + 1n, randomBytes(32)],
    ['exponent 0 (OpenSSL refuses it)', 5n, Buffer.from([0, 0])],
    ['an empty exponent (0)', 5n, Buffer.alloc(0)],
    ['exponent 1: a result with 255 leading zero bytes', 2n, Buffer.from([1])],
    ['a small result, 2^100', 2n, Buffer.from([100])],
    ['an exponent with leading zero bytes', 3n, Buffer.concat([Buffer.alloc(8), randomBytes(24)])],
    ['a result of 1: 4^q (OpenSSL refuses it)', 4n, bytes(hexOf(q))],
    ['a result of +-1: 2^q (OpenSSL refuses it)', 2n, bytes(hexOf(q))],
    ['an exponent above N', 3n, bytes(hexOf(N + 12345n))],
    ["a 513-bit exponent, as the client's a + u * x can be", 7n, Buffer.concat([Buffer.from([1]), randomBytes(64)])],
  ]
  it.each(rows)('%s', (_name, base, exponent) => {
    const e = exponent.length === 0 ? 0n : BigInt(`0x${exponent.toString('hex')}`)
    expect(srp.modPow(RFC5054_2048, base, exponent, modulus)).toBe(jsbn(base, e))
  })
})

describe('decoy credentials for names with no account', () => {
  // The salt is what clients see: it must stay what earlier versions sent for the same name.
  const golden = [
    {
      secret: Buffer.from('securelogin test server secret, 32B'.slice(0, 32)),
      username: 'nobody',
      salt: '4e7f1c350a0197b24922da25c5b83130b39ee1dc5db9d7cc0626bf6748e168bc',
    },
    {
      secret: Buffer.alloc(32, 0xa5),
      username: 'zoë',
      salt: '6c83dcce7393308c47e875efdd6348877a45fb17c4f2a57644f55b584a7d61d4',
    },
  ]

  it.each(golden)('the same salt as before for $username', ({ secret, username, salt }) => {
    expect(deriveDecoyCredentials(secret, username).salt).toBe(salt)
  })

  it('the verifier is stable per name, differs between names and secrets, and is a number below N of full width', () => {
    const secret = randomBytes(32)
    const a = deriveDecoyCredentials(secret, 'nobody.one')
    expect(deriveDecoyCredentials(secret, 'nobody.one')).toEqual(a)
    expect(deriveDecoyCredentials(secret, 'nobody.two').verifier).not.toBe(a.verifier)
    expect(deriveDecoyCredentials(randomBytes(32), 'nobody.one').verifier).not.toBe(a.verifier)
    expect(a.verifier).toMatch(/^[0-9a-f]{512}$/)
    expect(BigInt(`0x${a.verifier}`) < params.group.N).toBe(true)
  })

  it('a decoy login does the same exponentiations as a real one and fails at M1', () => {
    const secret = randomBytes(32)
    const decoy = deriveDecoyCredentials(secret, 'nobody')
    const server = startServerLogin(decoy.verifier)
    const client = srpClient.generateEphemeral()
    const x = srpClient.derivePrivateKey(decoy.salt, 'nobody', 'any password at all')
    const session = srpClient.deriveSession(client.secret, server.B, decoy.salt, 'nobody', x)
    expect(() =>
      finishServerLogin({
        ephemeral: server,
        A: client.public,
        salt: decoy.salt,
        username: 'nobody',
        verifier: decoy.verifier,
        M1: session.proof,
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_FAILED' }))
  })
})
