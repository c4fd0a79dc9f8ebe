import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { beforeEach, describe, expect, it } from 'vitest'
import { createPgStore, openPgStore, verifyPgStore, type PgStore } from '../../src/store/pg.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { havePostgres, type TestDatabase } from '../helpers/postgres.js'
import { pgFixture } from './pg-fixture.js'

// What the database sees and what it can change: a dump holds no name and no value, every
// edit of a row is caught, and the URL's password appears in no message.

const PASSPHRASE = 'pg security test passphrase'
const run = await havePostgres()
const execFileAsync = promisify(execFile)

const fixture = pgFixture(PASSPHRASE, run)
const { track } = fixture
let db: TestDatabase
beforeEach(() => {
  if (run) db = fixture.db()
})

const account = {
  username: 'alice-wonderland',
  salt: 'a1b2c3d4'.repeat(8),
  verifier: '9f8e7d6c5b4a'.repeat(40),
  kdf: { name: 'scrypt', logN: 14, r: 8, p: 1 },
  totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ',
  role: 'system_admin',
  createdAt: '2026-11-24T12:00:00.000Z',
}
const SESSION_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const AUDIT = {
  n: 1,
  action: 'login.ok',
  target: 'alice-wonderland',
  address: '203.0.113.77',
  details: { why: 'audit text here' },
}

async function filled(): Promise<PgStore> {
  const store = track(await createPgStore(db.url, PASSPHRASE, { kdf: TEST_KDF }))
  await store.commit([
    { key: 'user/alice-wonderland', value: account, expect: null },
    { key: 'role/system_admin/alice-wonderland', value: {} },
    { key: `session/${SESSION_HASH.slice(0, 32)}`, value: { hash: SESSION_HASH, user: 'alice-wonderland' } },
    { key: 'audit/000000000001', value: AUDIT },
    { key: 'audit-head', value: { n: 1, hash: SESSION_HASH } },
  ])
  return store
}

const versionOf = async (store: PgStore, key: string) => (await store.version(key))!

const flipByte = (column: string, at = 20) =>
  `UPDATE securelogin_kv SET ${column} = set_byte(${column}, ${at}, get_byte(${column}, ${at}) # 1) WHERE version = $1`

describe.skipIf(!run)('PostgreSQL store: what the database sees', () => {
  it('a pg_dump holds no key name, value, role, verifier, TOTP secret, session hash or audit text', async () => {
    const store = await filled()
    const { stdout: dump } = await execFileAsync('pg_dump', ['--dbname', db.url], { maxBuffer: 64 * 1024 * 1024 })
    expect(dump).toContain('securelogin_kv')
    const plaintexts = [
      'alice-wonderland',
      'user/',
      'role/',
      'system_admin',
      'session/',
      'audit-head',
      'server/secret',
      account.verifier,
      account.salt,
      account.totpSecret,
      SESSION_HASH,
      SESSION_HASH.slice(0, 32),
      'login.ok',
      '203.0.113.77',
      'audit text here',
      store.serverSecret().toString('hex'),
    ]
    // bytea is dumped as hex: a plaintext stored in a bytea column would show in that form.
    for (const text of plaintexts) {
      expect(dump, text).not.toContain(text)
      expect(dump.toLowerCase(), text).not.toContain(Buffer.from(text, 'utf8').toString('hex'))
    }
  })
})

