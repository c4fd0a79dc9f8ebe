#!/usr/bin/env node
// Writes the published test vectors, docs/vectors/*.json (docs/vectors/README.md says how to use
// them). Run once, by hand, when a vector is added: `node scripts/make-vectors.mjs`; the files are
// committed, and the tests only read them (test/unit/vectors.test.ts checks our code against
// them, test/independent/ a second implementation in Python).
//
// This script imports nothing from src/ or dist/: it computes every value from the formulas with
// node:crypto and BigInt, so that the files are a third opinion, not a copy of our code's output.
// Nothing in it is random: every "random" input is SHA-256 of a label, and the searches for values
// with a leading zero byte walk a counter, so running it again writes the same bytes.
import { createHash, createHmac, createPrivateKey, createPublicKey, scryptSync, sign } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'vectors')
const GENERATOR = 'scripts/make-vectors.mjs'

// ---------------------------------------------------------------------------------------------
// Small tools

const sha256 = (...parts) => {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest()
}
const label = (text, i = 0) => {
  const n = Buffer.alloc(4)
  n.writeUInt32BE(i)
  return sha256(Buffer.from(text, 'utf8'), n)
}
const hex = (bytes) => Buffer.from(bytes).toString('hex')
const utf8hex = (text) => Buffer.from(text, 'utf8').toString('hex')
const b64u = (bytes) => Buffer.from(bytes).toString('base64url')
const toBig = (bytes) => (bytes.length === 0 ? 0n : BigInt(`0x${hex(bytes)}`))

function write(name, value) {
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, name), `${JSON.stringify(value, null, 2)}\n`)
  console.log(`wrote docs/vectors/${name}`)
}

// ---------------------------------------------------------------------------------------------
// SRP-6a as docs/protocol.md ("SRP") defines it: RFC 5054's 2048-bit group, SHA-256, and the
// secure-remote-password package's choices (k = H(N | g) with g as one byte, M1 and M2 of RFC 2945).

const N_HEX = `
  AC6BDB41 324A9A9B F166DE5E 1389582F AF72B665 1987EE07 FC319294
  3DB56050 A37329CB B4A099ED 8193E075 7767A13D D52312AB 4B03310D
  CD7F48A9 DA04FD50 E8083969 EDB767B0 CF609517 9A163AB3 661A05FB
  D5FAAAE8 2918A996 2F0B93B8 55F97993 EC975EEA A80D740A DBF4FF74
  7359D041 D5C33EA7 1D281E44 6B14773B CA97B43A 23FB8016 76BD207A
  436C6481 F1D2B907 8717461A 5B9D32E6 88F87748 544523B5 24B0D57D
  5EA77A27 75D2ECFA 032CFBDB F52FB378 61602790 04E57AE6 AF874E73
  03CE5329 9CCC041C 7BC308D8 2A5698F3 A8D0C382 71AE35F8 E9DBFBB6
  94B5C803 D89F7AE4 35DE236D 525F5475 9B65E372 FCD68EF2 0FA7111F
  9E4AFF73`
  .replace(/\s+/g, '')
  .toLowerCase()
const N_BYTES = Buffer.from(N_HEX, 'hex')
const N = toBig(N_BYTES)
const WIDTH = N_BYTES.length // 256
const g = 2n
const G_BYTES = Buffer.from([2])

/** An integer as exactly WIDTH big-endian bytes (RFC 5054's PAD). */
function pad(n) {
  if (n < 0n || n >= 1n << BigInt(WIDTH * 8)) throw new RangeError('does not fit')
  return Buffer.from(n.toString(16).padStart(WIDTH * 2, '0'), 'hex')
}

function modPow(base, exponent, modulus) {
  let result = 1n
  let b = ((base % modulus) + modulus) % modulus
  let e = exponent
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus
    b = (b * b) % modulus
    e >>= 1n
  }
  return result
}

const k = toBig(sha256(N_BYTES, G_BYTES))
const HN_XOR_HG = (() => {
  const hn = sha256(N_BYTES)
  const hg = sha256(G_BYTES)
  return Buffer.from(hn.map((byte, i) => byte ^ hg[i]))
})()

const STRETCH_LABEL = Buffer.from('securelogin password v1\0', 'utf8')

function stretch(passwordNfkc, salt, kdf) {
  const N = 2 ** kdf.logN
  const maxmem = 2 * 128 * N * kdf.r + 1024 * 1024
  const key = scryptSync(Buffer.from(passwordNfkc, 'utf8'), Buffer.concat([STRETCH_LABEL, salt]), 32, {
    N,
    r: kdf.r,
    p: kdf.p,
    maxmem,
  })
  return hex(key)
}

function register({ password, I, salt, kdf }) {
  const nfkc = password.normalize('NFKC')
  const Pprime = stretch(nfkc, salt, kdf)
  const inner = sha256(Buffer.from(`${I}:${Pprime}`, 'utf8'))
  const x = sha256(salt, inner)
  const v = pad(modPow(g, toBig(x), N))
  return { nfkc, Pprime, inner, x, v }
}

function login({ I, salt, x, v, a, b }) {
  const A = pad(modPow(g, toBig(a), N))
  const B = pad((k * toBig(v) + modPow(g, toBig(b), N)) % N)
  const u = sha256(A, B)
  // The server's side: S = (A * v^u)^b; the client's: (B - k * g^x)^(a + u * x). Both must agree.
  const Sserver = modPow((toBig(A) * modPow(toBig(v), toBig(u), N)) % N, toBig(b), N)
  const Sclient = modPow(toBig(B) - k * modPow(g, toBig(x), N), toBig(a) + toBig(u) * toBig(x), N)
  if (Sserver !== Sclient) throw new Error('S: the two sides disagree')
  const S = pad(Sserver)
  const K = sha256(S)
  const M1 = sha256(HN_XOR_HG, sha256(Buffer.from(I, 'utf8')), salt, A, B, K)
  const M2 = sha256(A, M1, K)
  return { A, B, u, S, K, M1, M2 }
}

