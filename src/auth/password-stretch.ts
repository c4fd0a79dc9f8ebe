import { scryptAsync, scryptMemory } from '../base/scrypt.js'
import { SecureLoginError } from '../protocol/errors.js'

// The client stretches the password with scrypt before SRP's x is derived, so that a verifier
// taken from a stolen store costs a memory-hard KDF per guess, not one SHA-256 and one modular
// exponentiation (docs/threat-model.md). The server stores the parameters per user and sends
// them in the login challenge; the client holds them between a floor and a cap of its own.

export interface PasswordKdf {
  name: 'scrypt'
  /** N = 2^logN */
  logN: number
  r: number
  p: number
}

/** 64 MiB and about 0.23 s per guess on this project's 2-core machine (docs/performance.md). */
export const DEFAULT_PASSWORD_KDF: PasswordKdf = { name: 'scrypt', logN: 16, r: 8, p: 1 }

const MiB = 1024 ** 2
/**
 * What a client accepts from a server. The floor stops a malicious or downgraded server from
 * asking for a cheap stretch (the login transcript it then holds would be cheap to attack);
 * the cap stops it from making the client spend minutes or gigabytes.
 */
export const PASSWORD_KDF_LIMITS = { minMemoryBytes: 64 * MiB, maxMemoryBytes: 256 * MiB, maxLogN: 20, maxP: 4 }

export const passwordKdfMemory: (kdf: PasswordKdf) => number = scryptMemory

export function describePasswordKdf(kdf: PasswordKdf): string {
  return `scrypt logN ${kdf.logN}, r ${kdf.r}, p ${kdf.p} (${passwordKdfMemory(kdf) / MiB} MiB)`
}

/** Throws ERR_KDF_LIMIT when the parameters are below the floor or above the cap. */
export function checkPasswordKdf(kdf: PasswordKdf): PasswordKdf {
  const { minMemoryBytes, maxMemoryBytes, maxLogN, maxP } = PASSWORD_KDF_LIMITS
  const memory = passwordKdfMemory(kdf)
  const valid = kdf.name === 'scrypt' && [kdf.logN, kdf.r, kdf.p].every((n) => Number.isInteger(n) && n >= 1)
  if (!valid || kdf.logN > maxLogN || kdf.p > maxP || memory < minMemoryBytes || memory > maxMemoryBytes) {
    throw new SecureLoginError(
      'ERR_KDF_LIMIT',
      `password stretching ${valid ? describePasswordKdf(kdf) : 'with invalid parameters'} is outside the accepted ` +
        `range (${minMemoryBytes / MiB} to ${maxMemoryBytes / MiB} MiB, logN at most ${maxLogN}, p at most ${maxP})`,
      { hint: 'the server may be misconfigured or an impostor; tell its administrator' },
    )
  }
  return kdf
}

const LABEL = Buffer.from('securelogin password v1\0', 'utf8')

/**
 * P' = scrypt(UTF-8(password), "securelogin password v1\0" | s, N, r, p, 32), as 64 hex digits:
 * what SRP's x is derived from in place of the password (x = H(s, H(I | ":" | P'))). The
 * password must already be NFKC. crypto.scrypt runs on the libuv thread pool, so the terminal
 * stays responsive. The input copy is wiped; the caller owns the result.
 */
export async function stretchPassword(password: string, salt: string, kdf: PasswordKdf): Promise<string> {
  checkPasswordKdf(kdf)
  const secret = Buffer.from(password, 'utf8')
  const saltBytes = Buffer.concat([LABEL, Buffer.from(salt, 'hex')])
  try {
    const key = await scryptAsync(secret, saltBytes, kdf)
    const hex = key.toString('hex')
    key.fill(0)
    return hex
  } finally {
    secret.fill(0)
  }
}
