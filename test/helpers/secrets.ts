// The suite-wide "no secret in any output" check (issue 5). Helpers note every secret a test
// hands the real programs (passwords and codes written to a CLI's stdin, passphrases, the TOTP
// secrets and recovery codes a server issues) and every output they produce (each CLI run's
// stdout and stderr, each server's log). test/setup/no-secrets.ts fails a test file whose
// outputs contain any noted secret, except where showing it is the point: the TOTP secret and
// recovery codes in the stdout of the very command that issued them.

export interface NotedSecret {
  kind: string
  value: string
  /** The run whose stdout may show it (the enrolment or renewal that issued it). */
  issuedIn?: string
}

interface Output {
  source: string
  stream: 'stdout' | 'stderr' | 'log'
  text: string
}

/** Shorter values (six-digit codes, short words) occur by chance in timestamps and messages. */
const MIN_SECRET_CHARS = 10

const secrets = new Map<string, NotedSecret>()
const outputs: Output[] = []

export function noteSecret(kind: string, value: string, issuedIn?: string): void {
  if (value.length < MIN_SECRET_CHARS || secrets.has(value)) return
  secrets.set(value, issuedIn === undefined ? { kind, value } : { kind, value, issuedIn })
}

export function noteOutput(source: string, stream: Output['stream'], text: string): void {
  if (text) outputs.push({ source, stream, text })
}

/** Secrets a server issued, read off a CLI's stdout: the TOTP secret in an otpauth URI, recovery codes. */
export function noteIssuedSecrets(source: string, stdout: string): void {
  for (const match of stdout.matchAll(/secret=([A-Z2-7]{16,})/g)) noteSecret('TOTP secret', match[1]!, source)
  for (const match of stdout.matchAll(/\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b/g)) {
    // Both forms: as shown, and as a person might paste it.
    noteSecret('recovery code', match[0], source)
    noteSecret('recovery code', match[0].replace('-', ''), source)
  }
  // Invite and bootstrap tokens (`admin invite`, `admin add`); session tokens are never printed.
  for (const match of stdout.matchAll(/\bsl[sbi]_[A-Za-z0-9_-]{43}/g)) noteSecret('bearer token', match[0], source)
  // Signed tokens (`securelogin token`): a bearer credential for their application until they expire.
  for (const match of stdout.matchAll(/\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g))
    noteSecret('signed token', match[0], source)
}

/** Where a noted secret shows up, described by kind and length only: the report itself must not leak. */
export function findLeaks(): string[] {
  const leaks: string[] = []
  for (const output of outputs) {
    for (const secret of secrets.values()) {
      if (secret.issuedIn === output.source && output.stream === 'stdout') continue
      if (output.text.includes(secret.value))
        leaks.push(
          `a ${secret.kind} (${secret.value.length} characters) appears in the ${output.stream} of ${output.source}`,
        )
    }
  }
  return leaks
}

export function secretCounts(): { secrets: number; outputs: number } {
  return { secrets: secrets.size, outputs: outputs.length }
}

export function forgetAll(): void {
  secrets.clear()
  outputs.length = 0
}