describe.skipIf(!run)('PostgreSQL store: tampering', () => {
  const cases: { name: string; sql: (store: PgStore) => Promise<[string, unknown[]]> }[] = [
    {
      name: 'a flipped byte in a value',
      sql: async (s) => [flipByte('box'), [await versionOf(s, 'user/alice-wonderland')]],
    },
    {
      name: 'a value moved from another row',
      sql: async (s) => [
        'UPDATE securelogin_kv SET box = (SELECT box FROM securelogin_kv WHERE version = $2) WHERE version = $1',
        [await versionOf(s, 'user/alice-wonderland'), await versionOf(s, 'audit-head')],
      ],
    },
    {
      name: 'a value relabelled to the older of two data keys',
      sql: async (s) => {
        await s.rotateDataKey()
        return [
          'UPDATE securelogin_kv SET key_version = 1 WHERE version = $1',
          [await versionOf(s, 'user/alice-wonderland')],
        ]
      },
    },
    {
      name: 'a value relabelled to a data key the keyring does not hold',
      sql: async (s) => [
        'UPDATE securelogin_kv SET key_version = 7 WHERE version = $1',
        [await versionOf(s, 'user/alice-wonderland')],
      ],
    },
  ]
  for (const { name, sql } of cases) {
    it(`${name}: ERR_STORE_CORRUPT on read and on verify, naming only the key asked for`, async () => {
      const store = await filled()
      const [text, values] = await sql(store)
      await db.sql(text, values)
      const error = await store.get('user/alice-wonderland').catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'ERR_STORE_CORRUPT' })
      const message = (error as Error).message
      expect(message).toContain('user/alice-wonderland')
      for (const other of ['audit-head', 'session/', account.totpSecret, account.verifier])
        expect(message).not.toContain(other)
      expect(await store.get('audit-head')).toEqual({ n: 1, hash: SESSION_HASH })
      await expect(store.verify()).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
      await expect(verifyPgStore(db.url, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    })
  }

  it('a flipped byte in a name: listing and verify fail', async () => {
    const store = await filled()
    await db.sql(flipByte('name_box'), [await versionOf(store, 'audit-head')])
    expect(await store.get('audit-head')).toEqual({ n: 1, hash: SESSION_HASH })
    await expect(store.keys('')).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    await expect(store.verify()).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
  })

  it('a row hidden from its prefix (p1 changed): verify fails; listing still shows only true names', async () => {
    const store = await filled()
    await db.sql(
      'UPDATE securelogin_kv SET p1 = (SELECT p1 FROM securelogin_kv WHERE version = $2) WHERE version = $1',
      [await versionOf(store, 'user/alice-wonderland'), await versionOf(store, 'audit-head')],
    )
    expect(await store.keys('audit')).toEqual(expect.arrayContaining(['audit-head', 'audit/000000000001']))
    expect(await store.keys('audit-')).toEqual(['audit-head'])
    await expect(store.verify()).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
  })

  it('a damaged index key or data key in the keyring stops the opener', async () => {
    await (await filled()).close()
    await db.sql('UPDATE securelogin_keyring SET key_box = set_byte(key_box, 20, get_byte(key_box, 20) # 1)')
    await expect(openPgStore(db.url, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
    await db.sql('UPDATE securelogin_keyring SET key_box = set_byte(key_box, 20, get_byte(key_box, 20) # 1)')
    await db.sql('UPDATE securelogin_header SET index_box = set_byte(index_box, 20, get_byte(index_box, 20) # 1)')
    await expect(openPgStore(db.url, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' })
  })

  it('KDF parameters edited within the bounds read as a wrong passphrase (the root key wrap binds them)', async () => {
    await (await filled()).close()
    await db.sql(`UPDATE securelogin_header SET kdf = '{"name":"scrypt","logN":11,"r":8,"p":1}'`)
    await expect(openPgStore(db.url, PASSPHRASE)).rejects.toMatchObject({ code: 'ERR_STORE_BAD_PASSPHRASE' })
  })
})

describe.skipIf(!run)('PostgreSQL store: the URL password', () => {
  it('appears in no message, path or report', async () => {
    const password = 'Pw-in-the-url-7731'
    const url = db.urlWithPassword(password)
    const reports: string[] = []
    const onReport = (event: string, fields: Record<string, unknown>) => reports.push(JSON.stringify({ event, fields }))
    const store = track(await createPgStore(url, PASSPHRASE, { kdf: TEST_KDF, onReport }))
    expect(store.path).not.toContain(password)
    expect(store.path).toContain('127.0.0.1')
    const messages: string[] = [store.path]
    const codes = new Set<string>()
    const note = (e: unknown) => {
      const error = e as { message: string; hint?: string; code: string }
      messages.push(error.message, error.hint ?? '')
      codes.add(error.code)
    }
    await store.commit([{ key: 'k/a', value: 1 }])
    await store.commit([{ key: 'k/a', value: 2, expect: null }]).catch(note)
    await createPgStore(url, PASSPHRASE, { kdf: TEST_KDF }).catch(note)
    await openPgStore(url, 'wrong passphrase', {}).catch(note)
    await openPgStore(url.replace(':5432/', ':1/'), PASSPHRASE).catch(note)
    await openPgStore(url.replace(`/${db.name}`, '/securelogin_no_such_database'), PASSPHRASE).catch(note)
    await db.sql(flipByte('box'), [await versionOf(store, 'k/a')])
    await store.get('k/a').catch(note)
    await db.sql(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [db.name],
    )
    for (let i = 0; i < 3; i++) await store.has('k/a').catch(note)
    expect(messages.length).toBeGreaterThanOrEqual(12)
    expect([...codes].sort()).toEqual([
      'ERR_STORE_BAD_PASSPHRASE',
      'ERR_STORE_CONFLICT',
      'ERR_STORE_CORRUPT',
      'ERR_STORE_IO',
      'ERR_STORE_UNAVAILABLE',
    ])
    for (const text of [...messages, ...reports]) expect(text).not.toContain(password)
  })
})
