import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { calculateJwkThumbprint } from 'jose'
import srp from 'secure-remote-password/client.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkPasswordKdf, stretchPassword, type PasswordKdf } from '../../src/auth/password-stretch.js'
import { normalizePassword } from '../../src/auth/password-policy.js'
import {
  findRecoveryCode,
  generateRecoveryCodes,
  hashRecoveryCodes,
  normalizeRecoveryCode,
} from '../../src/auth/recovery-codes.js'
import { publicJwkOf, signToken, verifyToken } from '../../src/auth/signed-tokens.js'
import { deriveClientSession, verifyServerProof } from '../../src/auth/srp-client.js'
import { srpEngine } from '../../src/auth/srp-engine.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import * as srpMath from '../../src/auth/srp-math.js'
import { finishServerLogin, isUsableA, isUsableVerifier } from '../../src/auth/srp-server.js'
import {
  buildOtpauthUri,
  encodeTotpSecret,
  generateTotp,
  secretFromOtpauthUri,
  verifyTotp,
} from '../../src/auth/totp.js'
import { PasswordKdf as PasswordKdfSchema } from '../../src/protocol/fields.js'
import { FrameDecoder } from '../../src/protocol/frame.js'
import { LoginRecovery, LoginStart, RegisterStart } from '../../src/protocol/messages.js'
import type { TokenClaims } from '../../src/protocol/signed-tokens.js'
import { ROOT } from '../helpers/env.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { RawClient } from '../helpers/raw-client.js'

// The published test vectors (docs/vectors/*.json), reproduced with our own code: the SRP client
// (src/auth/srp-client.ts), the server's SRP maths (src/auth/srp-math.ts, srp-server.ts, and the
// package's server as `--srp-engine package` runs it), the stretch, TOTP, recovery codes, the
// frame reader and the real server behind it, and verifyToken. A second implementation that
// shares none of this code checks the same files (test/independent/). The files are written once
// by scripts/make-vectors.mjs and never here.

const DIR = join(ROOT, 'docs', 'vectors')
const load = (name: string): any => JSON.parse(readFileSync(join(DIR, name), 'utf8'))
const FILES = [
  'frames.json',
  'login.json',
  'recovery-codes.json',
  'registration.json',
  'signed-tokens.json',
  'totp.json',
] as const
const vectors = Object.fromEntries(FILES.map((name) => [name, load(name)])) as Record<(typeof FILES)[number], any>

const params: srpMath.SrpParams = { group: RFC5054_2048, hash: 'sha256', kRule: 'package' }
const bytes = (hex: string) => Buffer.from(hex, 'hex')
const utf8hex = (text: string) => Buffer.from(text, 'utf8').toString('hex')
/** Rows for it.each, each named by `name`: '%s' in the title is that name. */
const table = (rows: any[], name: (row: any) => string | number): Array<[string | number, any]> =>
  rows.map((row) => [name(row), row])

/** The error code a call throws, or 'ok'. */
async function verdict(run: () => unknown): Promise<string> {
  try {
    await run()
    return 'ok'
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (typeof code !== 'string') throw error
    return code
  }
}

describe('docs/vectors', () => {
  it('holds exactly the files this test checks, each with a description of its values', () => {
    expect(
      readdirSync(DIR)
        .filter((name) => name.endsWith('.json'))
        .sort(),
    ).toEqual([...FILES])
    for (const name of FILES) {
      expect(vectors[name].version, name).toBe(1)
      expect(typeof vectors[name].description.file, name).toBe('string')
    }
  })
})