const DESCRIBE_GROUP = {
  N: 'the RFC 5054 appendix A 2048-bit safe prime: 256 bytes, big-endian',
  g: 'the generator 2, as the one byte 0x02 (1 byte): how it is hashed in k = H(N | g) and H(g)',
  hash: 'H: SHA-256 (32-byte output)',
  k: 'k = H(N | g): N as its 256 bytes, g as the one byte 0x02 (not padded to 256 bytes, unlike RFC 5054); 32 bytes',
  H_N_xor_H_g: 'H(N) xor H(g), byte by byte: 32 bytes; the first input of M1',
}
const group = () => ({
  N: N_HEX,
  g: '02',
  hash: 'SHA-256',
  k: k.toString(16).padStart(64, '0'),
  H_N_xor_H_g: hex(HN_XOR_HG),
})

// ---------------------------------------------------------------------------------------------
// registration.json

const KDF = (logN, r, p) => ({ name: 'scrypt', logN, r, p })
const salt = (n, leadingZero = false) => {
  const bytes = label('securelogin vectors salt', n)
  if (leadingZero) bytes[0] = 0
  return bytes
}

const REGISTRATIONS = [
  {
    id: 'default-kdf-fullwidth',
    comment:
      'the default kdf (logN 16, r 8, p 1: 64 MiB); a password typed in fullwidth forms with an ideographic ' +
      'space, which NFKC maps to ASCII; a salt whose first byte is 0x00 (hashed as all 32 bytes)',
    password: 'Ｔｒｏｕｂａｄｏｒ\u3000２０２４ ｃｏｒｒｅｃｔ',
    I: 'ada',
    salt: salt(1, true),
    kdf: KDF(16, 8, 1),
  },
  {
    id: 'decomposed-ligature',
    comment:
      'logN 15, r 16, p 1 (64 MiB, another order of the same memory): combining accents that NFKC composes, ' +
      'the ligature U+FB01 and the vulgar fraction U+00BD that it expands',
    password: 'cafe\u0301 \uFB01ance\u0301e \u00BD tasse',
    I: 'bob.smith-2',
    salt: salt(2),
    kdf: KDF(15, 16, 1),
  },
  {
    id: 'astral-and-compat-signs',
    comment:
      'logN 14, r 32, p 1 (64 MiB): a 4-byte UTF-8 character (U+1F511) that NFKC keeps, and the Ohm and ' +
      'Angstrom signs (U+2126, U+212B) that it replaces with the Greek and Latin letters',
    password: 'пароль 密码 \u{1F511} \u2126 \u212B',
    I: 'user_3',
    salt: salt(3),
    kdf: KDF(14, 32, 1),
  },
]

const NFKC_ONLY = [
  ['Ⅻ', 'a Roman numeral (U+216B) becomes three letters'],
  ['ｶﾞ', 'halfwidth katakana and a halfwidth voiced mark become one fullwidth character'],
  ['ﬀ x² H₂O', 'a ligature, a superscript and a subscript become plain characters'],
  ['a\u00A0b', 'a no-break space becomes a space'],
  ['e\u0301', 'e and a combining acute become the one character U+00E9'],
  ['\u1112\u1161\u11AB', 'three conjoining jamo become the Hangul syllable U+D55C'],
  ['Straße ẞ', 'NFKC does not case-fold: the sharp s stays, lower and capital'],
  ['Ǆ', 'the digraph U+01C4 becomes two letters'],
  ['plain ascii 123', 'ASCII is unchanged'],
]

const KDF_CHECKS = [
  [KDF(16, 8, 1), 'ok', 'ok', 'the default: 64 MiB'],
  [KDF(15, 16, 1), 'ok', 'ok', '64 MiB'],
  [KDF(14, 32, 1), 'ok', 'ok', '64 MiB'],
  [KDF(17, 8, 1), 'ok', 'ok', '128 MiB'],
  [KDF(18, 8, 1), 'ok', 'ok', '256 MiB: the cap, inclusive'],
  [KDF(20, 1, 1), 'ok', 'ok', '128 MiB at logN 20, the highest logN'],
  [KDF(16, 8, 4), 'ok', 'ok', 'p 4, the highest p'],
  [KDF(15, 8, 1), 'ok', 'ERR_KDF_LIMIT', '32 MiB: under the 64 MiB floor'],
  [KDF(19, 8, 1), 'ok', 'ERR_KDF_LIMIT', '512 MiB: over the 256 MiB cap'],
  [KDF(16, 64, 1), 'ok', 'ERR_KDF_LIMIT', '512 MiB at r 64, the highest r the schema allows'],
  [KDF(21, 1, 1), 'ok', 'ERR_KDF_LIMIT', '256 MiB, but logN 21 is over 20'],
  [KDF(16, 8, 5), 'ok', 'ERR_KDF_LIMIT', 'p 5 is over 4'],
  [KDF(12, 128, 1), 'ERR_PROTOCOL', 'ok', 'exactly 64 MiB, but r 128 is over the schema cap of 64'],
  [KDF(31, 1, 1), 'ERR_PROTOCOL', 'ERR_KDF_LIMIT', 'logN 31 is over the schema cap of 30'],
  [KDF(0, 8, 1), 'ERR_PROTOCOL', 'ERR_KDF_LIMIT', 'logN 0 is under the schema floor of 1'],
  [KDF(16, 8, 0), 'ERR_PROTOCOL', 'ERR_KDF_LIMIT', 'p 0 is under the schema floor of 1'],
  [{ name: 'argon2id', logN: 16, r: 8, p: 1 }, 'ERR_PROTOCOL', 'ERR_KDF_LIMIT', 'only scrypt is defined'],
  [{ name: 'scrypt', logN: 16, r: 8 }, 'ERR_PROTOCOL', 'ERR_KDF_LIMIT', 'p is missing'],
  [{ ...KDF(16, 8, 1), dkLen: 32 }, 'ERR_PROTOCOL', 'ok', 'an unknown member (the schema is strict)'],
]

