import { execFile } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/env.js'

// The published test vectors (docs/vectors/*.json) checked by a second implementation that
// shares no code with ours: test/independent/vectors.py, Python's standard library only
// (hashlib.scrypt, hashlib.sha256, pow(), hmac, base64, json, unicodedata, and RFC 8032's
// Ed25519 in plain integers). It recomputes every value from the inputs and this test compares
// what it printed with the files; test/unit/vectors.test.ts checks our own code against the same
// files, so the two implementations agree with each other through them.

const DIR = join(ROOT, 'docs', 'vectors')
const SCRIPT = join(ROOT, 'test', 'independent', 'vectors.py')
const load = (name: string): any => JSON.parse(readFileSync(join(DIR, name), 'utf8'))

function runPython(): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(
      'python3',
      [SCRIPT, DIR],
      { maxBuffer: 16 * 1024 * 1024, timeout: 120_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
      (error, stdout, stderr) => {
        if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new Error(
              'python3 is not installed: the independent check of docs/vectors runs test/independent/vectors.py ' +
                'with Python 3.6 or later (standard library only); install python3 and run the tests again',
            ),
          )
        } else if (error) reject(new Error(`test/independent/vectors.py failed: ${error.message}\n${stderr}`))
        else resolve(JSON.parse(stdout))
      },
    )
  })
}

let python: any
beforeAll(async () => {
  python = await runPython()
})

/** The rows of `section` in the file: Python printed one per row, in the same order. */
function rows(name: string, section: string, fields: string[]): void {
  const mine = python[name][section] as any[]
  const theirs = load(name)[section] as any[]
  expect(mine.length, `${name} ${section}`).toBe(theirs.length)
  expect(theirs.length).toBeGreaterThan(0)
  for (const [i, row] of mine.entries()) {
    // Every field it was meant to compute, not a subset that happens to match.
    for (const field of fields) expect(row, `${name} ${section}[${i}]`).toHaveProperty(field)
    expect(theirs[i], `${name} ${section}[${i}]`).toMatchObject(row)
  }
}

describe('docs/vectors agree with an independent implementation (Python)', () => {
  it('checks every file', () => {
    const files = readdirSync(DIR)
      .filter((name) => name.endsWith('.json'))
      .sort()
    expect(python.files).toEqual(files)
  })

  it('registration.json: NFKC, the stretch, x and v; the kdf and verifier checks', () => {
    const file = load('registration.json')
    expect(file.group).toMatchObject(python['registration.json'].group)
    expect(file.stretch_label).toBe(python['registration.json'].stretch_label)
    rows('registration.json', 'cases', ['password_nfkc', 'scrypt_salt', 'P_prime', 'H_I_P_prime', 'x', 'v'])
    rows('registration.json', 'nfkc', ['nfkc', 'nfkc_utf8'])
    rows('registration.json', 'kdf_checks', ['schema', 'limits'])
    rows('registration.json', 'verifier_checks', ['server'])
  })

  it('login.json: A, B, u, S (both sides), K, M1, M2; the A and B checks', () => {
    const file = load('login.json')
    expect(file.group).toMatchObject(python['login.json'].group)
    const cases = python['login.json'].cases as any[]
    for (const c of cases) expect(c.S_client, c.id).toBe(c.S)
    python['login.json'].cases = cases.map(({ S_client: _, ...rest }) => rest)
    rows('login.json', 'cases', ['A', 'B', 'u', 'S', 'K', 'M1', 'M2'])
    rows('login.json', 'A_checks', ['server'])
    rows('login.json', 'B_checks', ['client'])
  })

  it('totp.json: RFC 6238 appendix B, the window, the otpauth URI', () => {
    const file = load('totp.json')
    const mine = python['totp.json']
    expect({ secret_hex: file.secret_hex, secret_base32: file.secret_base32 }).toEqual({
      secret_hex: mine.secret_hex,
      secret_base32: mine.secret_base32,
    })
    rows('totp.json', 'rows', ['T', 'T_bytes', 'hmac_sha1', 'code_8', 'code'])
    rows('totp.json', 'verify', ['valid'])
    rows('totp.json', 'otpauth', ['secret_base32', 'uri'])
  })

  it('recovery-codes.json: reading, the wire, making, storing', () => {
    const file = load('recovery-codes.json')
    const mine = python['recovery-codes.json']
    expect(mine.alphabet).toBe(file.alphabet)
    rows('recovery-codes.json', 'normalize', [])
    for (const row of mine.normalize) expect('canonical' in row || 'error' in row).toBe(true)
    rows('recovery-codes.json', 'wire', ['server'])
    expect(mine.generate.codes).toEqual(file.generate.codes)
    expect(mine.hash.hash).toBe(file.hash.hash)
  })

  it('frames.json: what a frame reader makes of each case', () => {
    const file = load('frames.json')
    const read = python['frames.json'].cases as any[]
    expect(read.map((c) => c.id)).toEqual(file.cases.map((c: any) => c.id))
    for (const [i, c] of file.cases.entries()) {
      // The frame layer only: what the bytes decode to, or the frame reader's refusal. Whether a
      // decoded value is a message the server takes is the server's (test/unit/vectors.test.ts).
      const expected =
        c.decoded !== null ? c.decoded : c.server.layer === 'frame' ? { error: c.server.error } : { incomplete: [] }
      expect(read[i].read, c.id).toEqual(expected)
    }
  })

  it('signed-tokens.json: the key, its kid, the JWKS, and every verdict', () => {
    const file = load('signed-tokens.json')
    const mine = python['signed-tokens.json']
    expect(file.key).toMatchObject(mine.key)
    expect(file.jwks).toEqual(mine.jwks)
    expect(file.other_key).toMatchObject(mine.other_key)
    expect(file.header_json).toBe(mine.header_json)
    expect(file.claims).toEqual(mine.claims)
    rows('signed-tokens.json', 'cases', ['id', 'expect'])
  })
})
