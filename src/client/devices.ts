import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DeviceKey } from '../protocol/fields.js'

// The device keys this client holds, one per user name and server, in
// HOME/devices/HOST_PORT.json (mode 0600, directory 0700). A logout leaves them: the key says
// "this machine has logged in as this name before", which is what lets the person log in here
// while guesses from elsewhere have the name locked (docs/threat-model.md). It grants nothing
// alone: a login still needs the password and a code.

function devicesFile(home: string, server: string): string {
  return join(home, 'devices', `${server.replace(/[^A-Za-z0-9.-]/g, '_')}.json`)
}

/** Every key in the file; an unreadable or malformed file counts as none (the login goes on without). */
async function readKeys(home: string, server: string): Promise<Record<string, string>> {
  try {
    const parsed = JSON.parse(await readFile(devicesFile(home, server), 'utf8')) as unknown
    if (typeof parsed !== 'object' || parsed === null) return {}
    return Object.fromEntries(Object.entries(parsed).filter(([, key]) => DeviceKey.safeParse(key).success)) as Record<
      string,
      string
    >
  } catch {
    return {}
  }
}

/** The key an earlier login of `user` on this client got from `server`, if any. */
export async function loadDeviceKey(home: string, server: string, user: string): Promise<string | undefined> {
  return (await readKeys(home, server))[user]
}

/** Keeps the key a login was answered with, in place of the name's earlier one. */
export async function saveDeviceKey(home: string, server: string, user: string, key: string): Promise<void> {
  const dir = join(home, 'devices')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const keys = { ...(await readKeys(home, server)), [user]: key }
  const file = devicesFile(home, server)
  const temp = `${file}.${process.pid}.tmp`
  await writeFile(temp, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 })
  await rename(temp, file)
}