function makeRegistration() {
  const cases = REGISTRATIONS.map(({ id, comment, password, I, salt, kdf }) => {
    const r = register({ password, I, salt, kdf })
    return {
      id,
      comment,
      password,
      password_utf8: utf8hex(password),
      password_nfkc: r.nfkc,
      password_nfkc_utf8: utf8hex(r.nfkc),
      I,
      salt: hex(salt),
      kdf,
      scrypt_salt: hex(Buffer.concat([STRETCH_LABEL, salt])),
      P_prime: r.Pprime,
      H_I_P_prime: hex(r.inner),
      x: hex(r.x),
      v: hex(r.v),
    }
  })
  const verifierChecks = [
    [0n, 'ERR_PROTOCOL', 'v = 0: S would be 0 whatever the password'],
    [1n, 'ERR_PROTOCOL', 'v = 1: S would be A^b, known to the client'],
    [2n, 'ok', 'the smallest usable v'],
    [N - 1n, 'ok', 'the largest usable v'],
    [N, 'ERR_PROTOCOL', 'v = N, which is 0 mod N'],
    [(1n << 2048n) - 1n, 'ERR_PROTOCOL', 'all ones: above N'],
  ].map(([value, server, comment]) => ({ v: hex(pad(value)), server, comment }))
  verifierChecks.push({
    v: hex(pad(N - 1n)).toUpperCase(),
    server: 'ERR_PROTOCOL',
    comment: 'upper-case hex: the wire takes lower-case hex digits only',
  })
  write('registration.json', {
    description: {
      file:
        'Registration: from a password, a user name, a salt and a kdf, the stretched password P_prime, x and ' +
        'the verifier v that register_start sends. docs/protocol.md, "Password stretching" and "SRP"; ' +
        'docs/vectors/README.md says in which order to compute them.',
      group: DESCRIBE_GROUP,
      stretch_label:
        'the 23 bytes "securelogin password v1" and one NUL byte (0x00), in front of the salt in the scrypt salt',
      'cases[].password': 'the password as the person typed it (a JSON string; not yet normalised)',
      'cases[].password_utf8': 'its UTF-8 bytes, hex',
      'cases[].password_nfkc': 'the password after Unicode NFKC: what is stretched',
      'cases[].password_nfkc_utf8': 'its UTF-8 bytes, hex: the scrypt input (passphrase)',
      'cases[].I': 'the user name as sent in username: already lower-case, 1-64 of [a-z0-9._-], hashed as UTF-8',
      'cases[].salt':
        's: 32 bytes, hex (64 lower-case digits on the wire); hashed as these 32 bytes, leading zeros kept',
      'cases[].kdf': 'the kdf object as register_start sends it: scrypt with N = 2^logN, r, p',
      'cases[].scrypt_salt': 'stretch_label | s: the 56-byte salt given to scrypt, hex',
      'cases[].P_prime':
        "P' = scrypt(password_nfkc_utf8, scrypt_salt, N = 2^logN, r, p, dkLen 32), written as 64 lower-case " +
        'hex digits: that 64-character ASCII text (not the 32 bytes) is what x hashes',
      'cases[].H_I_P_prime': "H(I | ':' | P'): SHA-256 of the UTF-8 text I, ':', P' (the hex text); 32 bytes",
      'cases[].x': "x = H(s | H(I | ':' | P')): 32 bytes; used as an integer (big-endian) exponent",
      'cases[].v': 'v = g^x mod N: 256 bytes, big-endian, left-padded with zeros (512 lower-case hex digits)',
      nfkc: 'more normalisation cases without the cost of scrypt: input as typed, then after NFKC (and both as UTF-8)',
      kdf_checks:
        'whether a kdf object passes the wire schema (name "scrypt", integers logN 1..30, r 1..64, p 1..64, no ' +
        'other member; else ERR_PROTOCOL) and then the limits both the client and the server apply (memory ' +
        '128 * r * 2^logN from 64 MiB to 256 MiB inclusive, logN at most 20, p at most 4; else ERR_KDF_LIMIT). ' +
        'register_start checks the schema first; "limits" is the verdict of the limits alone',
      verifier_checks:
        'whether register_start accepts a verifier: 512 lower-case hex digits and 1 < v < N, else ERR_PROTOCOL',
    },
    version: 1,
    generator: GENERATOR,
    group: group(),
    stretch_label: hex(STRETCH_LABEL),
    cases,
    nfkc: NFKC_ONLY.map(([input, comment]) => ({
      comment,
      input,
      input_utf8: utf8hex(input),
      nfkc: input.normalize('NFKC'),
      nfkc_utf8: utf8hex(input.normalize('NFKC')),
    })),
    kdf_checks: KDF_CHECKS.map(([kdf, schema, limits, comment]) => ({ kdf, schema, limits, comment })),
    verifier_checks: verifierChecks,
  })
  return cases
}

// ---------------------------------------------------------------------------------------------
// login.json