describe('registration.json: P_prime, x and v', () => {
  const file = vectors['registration.json']

  it('uses our group: N, g, k', () => {
    expect(file.group.N).toBe(RFC5054_2048.NBytes.toString('hex'))
    expect(file.group.g).toBe(RFC5054_2048.gBytes.toString('hex'))
    expect(file.group.k).toBe(srpMath.k(params).toString('hex'))
    expect(file.stretch_label).toBe(utf8hex('securelogin password v1\0'))
  })

  it.each(table(file.cases, (c) => c.id))('%s', async (_id, c: any) => {
    expect(utf8hex(c.password)).toBe(c.password_utf8)
    expect(utf8hex(c.password_nfkc)).toBe(c.password_nfkc_utf8)
    expect(normalizePassword(c.password)).toBe(c.password_nfkc)
    expect(c.scrypt_salt).toBe(file.stretch_label + c.salt)
    // P' = scrypt(...), as 64 hex digits
    expect(await stretchPassword(c.password_nfkc, c.salt, c.kdf)).toBe(c.P_prime)
    // x = H(s | H(I | ":" | P')): the package and our maths (our client's)
    expect(srp.derivePrivateKey(c.salt, c.I, c.P_prime)).toBe(c.x)
    expect(srpMath.x(params, bytes(c.salt), c.I, c.P_prime).toString('hex')).toBe(c.x)
    // v = g^x mod N
    expect(srp.deriveVerifier(c.x)).toBe(c.v)
    expect(srpMath.v(params, bytes(c.x)).toString('hex')).toBe(c.v)
    expect(isUsableVerifier(c.v)).toBe(true)
  })

  it.each(table(file.nfkc, (c) => c.comment))('NFKC: %s', (_comment, c: any) => {
    expect(utf8hex(c.input)).toBe(c.input_utf8)
    expect(utf8hex(c.nfkc)).toBe(c.nfkc_utf8)
    // What the client does to every password before it stretches it (src/client/login.ts).
    expect(c.input.normalize('NFKC')).toBe(c.nfkc)
  })

  it.each(table(file.kdf_checks, (c) => c.comment))('kdf: %s', async (_comment, c: any) => {
    expect(PasswordKdfSchema.safeParse(c.kdf).success ? 'ok' : 'ERR_PROTOCOL').toBe(c.schema)
    expect(await verdict(() => checkPasswordKdf(c.kdf as PasswordKdf))).toBe(c.limits)
  })

  it.each(table(file.verifier_checks, (c) => c.comment))('verifier: %s', (_comment, c: any) => {
    const message = { type: 'register_start', username: 'ada', salt: '00'.repeat(32), kdf: file.cases[0].kdf }
    const wire = RegisterStart.safeParse({ ...message, verifier: c.v }).success && isUsableVerifier(c.v)
    expect(wire ? 'ok' : 'ERR_PROTOCOL').toBe(c.server)
  })
})

describe('login.json: A, B, u, S, K, M1, M2', () => {
  const file = vectors['login.json']
  const { I, salt, x, v } = file.user

  it('is the login of a registration.json user', () => {
    const user = vectors['registration.json'].cases.find((c: any) => c.id === file.user.registration)
    expect({ I: user.I, salt: user.salt, x: user.x, v: user.v }).toEqual({ I, salt, x, v })
    expect(file.group).toEqual(vectors['registration.json'].group)
  })

  it.each(table(file.cases, (c) => c.id))('%s', (_id, c: any) => {
    // Our server's maths, value by value.
    const A = srpMath.A(params, bytes(c.a))
    const B = srpMath.B(params, bytes(v), bytes(c.b))
    const u = srpMath.u(params, A, B)
    const S = srpMath.S(params, A, bytes(v), u, bytes(c.b))
    const K = srpMath.K(params, S)
    const M1 = srpMath.M1(params, I, bytes(salt), A, B, K)
    const M2 = srpMath.M2(params, A, M1, K)
    const hex = (b: Buffer) => b.toString('hex')
    expect({ A: hex(A), B: hex(B), u: hex(u), S: hex(S), K: hex(K), M1: hex(M1), M2: hex(M2) }).toEqual({
      A: c.A,
      B: c.B,
      u: c.u,
      S: c.S,
      K: c.K,
      M1: c.M1,
      M2: c.M2,
    })
    // Our client from a and B.
    const session = deriveClientSession({ ephemeral: { A: c.A, a: c.a }, salt, B: c.B, username: I, x })
    expect(session).toEqual({ M1: c.M1, K: c.K })
    expect(() => verifyServerProof({ A: c.A, session, M2: c.M2 })).not.toThrow()
    // Our server, both engines, from b and M1.
    const proof = { ephemeral: { B: c.B, b: c.b }, A: c.A, salt, username: I, verifier: v, M1: c.M1 }
    expect(finishServerLogin(proof)).toEqual({ M2: c.M2, K: c.K })
    expect(srpEngine('package').finish(proof)).toEqual({ M2: c.M2, K: c.K })
    expect(LoginStart.safeParse({ type: 'login_start', username: I, A: c.A }).success).toBe(true)
  })

  it.each(table(file.A_checks, (c) => c.comment))('A: %s', (_comment, c: any) => {
    expect(isUsableA(c.A) ? 'ok' : 'ERR_AUTH_FAILED').toBe(c.server)
  })

  it.each(table(file.B_checks, (c) => c.comment))('B: %s', async (_comment, c: any) => {
    const ephemeral = { A: file.cases[0].A, a: file.cases[0].a }
    expect(await verdict(() => deriveClientSession({ ephemeral, salt, B: c.B, username: I, x }))).toBe(c.client)
  })
})

