import { readFile } from 'node:fs/promises'
import { isDeepStrictEqual } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { authenticate } from '../../src/client/login.js'
import { generateTotp } from '../../src/auth/totp.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { attemptProof, restartInProcessServer, shapeOf, type ProofAttempt } from '../helpers/enumeration.js'
import { noteSecret } from '../helpers/secrets.js'

// User enumeration (docs/protocol.md, Login): a name with no account gets a decoy challenge that
// looks like a real user's and fails at login_proof exactly as a wrong password does. Real server,
// real TLS socket, raw frames; M1 from the secure-remote-password client.

const PASSWORD = 'enumeration test password 3'
const KNOWN = 'erin'
const WRONG = 'not erin at all 77'
// No waits and no lockout within this file's failures: the guard is tested in guard.test.ts.
const QUIET = { sleep: async () => {}, guard: { lockAfter: 100 }, registration: 'open' as const }

let server: InProcessServer
beforeAll(async () => {
  noteSecret('password', PASSWORD)
  noteSecret('password', WRONG)
  server = await startInProcessServer({ server: QUIET })
  const conn = await connect()
  const { secret } = await startRegistration(conn, KNOWN, PASSWORD)
  await confirmEnrolment(conn, await generateTotp(secret, Date.now()))
  conn.close()
})
afterAll(() => server.stop())

async function connect(): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.server.port,
    trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
  })
}

const attempt = (username: string) => attemptProof(server.server.port, username, WRONG)

/** The challenge fields whose values differ between two challenges (the per-connection ones). */
const changing = (a: ProofAttempt, b: ProofAttempt): string[] =>
  Object.keys({ ...a.challenge, ...b.challenge })
    .filter((key) => !isDeepStrictEqual(a.challenge[key], b.challenge[key]))
    .sort()

describe('the shape comparison', () => {
  const reference = {
    type: 'challenge',
    salt: 'a1'.repeat(32),
    kdf: { name: 'scrypt', logN: 16, r: 8, p: 1 },
    B: '0f'.repeat(256),
  }
  // Each row is a difference a decoy could have: the comparison used below must see it.
  it.each<[string, Record<string, unknown>]>([
    ['a salt one hex digit short', { ...reference, salt: 'a1'.repeat(31) + 'a' }],
    ['a B in upper case', { ...reference, B: '0F'.repeat(256) }],
    ['an extra field', { ...reference, extra: 'x' }],
    ['a missing field', { type: 'challenge', salt: reference.salt, B: reference.B }],
    ['fields in another order', { type: 'challenge', B: reference.B, salt: reference.salt, kdf: reference.kdf }],
    ['a nested number sent as a string', { ...reference, kdf: { ...reference.kdf, logN: '16' } }],
    ['a nested field missing', { ...reference, kdf: { name: 'scrypt', logN: 16, r: 8 } }],
  ])('tells %s from the reference', (_, other) => {
    expect(shapeOf(other)).not.toEqual(shapeOf(reference))
  })

  it('sees no difference between two frames that differ only in hex values', () => {
    expect(shapeOf({ ...reference, salt: 'b2'.repeat(32), B: '7e'.repeat(256) })).toEqual(shapeOf(reference))
  })
})

describe('a name with no account cannot be told from a wrong password', () => {
  it('control: the registered user and password are real (the server proves M2 to our own client)', async () => {
    const conn = await connect()
    try {
      await expect(authenticate(conn, KNOWN, PASSWORD)).resolves.toEqual({})
    } finally {
      conn.close()
    }
  })

  it('sends a challenge of the same keys, value shapes and encoded length', async () => {
    const known = await attempt(KNOWN)
    const unknown = await Promise.all(['nobody.here', 'erin2', 'a', 'z'.repeat(64)].map(attempt))
    expect(known.challenge).toHaveProperty('salt')
    expect(known.challenge).toHaveProperty('B')
    for (const decoy of unknown) {
      expect(shapeOf(decoy.challenge)).toEqual(shapeOf(known.challenge))
      expect(decoy.challengeBytes.length).toBe(known.challengeBytes.length)
    }
    // A field that is the same for every unknown name (a policy such as the KDF parameters) must
    // have the real user's value too, or it says "no account" by itself.
    const constant = Object.keys(unknown[0]!.challenge).filter((key) =>
      unknown.every((u) => isDeepStrictEqual(u.challenge[key], unknown[0]!.challenge[key])),
    )
    expect(constant).toContain('type')
    for (const key of constant) expect({ [key]: known.challenge[key] }).toEqual({ [key]: unknown[0]!.challenge[key] })
  })

  it('answers M1 with the same error frame, byte for byte, and ends the connection the same way', async () => {
    const known = await attempt(KNOWN)
    const unknown = await attempt('nobody.here')
    expect(known.error).toEqual({
      type: 'error',
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
      hint: expect.any(String),
    })
    expect(unknown.error).toEqual(known.error)
    expect(unknown.errorBytes.toString('hex')).toBe(known.errorBytes.toString('hex'))
    expect(known.ending).toEqual({ closed: true, gotEnd: true, errors: [], hadError: false, frames: 2 })
    expect(unknown.ending).toEqual(known.ending)
    // The server knows which it was (its log may say); both failed at the proof. (No password in
    // the log: test/setup/no-secrets.ts checks every log against the noted passwords.)
    const failed = server.logger.entries
      .filter((e) => e.event === 'login_failed')
      .map((e) => ({ user: e.fields.user, stage: e.fields.stage }))
    expect(failed).toEqual(
      expect.arrayContaining([
        { user: KNOWN, stage: 'proof' },
        { user: 'nobody.here', stage: 'proof' },
      ]),
    )
  })

  it('keeps a decoy stable for its name, across connections and a restart, with a fresh B each time', async () => {
    const known = [await attempt(KNOWN), await attempt(KNOWN)]
    const first = await attempt('nobody.here')
    const second = await attempt('nobody.here')
    const other = await attempt('somebody.else')
    server = await restartInProcessServer(server, QUIET)
    const afterRestart = await attempt('nobody.here')
    const knownAfterRestart = await attempt(KNOWN)

    // Only the per-connection fields change, and they are the same ones for a real user.
    const ephemeral = changing(known[0]!, known[1]!)
    expect(ephemeral).toContain('B')
    expect(changing(first, second)).toEqual(ephemeral)
    expect(changing(first, afterRestart)).toEqual(ephemeral)
    expect(changing(known[0]!, knownAfterRestart)).toEqual(ephemeral)
    expect(new Set([first, second, afterRestart].map((a) => a.challenge.B)).size).toBe(3)

    expect(other.challenge.salt).not.toBe(first.challenge.salt)
    expect(first.challenge.salt).not.toBe(known[0]!.challenge.salt)
    // And after the restart the decoy still fails like a wrong password.
    expect(afterRestart.errorBytes.toString('hex')).toBe(knownAfterRestart.errorBytes.toString('hex'))
  })
})