function makeLogin(registration) {
  const user = registration[0]
  const fixed = {
    I: user.I,
    salt: Buffer.from(user.salt, 'hex'),
    x: Buffer.from(user.x, 'hex'),
    v: Buffer.from(user.v, 'hex'),
  }
  const aOf = (i) => label('securelogin vectors a', i)
  const bOf = (i) => label('securelogin vectors b', i)
  /** The first counter i >= 1 whose a (or b) gives a value with a leading zero byte. */
  const search = (which, test) => {
    for (let i = 1; i < 100_000; i++) {
      const a = which === 'a' ? aOf(i) : aOf(0)
      const b = which === 'b' ? bOf(i) : bOf(0)
      const values = login({ ...fixed, a, b })
      if (test(values)) return { a, b }
    }
    throw new Error('no value found')
  }
  const wanted = [
    ['plain', 'a and b as drawn: no value starts with a zero byte', { a: aOf(0), b: bOf(0) }],
    [
      'A-leading-zero',
      'A < 2^2040: its first byte is 0x00, hashed in u, M1 and M2 as all 256 bytes',
      search('a', (v) => v.A[0] === 0),
    ],
    [
      'B-leading-zero',
      'B < 2^2040: its first byte is 0x00, hashed in u and M1 as all 256 bytes',
      search('b', (v) => v.B[0] === 0),
    ],
    [
      'S-leading-zero',
      'S < 2^2040: its first byte is 0x00; K = H(S) hashes all 256 bytes',
      search('a', (v) => v.S[0] === 0),
    ],
    [
      'K-leading-zero',
      'the first byte of K is 0x00: hashed in M1 and M2 as all 32 bytes',
      search('a', (v) => v.K[0] === 0),
    ],
    [
      'M1-leading-zero',
      'the first byte of M1 is 0x00: sent as 64 hex digits and hashed in M2 as 32 bytes',
      search('a', (v) => v.M1[0] === 0),
    ],
  ]
  const cases = wanted.map(([id, comment, { a, b }]) => {
    const r = login({ ...fixed, a, b })
    const values = Object.fromEntries(Object.entries(r).map(([name, bytes]) => [name, hex(bytes)]))
    return { id, comment, a: hex(a), b: hex(b), ...values }
  })
  const aChecks = [
    [0n, 'ERR_AUTH_FAILED', 'A = 0: S would be 0 whatever the password (RFC 5054 2.5.4)'],
    [N, 'ERR_AUTH_FAILED', 'A = N, which is 0 mod N'],
    [N + 1n, 'ERR_AUTH_FAILED', 'A >= N: never sent by an honest client'],
    [(1n << 2048n) - 1n, 'ERR_AUTH_FAILED', 'all ones: above N'],
    [1n, 'ok', 'A = 1 is allowed (the client gains nothing: S = (v^u)^b needs v)'],
    [N - 1n, 'ok', 'N - 1, the largest A'],
  ].map(([value, server, comment]) => ({ A: hex(pad(value)), server, comment }))
  const bChecks = [
    [0n, 'ERR_SERVER_AUTH_FAILED', 'B = 0: the client refuses B mod N = 0 before it sends M1'],
    [N, 'ERR_SERVER_AUTH_FAILED', 'B = N, which is 0 mod N'],
  ].map(([value, client, comment]) => ({ B: hex(pad(value)), client, comment }))
  write('login.json', {
    description: {
      file:
        'Login: with fixed secret ephemerals a and b, the values of one SRP-6a login of the user of ' +
        'registration.json case "default-kdf-fullwidth" (I, salt, x and v are repeated here). ' +
        'docs/protocol.md, "SRP"; docs/vectors/README.md gives the order. Every integer is big-endian and ' +
        "hashed at N's width (256 bytes, leading zeros kept); every hash output is 32 bytes.",
      group: DESCRIBE_GROUP,
      user: 'I, salt (32 bytes), x (32 bytes) and v (256 bytes) from registration.json',
      'cases[].a': "the client's secret ephemeral: 32 bytes, used as an integer exponent",
      'cases[].b': "the server's secret ephemeral: 32 bytes, used as an integer exponent",
      'cases[].A': 'A = g^a mod N: 256 bytes (512 lower-case hex digits in login_start)',
      'cases[].B': 'B = (k * v + g^b) mod N: 256 bytes (512 hex digits in challenge)',
      'cases[].u': 'u = H(A | B), A and B at 256 bytes each: 32 bytes; an integer in S',
      'cases[].S':
        'S = (A * v^u)^b mod N (the server) = (B - k * g^x)^(a + u * x) mod N (the client): 256 bytes. ' +
        'B - k * g^x may be negative: reduce it mod N into 0..N-1 first',
      'cases[].K': 'K = H(S), S at 256 bytes: 32 bytes, the session key',
      'cases[].M1':
        'M1 = H(H(N) xor H(g) | H(I) | s | A | B | K): 32 + 32 + 32 + 256 + 256 + 32 bytes in; 32 bytes ' +
        '(64 hex digits in login_proof)',
      'cases[].M2': 'M2 = H(A | M1 | K): 256 + 32 + 32 bytes in; 32 bytes (64 hex digits in server_proof)',
      A_checks:
        "whether the server accepts login_start's A (after the schema: 512 lower-case hex digits): 0 < A < N, " +
        'else ERR_AUTH_FAILED, the same frame as any failed login, and the connection ends',
      B_checks: "whether the client goes on with challenge's B: B mod N != 0, else ERR_SERVER_AUTH_FAILED",
    },
    version: 1,
    generator: GENERATOR,
    group: group(),
    user: { registration: user.id, I: user.I, salt: user.salt, x: user.x, v: user.v },
    cases,
    A_checks: aChecks,
    B_checks: bChecks,
  })
}

// ---------------------------------------------------------------------------------------------
// totp.json

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
function base32(bytes) {
  let bits = 0
  let value = 0
  let text = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      text += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) text += BASE32[(value << (5 - bits)) & 31]
  return text
}

function hotp(secret, counter, digits) {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac('sha1', secret).update(message).digest()
  const offset = mac[19] & 0x0f
  const binary = mac.readUInt32BE(offset) & 0x7fffffff
  return { message, mac, code: String(binary % 10 ** digits).padStart(digits, '0') }
}

