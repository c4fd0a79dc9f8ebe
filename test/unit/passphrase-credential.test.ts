import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { checkPassphraseSource, readPassphrase, serverPassphraseFile } from '../../src/cli/passphrase.js'
import { makeTempDir } from '../helpers/env.js'

// The server's passphrase from a systemd credential (src/cli/passphrase.ts): where it is looked
// for, and the modes accepted there and nowhere else.

let root: string
let remove: () => Promise<void>
beforeAll(async () => {
  ;({ dir: root, remove } = await makeTempDir('passphrase-credential'))
})
afterAll(async () => {
  await remove()
})
afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
})

let made = 0
/** A directory holding `passphrase` (first line the passphrase) with the given mode. */
async function credentialIn(mode: number): Promise<{ dir: string; file: string }> {
  const dir = join(root, `credentials-${++made}`)
  await mkdir(dir, { mode: 0o700 })
  const file = join(dir, 'passphrase')
  await writeFile(file, 'a unit test passphrase\nsecond line\n', { mode: 0o600 })
  await chmod(file, mode)
  return { dir, file }
}

const read = (file: string) => readPassphrase({ file, isNew: false, storePath: 'test.store' })

describe('serverPassphraseFile', () => {
  it('takes --passphrase-file over a credential', async () => {
    const { dir } = await credentialIn(0o400)
    expect(serverPassphraseFile('/elsewhere/passphrase', { CREDENTIALS_DIRECTORY: dir })).toBe('/elsewhere/passphrase')
  })

  it('finds the credential named passphrase, and nothing when there is none', async () => {
    const { dir, file } = await credentialIn(0o400)
    expect(serverPassphraseFile(undefined, { CREDENTIALS_DIRECTORY: dir })).toBe(file)
    expect(serverPassphraseFile(undefined, { CREDENTIALS_DIRECTORY: root })).toBeUndefined()
    expect(serverPassphraseFile(undefined, { CREDENTIALS_DIRECTORY: '' })).toBeUndefined()
    expect(serverPassphraseFile(undefined, {})).toBeUndefined()
  })
})

describe('a credential file', () => {
  // 0440: what stat shows when systemd grants the service's user read access by an ACL (the mask).
  it.each([0o400, 0o440])('is read when its mode is %o, and the source is told on stderr', async (mode) => {
    const { dir, file } = await credentialIn(mode)
    vi.stubEnv('CREDENTIALS_DIRECTORY', dir)
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    expect(() => checkPassphraseSource(file)).not.toThrow()
    expect(await read(file)).toBe('a unit test passphrase')
    expect(stderr.mock.calls.map(([text]) => String(text))).toEqual([
      `securelogin: admin passphrase read from the systemd credential ${file}\n`,
    ])
  })

  it.each([0o404, 0o444, 0o460, 0o450])('is refused when its mode is %o', async (mode) => {
    const { dir, file } = await credentialIn(mode)
    vi.stubEnv('CREDENTIALS_DIRECTORY', dir)
    const message = `passphrase file ${file} is readable by others (mode 0${mode.toString(8)})`
    expect(() => checkPassphraseSource(file)).toThrow(message)
    await expect(read(file)).rejects.toThrow(message)
  })

  it('allows group read in the credentials directory only', async () => {
    const { dir, file } = await credentialIn(0o440)
    vi.stubEnv('CREDENTIALS_DIRECTORY', join(dir, 'other'))
    expect(() => checkPassphraseSource(file)).toThrow('is readable by others (mode 0440)')
    await expect(read(file)).rejects.toThrow('is readable by others (mode 0440)')
  })
})
