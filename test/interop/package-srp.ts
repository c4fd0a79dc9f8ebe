import { createDiffieHellman, randomBytes, randomInt } from 'node:crypto'
import { createRequire } from 'node:module'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'

// What the SRP interop tests (srp-engine.test.ts: our server; srp-client.test.ts: our client)
// share: the secure-remote-password package's internals, its jsbn maths with modPow swapped for
// OpenSSL, and random inputs.
//
// The package's jsbn maths costs ~70 ms a login for its server and ~110 ms for its client on this
// project's 2-core machines, too slow for hundreds of logins in a test. So the long runs swap one
// thing in the package: jsbn's BigInteger.prototype.modPow, for y^e mod N on OpenSSL through a
// DiffieHellman object of this file's own (not our srp-math), handing every case OpenSSL refuses
// back to jsbn. Everything else that could differ (how it pads, hashes, concatenates, reduces and
// compares) is the package's own code. Shorter runs and the leading-zero cases use the package
// exactly as shipped.

const { N } = RFC5054_2048

export interface Jsbn {
  toString(radix: number): string
  modPow(e: Jsbn, m: Jsbn): Jsbn
}
export interface PackageInteger {
  toHex(): string
  add(other: PackageInteger): PackageInteger
  multiply(other: PackageInteger): PackageInteger
  mod(m: PackageInteger): PackageInteger
  modPow(e: PackageInteger, m: PackageInteger): PackageInteger
}
const packageRequire = createRequire(
  createRequire(import.meta.url).resolve('secure-remote-password/lib/srp-integer.js'),
)
export const { BigInteger } = packageRequire('jsbn') as {
  BigInteger: { new (digits: string, radix: number): Jsbn; prototype: Jsbn }
}
export const SRPInteger = packageRequire('./srp-integer.js') as { fromHex(hex: string): PackageInteger }
export const packageParams = packageRequire('./params.js') as {
  N: PackageInteger
  g: PackageInteger
  k: PackageInteger
}

/** server.js's B, line for line: B = k.multiply(v).add(g.modPow(b, N)).mod(N). */
export function packageB(verifier: string, b: string): string {
  const { N, g, k } = packageParams
  return k
    .multiply(SRPInteger.fromHex(verifier))
    .add(g.modPow(SRPInteger.fromHex(b), N))
    .mod(N)
    .toHex()
}

/** client.js's A, line for line: A = g.modPow(a, N). */
export function packageA(a: string): string {
  return packageParams.g.modPow(SRPInteger.fromHex(a), packageParams.N).toHex()
}

// --- jsbn's modPow on OpenSSL, for the long runs -------------------------------------------------

export const jsbnModPow = BigInteger.prototype.modPow
let openssl: ReturnType<typeof createDiffieHellman> | undefined
const swapped = { modPows: 0 }

export function jsbnToBigInt(value: Jsbn): bigint {
  const digits = value.toString(16)
  return digits.startsWith('-') ? -BigInt(`0x${digits.slice(1)}`) : BigInt(`0x${digits}`)
}

function fastModPow(this: Jsbn, e: Jsbn, m: Jsbn): Jsbn {
  const exponent = jsbnToBigInt(e)
  const y = ((jsbnToBigInt(this) % N) + N) % N
  if (jsbnToBigInt(m) !== N || exponent <= 0n || y <= 1n || y === N - 1n) return jsbnModPow.call(this, e, m)
  openssl ??= createDiffieHellman(RFC5054_2048.NBytes, 2)
  try {
    openssl.setPrivateKey(Buffer.from(hexOf(exponent), 'hex'))
    swapped.modPows++
    return new BigInteger(openssl.computeSecret(Buffer.from(hexOf(y), 'hex')).toString('hex'), 16)
  } catch {
    return jsbnModPow.call(this, e, m)
  }
}

/** Runs `run` with the package's modPow on OpenSSL; returns what it returned and how many modPows went through the swap. */
export function withFastPackage<T>(run: () => T): { result: T; modPows: number } {
  const before = swapped.modPows
  BigInteger.prototype.modPow = fastModPow
  try {
    return { result: run(), modPows: swapped.modPows - before }
  } finally {
    BigInteger.prototype.modPow = jsbnModPow
  }
}

/** Puts jsbn's own modPow back (for an afterEach, in case a test left the swap in place). */
export function restoreJsbn(): void {
  BigInteger.prototype.modPow = jsbnModPow
}

// --- random inputs ----------------------------------------------------------------------------

export const NAME_CHARS = Array.from('abcdefghijklmnopqrstuvwxyz0123456789._-éßøñ名字🙂')
export const PASSWORD_CHARS = Array.from(
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :!#%&*+=?@^~\'"\\/€名🔑',
)

export function randomText(chars: string[], min: number, max: number): string {
  let text = ''
  for (let n = randomInt(min, max + 1); n > 0; n--) text += chars[randomInt(chars.length)]
  return text
}

/** The same hex string with one digit changed. */
export function flipDigit(hex: string): string {
  const at = randomInt(hex.length)
  const digit = parseInt(hex[at]!, 16)
  return hex.slice(0, at) + ((digit + 1 + randomInt(15)) % 16).toString(16) + hex.slice(at + 1)
}

export function hexOf(value: bigint, digits = 0): string {
  const hex = value.toString(16)
  return hex.padStart(Math.max(digits, hex.length + (hex.length % 2)), '0')
}

export const bytes = (hex: string) => Buffer.from(hex, 'hex')

/** Random hex strings of `size` bytes until `pick` likes what `make` makes of one. */
export function search(size: number, make: (candidate: string) => Buffer, pick: (made: Buffer) => boolean): string {
  for (let tries = 0; tries < 20_000; tries++) {
    const candidate = randomBytes(size).toString('hex')
    if (pick(make(candidate))) return candidate
  }
  throw new Error('search found nothing')
}

export const leadingZeroByte = (value: Buffer) => value.length === RFC5054_2048.byteLength && value[0] === 0