function makeTotp() {
  const secret = Buffer.from('12345678901234567890', 'ascii')
  const rows = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ].map(([time, rfc]) => {
    const T = Math.floor(time / 30)
    const { message, mac, code } = hotp(secret, T, 8)
    if (code !== rfc) throw new Error(`RFC 6238 row ${time}: got ${code}`)
    return { time, T, T_bytes: hex(message), hmac_sha1: hex(mac), code_8: rfc, code: hotp(secret, T, 6).code }
  })
  const base = 1111111109
  const T = Math.floor(base / 30)
  const codeAt = (step) => hotp(secret, step, 6).code
  const verify = [
    [codeAt(T), base, true, T, 'the current step'],
    [codeAt(T - 1), base, true, T - 1, 'the step before: one step of drift is allowed'],
    [codeAt(T + 1), base, true, T + 1, 'the step after'],
    [codeAt(T - 2), base, false, null, 'two steps before: refused'],
    [codeAt(T + 2), base, false, null, 'two steps after: refused'],
    [codeAt(T).slice(1), base, false, null, 'five digits'],
    [`${codeAt(T)}0`, base, false, null, 'seven digits'],
    [` ${codeAt(T)}`, base, false, null, 'a space in front: the wire takes exactly six ASCII digits'],
    [
      codeAt(T).replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d))),
      base,
      false,
      null,
      'fullwidth digits',
    ],
    [hotp(secret, T, 8).code, base, false, null, 'the 8-digit code of the same step'],
  ].map(([code, time, valid, step, comment]) => ({ comment, time, code, valid, ...(valid ? { T: step } : {}) }))
  const other = label('securelogin vectors totp secret').subarray(0, 20)
  const uris = [
    ['ada', secret],
    ['ada.lovelace_1-x', other],
  ].map(([name, bytes]) => {
    const s = base32(bytes)
    return {
      username: name,
      secret_hex: hex(bytes),
      secret_base32: s,
      uri: `otpauth://totp/securelogin:${name}?secret=${s}&issuer=securelogin&algorithm=SHA1&digits=6&period=30`,
    }
  })
  write('totp.json', {
    description: {
      file:
        'TOTP (RFC 6238 with HMAC-SHA-1, 30-second steps from the Unix epoch, 6 digits): the SHA-1 rows of ' +
        'RFC 6238 appendix B, the window a server accepts, and the otpauth URI of enrol. docs/protocol.md, "TOTP".',
      secret_ascii: 'the RFC 6238 appendix B SHA-1 seed: the 20 ASCII bytes "12345678901234567890"',
      secret_hex: 'the same 20 bytes, hex',
      secret_base32: 'the same 20 bytes in RFC 4648 base32, upper-case, no padding: 32 characters, as in otpauth URIs',
      'rows[].time': 'Unix time in seconds',
      'rows[].T': 'floor(time / 30): the step counter',
      'rows[].T_bytes': 'T as 8 big-endian bytes: the HMAC message (RFC 4226 5.2)',
      'rows[].hmac_sha1': 'HMAC-SHA-1(secret, T_bytes): 20 bytes',
      'rows[].code_8': 'the 8-digit code RFC 6238 appendix B lists (dynamic truncation mod 10^8)',
      'rows[].code': 'our 6-digit code: the same truncation mod 10^6, zero-padded to 6 ASCII digits',
      'verify[]':
        'whether a server at Unix time `time` accepts `code` for the appendix B secret: six ASCII digits, equal ' +
        'to the code of step T - 1, T or T + 1 (T = floor(time / 30)); T is the step it matched. (A server ' +
        'also refuses a step it has already accepted for the user: RFC 6238 5.2; not a vector.)',
      'otpauth[]':
        'the URI enrol carries for a user name and a secret: the label "securelogin:" and the name, then ' +
        'secret (base32, no padding), issuer, algorithm, digits and period, in this order',
    },
    version: 1,
    generator: GENERATOR,
    secret_ascii: secret.toString('ascii'),
    secret_hex: hex(secret),
    secret_base32: base32(secret),
    rows,
    verify,
    otpauth: uris,
  })
}

// ---------------------------------------------------------------------------------------------
// recovery-codes.json

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz'

function makeRecovery() {
  const normalize = [
    ['abcde-fghjk', 'abcde-fghjk', 'canonical already'],
    ['ABCDE-FGHJK', 'abcde-fghjk', 'upper case is lowered'],
    ['abcdefghjk', 'abcde-fghjk', 'without the dash'],
    ['  ab cde - fg\thjk\n', 'abcde-fghjk', 'spaces, a tab and a newline are dropped'],
    ['a-b-c-d-e-f-g-h-j-k', 'abcde-fghjk', 'dashes anywhere are dropped'],
    ['oOiIl-L0123', '00111-10123', 'o and O read as 0; i, I, l and L read as 1'],
    ['mnpqr-stvwx', 'mnpqr-stvwx', 'the other letters of the alphabet'],
    ['yz789-56abc', 'yz789-56abc', 'digits'],
    ['abcde-fghj', null, '9 characters'],
    ['abcde-fghjkm', null, '11 characters'],
    ['abcde-fghju', null, 'u is not in the alphabet (Crockford leaves it out)'],
    ['abcde_fghjk', null, 'an underscore is not a separator'],
    ['abcde.fghjk', null, 'nor is a dot'],
    ['', null, 'empty'],
    ['-----', null, 'only dashes'],
    ['ａｂｃｄｅ-ｆｇｈｊｋ', null, 'fullwidth letters are not the ASCII ones'],
    ['abcde-fghj\u212a', null, 'the Kelvin sign is not k: only ASCII letters are lowered'],
    ['abcde\u00a0fghjk', null, 'a no-break space is not a separator: only space, tab, CR, LF and "-"'],
    ['\ufeffabcde-fghjk', null, 'nor is a byte order mark'],
    ['abcde\u000bfghjk', null, 'nor a vertical tab'],
  ].map(([input, canonical, comment]) => ({
    comment,
    input,
    ...(canonical === null ? { error: 'ERR_USAGE' } : { canonical }),
  }))
  const wire = [
    ['abcde-fghjk', 'ok', 'canonical'],
    ['00111-10123', 'ok', 'canonical'],
    ['ABCDE-FGHJK', 'ERR_PROTOCOL', 'upper case: the client must normalise first'],
    ['abcdefghjk', 'ERR_PROTOCOL', 'no dash'],
    ['abcde-fghjo', 'ERR_PROTOCOL', 'o is a look-alike the client maps to 0'],
    ['abcde-fghju', 'ERR_PROTOCOL', 'u is not in the alphabet'],
    [' abcde-fghjk', 'ERR_PROTOCOL', 'a space'],
  ].map(([code, server, comment]) => ({ comment, code, server }))
  const random = Buffer.concat([0, 1, 2, 3, 4].map((i) => label('securelogin vectors recovery bytes', i))).subarray(
    0,
    100,
  )
  const codes = Array.from({ length: 10 }, (_, i) => {
    const chars = [...random.subarray(i * 10, i * 10 + 10)].map((byte) => CROCKFORD[byte % 32]).join('')
    return `${chars.slice(0, 5)}-${chars.slice(5)}`
  })
  const hashSalt = label('securelogin vectors recovery salt').subarray(0, 16)
  const hashKdf = KDF(14, 8, 1)
  const code = codes[0]
  const hash = scryptSync(Buffer.from(code.replace('-', ''), 'ascii'), hashSalt, 32, {
    N: 2 ** hashKdf.logN,
    r: hashKdf.r,
    p: hashKdf.p,
  })
  write('recovery-codes.json', {
    description: {
      file:
        'Recovery codes: how a client reads what a person typed (normalisation), what login_recovery accepts, ' +
        'how ten codes are made from random bytes, and how the server stores a code. docs/protocol.md, ' +
        '"Recovery codes".',
      alphabet: "Crockford's base32 in lower case: 0-9 and a-z without i, l, o, u (32 characters)",
      'normalize[]':
        'input as typed (a JSON string) and its canonical form, or the error: lower-case (ASCII A-Z), drop ' +
        'white space (space, tab, CR, LF) and "-", read o as 0 and i, l as 1, then exactly 10 characters of ' +
        'the alphabet, written as two groups of five joined by "-"; anything else is refused (ERR_USAGE, on ' +
        'the client, before anything is sent)',
      'wire[]':
        "whether the server takes login_recovery's code: exactly the canonical form, ^[0-9a-hjkmnp-tv-z]{5}-" +
        '[0-9a-hjkmnp-tv-z]{5}$, else ERR_PROTOCOL (and the connection ends)',
      'generate.random':
        '100 bytes from the random source, hex: code i uses bytes 10 * i to 10 * i + 9, character j being ' +
        'alphabet[byte mod 32] (256 is a multiple of 32, so this is unbiased)',
      'generate.codes': 'the ten codes those bytes make, in order',
      'hash.code': 'one code in canonical form',
      'hash.salt': 'the 16-byte salt of the set, hex',
      'hash.kdf': 'scrypt parameters: N = 2^logN, r, p',
      'hash.hash':
        'scrypt(the code without its dash as 10 ASCII bytes, salt, N, r, p, dkLen 32): 32 bytes, what the ' +
        'store keeps (the server side only; a client never computes it)',
    },
    version: 1,
    generator: GENERATOR,
    alphabet: CROCKFORD,
    normalize,
    wire,
    generate: { random: hex(random), codes },
    hash: { code, salt: hex(hashSalt), kdf: hashKdf, hash: hex(hash) },
  })
}