describe('totp.json: RFC 6238 appendix B, the window, the otpauth URI', () => {
  const file = vectors['totp.json']

  it('spells the seed in base32 as the URI carries it', () => {
    expect(Buffer.from(file.secret_ascii, 'ascii').toString('hex')).toBe(file.secret_hex)
    expect(encodeTotpSecret(bytes(file.secret_hex))).toBe(file.secret_base32)
  })

  it.each(table(file.rows, (row) => row.time))('time %i', async (_time, row: any) => {
    expect(row.T).toBe(Math.floor(row.time / 30))
    expect(row.code).toBe(row.code_8.slice(2))
    expect(await generateTotp(file.secret_base32, row.time * 1000)).toBe(row.code)
  })

  it.each(table(file.verify, (c) => c.comment))('verify: %s', async (_comment, c: any) => {
    const check = await verifyTotp({ secret: file.secret_base32, code: c.code, nowMs: c.time * 1000 })
    expect(check).toEqual(c.valid ? { valid: true, timeStep: c.T } : { valid: false })
  })

  it.each(table(file.otpauth, (c) => c.username))('otpauth URI for %s', (_name, c: any) => {
    expect(encodeTotpSecret(bytes(c.secret_hex))).toBe(c.secret_base32)
    expect(buildOtpauthUri(c.username, c.secret_base32)).toBe(c.uri)
    expect(secretFromOtpauthUri(c.uri)).toBe(c.secret_base32)
  })
})

describe('recovery-codes.json: reading, the wire, making, storing', () => {
  const file = vectors['recovery-codes.json']

  it.each(table(file.normalize, (c) => c.comment))('normalise: %s', async (_comment, c: any) => {
    let result: string | undefined
    const code = await verdict(() => (result = normalizeRecoveryCode(c.input)))
    expect(code === 'ok' ? { canonical: result } : { error: code }).toEqual(
      c.error ? { error: c.error } : { canonical: c.canonical },
    )
  })

  it.each(table(file.wire, (c) => c.comment))('wire: %s', (_comment, c: any) => {
    const ok = LoginRecovery.safeParse({ type: 'login_recovery', code: c.code }).success
    expect(ok ? 'ok' : 'ERR_PROTOCOL').toBe(c.server)
  })

  it('makes the ten codes from the random bytes', () => {
    const random = bytes(file.generate.random)
    let at = 0
    // A copy each time: the generator wipes what it was given.
    const source = (n: number) => Buffer.from(random.subarray(at, (at += n)))
    expect(generateRecoveryCodes(source)).toEqual(file.generate.codes)
    expect(at).toBe(random.length)
  })

  it('stores a code as its scrypt hash, and finds it again', async () => {
    const { code, salt, kdf, hash } = file.hash
    const stored = await hashRecoveryCodes([code], bytes(salt), kdf)
    expect(stored).toEqual({ kdf, salt, hashes: [hash] })
    expect(await findRecoveryCode(stored, code)).toBe(0)
  })
})

/** The bytes a frames.json case sends. */
function frameBytes(segments: Array<{ hex?: string; utf8?: string; repeat?: number }>): Buffer {
  return Buffer.concat(
    segments.map((segment) => {
      const one = segment.hex !== undefined ? bytes(segment.hex) : Buffer.from(segment.utf8!, 'utf8')
      return Buffer.concat(Array.from({ length: segment.repeat ?? 1 }, () => one))
    }),
  )
}

