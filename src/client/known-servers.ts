import { mkdir, readFile, appendFile, chmod, rename, writeFile } from 'node:fs/promises'
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

/** Every server in the file with its fingerprint, in file order (comments and blank lines skipped). */
export async function listKnownServers(file: string): Promise<Array<{ server: string; fingerprint: string }>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  return text.split('\n').flatMap((line) => {
    const [server, fingerprint] = line.trim().split(/\s+/)
    return server && fingerprint && !server.startsWith('#') ? [{ server, fingerprint }] : []
  })
}

/**
 * Drops every line for `server` and, with `fingerprint`, adds one for it: the file is written
 * whole and renamed over, so a reader never sees half of it. Returns how many lines went.
 */
export async function replaceKnownServer(file: string, server: string, fingerprint?: string): Promise<number> {
  let text = ''
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const lines = text.split('\n').filter((line) => line !== '')
  const kept = lines.filter((line) => line.trim().split(/\s+/)[0] !== server)
  if (fingerprint !== undefined) kept.push(`${server} ${fingerprint}`)
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const temp = `${file}.${process.pid}.tmp`
  await writeFile(temp, kept.length > 0 ? `${kept.join('\n')}\n` : '', { mode: 0o600 })
  await rename(temp, file)
  return lines.length - (kept.length - (fingerprint !== undefined ? 1 : 0))
}