// ---------------------------------------------------------------------------------------------
// frames.json

function header(length) {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(length)
  return hex(bytes)
}
/** A frame of one UTF-8 body (its header computed), as segments. */
const framed = (body) => [{ hex: header(Buffer.byteLength(body, 'utf8')) }, { utf8: body }]
const framedBytes = (bytes) => [{ hex: header(bytes.length) }, { hex: hex(bytes) }]

function makeFrames() {
  const JWKS_GET = '{"type":"jwks_get"}'
  const cases = [
    {
      id: 'one-message',
      comment: 'one frame: 4-byte length 19, then 19 bytes of JSON',
      segments: framed(JWKS_GET),
      decoded: [{ type: 'jwks_get' }],
      server: { answers: ['jwks'] },
    },
    {
      id: 'white-space-and-escapes',
      comment: 'any JSON text: white space (a trailing newline included) and \\u escapes in names and strings',
      segments: framed('{ "\\u0074ype" : "jwks\\u005fget" }\n'),
      decoded: [{ type: 'jwks_get' }],
      server: { answers: ['jwks'] },
    },
    {
      id: 'two-frames-joined',
      comment: 'two frames sent in one write: the length prefix is the only boundary; each is answered in order',
      segments: [...framed(JWKS_GET), ...framed(JWKS_GET)],
      decoded: [{ type: 'jwks_get' }, { type: 'jwks_get' }],
      server: { answers: ['jwks', 'jwks'] },
    },
    {
      id: 'exactly-64-KiB',
      comment: 'a body of exactly 65536 bytes (the message, then 65517 spaces of JSON white space): the largest frame',
      segments: [{ hex: header(65536) }, { utf8: JWKS_GET }, { hex: '20', repeat: 65536 - JWKS_GET.length }],
      decoded: [{ type: 'jwks_get' }],
      server: { answers: ['jwks'] },
    },
    {
      id: 'length-counts-bytes',
      comment:
        'the length counts UTF-8 bytes, not characters: 44 bytes for 40 characters. The frame is good; the ' +
        'message has a member jwks_get does not define, so the server refuses it',
      segments: framed('{"type":"jwks_get","note":"naïve ☃ café"}'),
      decoded: [{ type: 'jwks_get', note: 'naïve ☃ café' }],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'too-large-header-only',
      comment: 'a length of 65537, and no body: refused as soon as the 4 header bytes arrive, before any of the body',
      segments: [{ hex: header(65537) }],
      decoded: null,
      server: { error: 'ERR_FRAME_TOO_LARGE', layer: 'frame' },
    },
    {
      id: 'too-large-max',
      comment: 'the largest length, 2^32 - 1: read as unsigned',
      segments: [{ hex: 'ffffffff' }],
      decoded: null,
      server: { error: 'ERR_FRAME_TOO_LARGE', layer: 'frame' },
    },
    {
      id: 'too-large-sign-bit',
      comment: 'a length of 2^31: the top bit set (a signed reader would see a negative length)',
      segments: [{ hex: '80000000' }],
      decoded: null,
      server: { error: 'ERR_FRAME_TOO_LARGE', layer: 'frame' },
    },
    {
      id: 'empty-body',
      comment: 'a length of 0: an empty body is not JSON',
      segments: [{ hex: header(0) }],
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'not-json',
      comment: 'a body that is not JSON',
      segments: framed('{nope'),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'trailing-bytes',
      comment: 'one JSON value and then more inside the same body: the body must be exactly one JSON text',
      segments: framed(`${JWKS_GET}x`),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'two-values-in-one-body',
      comment: 'two JSON objects in one body',
      segments: framed(`${JWKS_GET}${JWKS_GET}`),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'nan',
      comment: 'NaN is not JSON (some parsers take it: they must not here)',
      segments: framed('{"type":"jwks_get","n":NaN}'),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'invalid-utf8',
      comment: 'a body with the bytes 0xff 0xfe inside a string: not UTF-8',
      segments: framedBytes(Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'overlong-utf8',
      comment: '"/" written as the overlong two bytes 0xc0 0xaf: not UTF-8',
      segments: framedBytes(Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'utf8-surrogate',
      comment: 'a UTF-16 surrogate (U+D800) encoded as 0xed 0xa0 0x80: not UTF-8',
      segments: framedBytes(
        Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
      ),
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'length-too-short',
      comment: 'a length of 5 before a 19-byte message: the body is the 5 bytes {"typ, which is not JSON',
      segments: [{ hex: header(5) }, { utf8: JWKS_GET }],
      decoded: null,
      server: { error: 'ERR_PROTOCOL', layer: 'frame' },
    },
    {
      id: 'length-too-long',
      comment:
        'a length of 100 before a 19-byte message, and then nothing: the server waits for the other 81 bytes, ' +
        'and ends the connection when the frame is not whole 10 s after its first byte',
      segments: [{ hex: header(100) }, { utf8: JWKS_GET }],
      decoded: null,
      server: { error: 'ERR_TIMEOUT', layer: 'transport', after_ms: 10000 },
    },
    {
      id: 'not-an-object',
      comment: 'a JSON array: good JSON, but a message is an object',
      segments: framed('[]'),
      decoded: [[]],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'a-string',
      comment: 'a JSON string',
      segments: framed('"jwks_get"'),
      decoded: ['jwks_get'],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'null',
      comment: 'JSON null',
      segments: framed('null'),
      decoded: [null],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'no-type',
      comment: 'an object without "type"',
      segments: framed('{}'),
      decoded: [{}],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'unknown-type',
      comment: 'a type the protocol does not define',
      segments: framed('{"type":"hello"}'),
      decoded: [{ type: 'hello' }],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'unknown-member',
      comment: 'a member the message does not define (the schemas are strict)',
      segments: framed('{"type":"jwks_get","extra":true}'),
      decoded: [{ type: 'jwks_get', extra: true }],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
    {
      id: 'out-of-order',
      comment: 'login_proof in the ready state (no login_start before it)',
      segments: framed(`{"type":"login_proof","M1":"${'00'.repeat(32)}"}`),
      decoded: [{ type: 'login_proof', M1: '00'.repeat(32) }],
      server: { error: 'ERR_PROTOCOL', layer: 'message' },
    },
  ]
  write('frames.json', {
    description: {
      file:
        'Frames: a 4-byte big-endian unsigned length L (0 to 65536), then L bytes of UTF-8 JSON. Each case is ' +
        'the bytes a client sends on a fresh connection and what the server does. docs/protocol.md, "Frames".',
      'cases[].segments':
        'the bytes, in order: each segment is {"hex": ...} (bytes) or {"utf8": ...} (a string, as UTF-8), ' +
        'repeated "repeat" times (default 1); their concatenation is what is sent, in one write',
      'cases[].decoded':
        'the JSON values a frame reader yields, in order, or null when it refuses the bytes ' +
        '(a frame-layer error, or an incomplete frame)',
      'cases[].server.answers': 'the type of each frame the server sends back, in order, when it accepts the bytes',
      'cases[].server.error':
        'the code of the one error frame the server sends, after which it ends the connection. layer: ' +
        '"frame" (the length or the body: refused by the frame reader), "message" (good JSON that is not a ' +
        'message of the protocol, or not one allowed in the state: the schema and the state check), ' +
        '"transport" (a deadline; after_ms: when)',
    },
    version: 1,
    generator: GENERATOR,
    max_body_bytes: 65536,
    cases,
  })
}

// ---------------------------------------------------------------------------------------------
// signed-tokens.json

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
function signingKey(seed) {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x
  // RFC 7638: SHA-256 of the required members in lexicographic order, no white space.
  const kid = b64u(sha256(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`))
  return { privateKey, seed, x, kid }
}

function compact(key, headerJson, payloadJson) {
  const signingInput = `${b64u(Buffer.from(headerJson, 'utf8'))}.${b64u(Buffer.from(payloadJson, 'utf8'))}`
  return `${signingInput}.${b64u(sign(null, Buffer.from(signingInput, 'ascii'), key.privateKey))}`
}

function makeTokens() {
  const key = signingKey(label('securelogin vectors signing key'))
  const stranger = signingKey(label('securelogin vectors other signing key'))
  const publicJwk = (k) => ({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' })
  const IAT = 1800000000
  const claims = {
    role: 'admin',
    sid: '0123456789abcdef0123456789abcdef',
    iss: 'securelogin:0123456789abcdef',
    sub: 'ada',
    aud: 'billing',
    iat: IAT,
    exp: IAT + 300,
    jti: b64u(label('securelogin vectors jti').subarray(0, 16)),
  }
  const head = (over = {}, k = key) => JSON.stringify({ alg: 'EdDSA', kid: k.kid, typ: 'JWT', ...over })
  const body = (over = {}) => JSON.stringify({ ...claims, ...over })
  const token = compact(key, head(), body())
  const [h, p, s] = token.split('.')
  const flip = (part, at) => {
    const bytes = Buffer.from(part, 'base64url')
    bytes[at] ^= 0x01
    return b64u(bytes)
  }
  // The signature is 64 bytes: 86 characters, the last holding 2 bits of data and 4 unused bits.
  const lastOf = (part, bits) => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    return part.slice(0, -1) + alphabet[alphabet.indexOf(part.at(-1)) | bits]
  }
  const withoutJti = JSON.stringify(Object.fromEntries(Object.entries(claims).filter(([name]) => name !== 'jti')))
  const opts = (over = {}) => ({ audience: 'billing', now: IAT + 1, ...over })
  const ok = { ok: true }
  const bad = (code) => ({ error: code })
  const cases = [
    ['good', token, opts(), ok, 'the token, checked a second after it was issued'],
    ['good-issuer-pinned', token, opts({ issuer: claims.iss }), ok, 'with the issuer pinned to its iss'],
    [
      'good-trailing-newline',
      `${token}\n`,
      opts(),
      ok,
      'white space around the token (a pasted line) is dropped first',
    ],
    ['good-at-expiry', token, opts({ now: claims.exp }), ok, 'at exp exactly'],
    ['good-in-tolerance', token, opts({ now: claims.exp + 29 }), ok, '29 s after exp: within the 30 s tolerance'],
    [
      'expired',
      token,
      opts({ now: claims.exp + 30 }),
      bad('ERR_TOKEN_EXPIRED'),
      'exp + 30 s: expired (exp <= now - tolerance)',
    ],
    [
      'expired-no-tolerance',
      token,
      opts({ now: claims.exp, clockToleranceSeconds: 0 }),
      bad('ERR_TOKEN_EXPIRED'),
      'at exp with no tolerance',
    ],
    ['early-in-tolerance', token, opts({ now: IAT - 30 }), ok, '30 s before iat: within the tolerance'],
    ['issued-in-the-future', token, opts({ now: IAT - 31 }), bad('ERR_TOKEN_INVALID'), 'iat more than 30 s after now'],
    [
      'other-audience',
      token,
      opts({ audience: 'payroll' }),
      bad('ERR_TOKEN_AUDIENCE'),
      'a good token for another application',
    ],
    [
      'wrong-issuer',
      token,
      opts({ issuer: 'securelogin:ffffffffffffffff' }),
      bad('ERR_TOKEN_INVALID'),
      'another server',
    ],
    [
      'payload-changed',
      `${h}.${b64u(Buffer.from(body({ sub: 'root' })))}.${s}`,
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'sub changed, signature kept',
    ],
    [
      'signature-bit-flipped',
      `${h}.${p}.${flip(s, 0)}`,
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'one bit of the signature flipped',
    ],
    [
      'other-key-our-kid',
      compact(stranger, head(), body()),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'signed by another key that claims our kid',
    ],
    [
      'unknown-kid',
      compact(stranger, head({}, stranger), body()),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'signed by a key that is not in the JWKS',
    ],
    [
      'alg-none',
      `${b64u(Buffer.from(head({ alg: 'none' })))}.${p}.`,
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'alg none, no signature',
    ],
    [
      'alg-es256',
      compact(key, head({ alg: 'ES256' }), body()),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'alg ES256 (signed with our Ed25519 key)',
    ],
    [
      'no-typ',
      compact(key, JSON.stringify({ alg: 'EdDSA', kid: key.kid }), body()),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'no typ in the header',
    ],
    [
      'typ-at-jwt',
      compact(key, head({ typ: 'at+jwt' }), body()),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'typ other than JWT',
    ],
    ['no-jti', compact(key, head(), withoutJti), opts(), bad('ERR_TOKEN_INVALID'), 'a required claim missing'],
    [
      'extra-claim',
      compact(key, head(), body({ admin: true })),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'a claim that is not ours',
    ],
    [
      'unknown-role',
      compact(key, head(), body({ role: 'root' })),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'a role that does not exist',
    ],
    ['life-one-hour', compact(key, head(), body({ exp: IAT + 3600 })), opts(), ok, 'a life of exactly one hour'],
    [
      'life-over-one-hour',
      compact(key, head(), body({ exp: IAT + 3601 })),
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'a life of one hour and one second',
    ],
    [
      'unused-bits-set',
      `${h}.${p}.${lastOf(s, 1)}`,
      opts(),
      bad('ERR_TOKEN_INVALID'),
      "the same signature bytes, the last character's unused low bit set",
    ],
    ['padded', `${h}.${p}.${s}==`, opts(), bad('ERR_TOKEN_INVALID'), 'the signature with = padding'],
    ['two-parts', `${h}.${p}`, opts(), bad('ERR_TOKEN_INVALID'), 'no signature part'],
    ['four-parts', `${token}.${s}`, opts(), bad('ERR_TOKEN_INVALID'), 'four parts'],
    [
      'too-long',
      `${h}.${b64u(Buffer.from(body({ pad: 'x'.repeat(3200) })))}.${s}`,
      opts(),
      bad('ERR_TOKEN_INVALID'),
      'over 4096 characters (and its signature no longer matches)',
    ],
  ].map(([id, t, options, expect, comment]) => ({ id, comment, token: t, options, expect }))
  // The same bytes in base64's own alphabet: only a spelling of its own where a part has a - or _.
  const plain = [h, p, s].map((part) => part.replace(/-/g, '+').replace(/_/g, '/')).join('.')
  if (plain !== token)
    cases.push({
      id: 'base64-alphabet',
      comment: 'the same bytes written with + and / instead of - and _',
      token: plain,
      options: opts(),
      expect: bad('ERR_TOKEN_INVALID'),
    })
  write('signed-tokens.json', {
    description: {
      file:
        'Signed tokens: a JWT (RFC 7519) in compact JWS form signed with Ed25519 (RFC 8037, alg EdDSA), the ' +
        'JWKS that checks it, and the verdict of a verifier for the token and its tampered forms. ' +
        'docs/protocol.md, "Signed tokens"; docs/tokens.md.',
      'key.seed': 'the Ed25519 private key (RFC 8032 seed, the JWK d): 32 bytes, hex. Fixed here; never reuse it',
      'key.d': 'the same 32 bytes in base64url (43 characters)',
      'key.x': 'the public key: 32 bytes in base64url (43 characters)',
      'key.kid':
        'the RFC 7638 thumbprint: base64url of SHA-256 over {"crv":"Ed25519","kty":"OKP","x":X} (these ' +
        'members, this order, no white space): 32 bytes, 43 characters',
      jwks: 'the JWKS an application is given: {"keys": [public JWK]}',
      other_key: 'a second key, not in the JWKS, that signs the "other-key" cases',
      claims:
        'the claims of the good token; iat and exp in Unix seconds; jti 16 bytes in base64url; sid 16 bytes in hex',
      token:
        'the good token: base64url(header JSON) "." base64url(payload JSON) "." base64url(signature), each part ' +
        'unpadded; the signature is Ed25519 over the ASCII text of the first two parts and the dot (64 bytes). ' +
        'The JSON texts are exactly header_json and payload_json',
      'cases[].token': 'what the verifier is given',
      'cases[].options':
        "audience (the application's name), now (Unix seconds), and when present issuer (iss must equal it) " +
        'and clockToleranceSeconds (default 30)',
      'cases[].expect':
        '{"ok": true} (the claims are the payload) or {"error": CODE}: ERR_TOKEN_EXPIRED (exp <= now - ' +
        'tolerance), ERR_TOKEN_AUDIENCE (a good token whose aud is not the audience), ERR_TOKEN_INVALID ' +
        '(anything else: signature, key, alg, typ, issuer, a part not in canonical unpadded base64url, ' +
        'claims not exactly iss sub role aud iat exp jti sid, iat > now + tolerance, exp - iat > 3600, ' +
        'over 4096 characters)',
    },
    version: 1,
    generator: GENERATOR,
    key: { seed: hex(key.seed), d: b64u(key.seed), x: key.x, kid: key.kid },
    jwks: { keys: [publicJwk(key)] },
    other_key: { seed: hex(stranger.seed), x: stranger.x, kid: stranger.kid },
    claims,
    header_json: head(),
    payload_json: body(),
    token,
    cases,
  })
}

const registration = makeRegistration()
makeLogin(registration)
makeTotp()
makeRecovery()
makeFrames()
makeTokens()