describe('frames.json: the frame reader, and the real server behind it', () => {
  const file = vectors['frames.json']
  const cases = table(file.cases, (c) => c.id)

  /** What FrameDecoder makes of the bytes, given whole or one byte at a time. */
  function decode(frame: Buffer, byteByByte: boolean): unknown {
    const decoder = new FrameDecoder()
    const messages: unknown[] = []
    try {
      if (byteByByte) for (const byte of frame) messages.push(...decoder.push(Buffer.from([byte])))
      else messages.push(...decoder.push(frame))
    } catch (error) {
      return { error: (error as { code: string }).code }
    }
    return decoder.pending > 0 ? { incomplete: messages } : messages
  }

  it.each(cases)('the frame reader: %s', (_id, c: any) => {
    const frame = frameBytes(c.segments)
    const expected =
      c.decoded !== null ? c.decoded : c.server.layer === 'frame' ? { error: c.server.error } : { incomplete: [] }
    expect(decode(frame, false)).toEqual(expected)
    if (frame.length < 1024) expect(decode(frame, true)).toEqual(expected)
    if (c.decoded !== null && c.server.error === undefined)
      expect(c.server.answers).toHaveLength((c.decoded as unknown[]).length)
  })

  let server: InProcessServer
  beforeAll(async () => {
    // The frame deadline short, so that the incomplete frame's ERR_TIMEOUT comes in a moment.
    server = await startInProcessServer({ limits: { frameMs: 300 } })
  })
  afterAll(() => server?.stop())

  async function send(frame: Buffer): Promise<{ frames: any[]; closed: boolean }> {
    const client = await RawClient.open(server.server.port)
    try {
      client.socket.write(frame)
      const closed = await Promise.race([
        client.closed.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ])
      return { frames: client.received as any[], closed }
    } finally {
      client.close()
    }
  }

  it.each(cases)('the server: %s', async (_id, c: any) => {
    const frame = frameBytes(c.segments)
    if (c.server.error !== undefined) {
      const { frames, closed } = await send(frame)
      expect(frames.map((f: any) => f.type === 'error' && f.code)).toEqual([c.server.error])
      expect(closed).toBe(true)
    } else {
      const client = await RawClient.open(server.server.port)
      try {
        client.socket.write(frame)
        await client.frame(c.server.answers.length)
        expect(client.received.map((f: any) => f.type)).toEqual(c.server.answers)
        // Still open: a good frame ends nothing.
        const next = await client.request({ type: 'jwks_get' })
        expect(next.type).toBe('jwks')
      } finally {
        client.close()
      }
    }
  })

  it.each(table(vectors['login.json'].A_checks, (c) => c.comment))(
    'the server, login.json A: %s',
    async (_comment, c: any) => {
      const client = await RawClient.open(server.server.port)
      try {
        const answer = await client.request({ type: 'login_start', username: 'nobody', A: c.A })
        expect(answer.type === 'error' ? answer.code : 'ok').toBe(c.server)
        if (c.server !== 'ok') {
          await client.closed
          expect(answer.message).toBe('authentication failed')
        } else expect(answer.type).toBe('challenge')
      } finally {
        client.close()
      }
    },
  )
})

describe('signed-tokens.json: our token, our JWKS, and verifyToken on its tampered forms', () => {
  const file = vectors['signed-tokens.json']
  const privateJwk = { kty: 'OKP', crv: 'Ed25519', x: file.key.x, d: file.key.d } as const

  it('names the key by its RFC 7638 thumbprint and publishes it as our JWKS does', async () => {
    expect(Buffer.from(file.key.d, 'base64url').toString('hex')).toBe(file.key.seed)
    expect(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: file.key.x }, 'sha256')).toBe(file.key.kid)
    expect(file.jwks).toEqual({ keys: [publicJwkOf(file.key.x, file.key.kid)] })
  })

  it('signs the same token, byte for byte (Ed25519 is deterministic)', async () => {
    expect(await signToken(privateJwk, file.key.kid, file.claims as TokenClaims)).toBe(file.token)
    const [header, payload] = file.token.split('.')
    expect(Buffer.from(header, 'base64url').toString('utf8')).toBe(file.header_json)
    expect(Buffer.from(payload, 'base64url').toString('utf8')).toBe(file.payload_json)
    expect(JSON.parse(file.payload_json)).toEqual(file.claims)
  })

  it.each(table(file.cases, (c) => c.id))('%s', async (_id, c: any) => {
    const { now, ...options } = c.options
    let claims: unknown
    const code = await verdict(
      async () => (claims = await verifyToken(c.token, { jwks: file.jwks, now: new Date(now * 1000), ...options })),
    )
    if (c.expect.ok) {
      expect(code).toBe('ok')
      expect(claims).toEqual(JSON.parse(Buffer.from(c.token.trim().split('.')[1], 'base64url').toString('utf8')))
    } else expect(code).toBe(c.expect.error)
  })
})
