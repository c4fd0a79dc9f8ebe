import { mkdir, readFile, appendFile, chmod } from 'node:fs/promises'
import { dirname } from 'node:path'

// Like ssh's known_hosts: one line per server, "HOST:PORT FINGERPRINT"; '#' starts a comment.

export async function lookupKnownServer(file: string, server: string): Promise<string | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  for (const line of text.split('\n')) {
    const [name, fingerprint] = line.trim().split(/\s+/)
    if (name === server && fingerprint && !name.startsWith('#')) return fingerprint
  }
  return undefined
}

export async function rememberKnownServer(file: string, server: string, fingerprint: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  await appendFile(file, `${server} ${fingerprint}\n`, { mode: 0o600 })
  await chmod(file, 0o600)
}

/** Accepts "AB:CD:...", "abcd..." or "sha256:AB:CD..." and returns openssl's colon form. */
export function normalizeFingerprint(input: string): string | undefined {
  const hex = input
    .trim()
    .replace(/^sha256[:= ]?/i, '')
    .replace(/:/g, '')
    .toUpperCase()
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined
  return hex.match(/../g)!.join(':')
}
