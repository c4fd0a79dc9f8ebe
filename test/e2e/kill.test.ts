import { copyFile, mkdir, readFile, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, enrolmentOf } from '../../src/client/register.js'
import { authenticateWith, submitOtp } from '../../src/client/login.js'
import { call } from '../../src/client/calls.js'
import srp from 'secure-remote-password/client.js'
import { generateTotp } from '../../src/auth/totp.js'
import { openStore, verifyStore } from '../../src/store/index.js'
import { DEFAULT_PASSWORD_KDF, stretchPassword, type PasswordKdf } from '../../src/auth/password-stretch.js'
import { makeCerts, makeTempDir } from '../helpers/env.js'
import { killAllCli, runCli, runCliToEnd } from '../helpers/cli.js'
import { startServerProcess, writePassphraseFile, type ServerProcess } from '../helpers/server-process.js'
import { TEST_KDF } from '../helpers/in-process-server.js'
import { FileClock } from '../helpers/clock.js'
import { noteSecret } from '../helpers/secrets.js'
import { addUsers, getLogin, getUser, recordLogin, userCount } from '../helpers/records.js'
import type { AccountRecord } from '../helpers/records.js'

// Crash tests (issue 4): SIGKILL the real server, and the real store commands, at random
// moments; nothing acknowledged may be lost and the store must always verify.

const PASSPHRASE = 'kill test passphrase'
const PASSWORD = 'kill test password 1'
noteSecret('password', PASSWORD) // the suite-wide check (test/setup/no-secrets.ts) looks for it in every log
const CYCLES = 20
const ROUNDS = 6

let dir: string
let remove: () => Promise<void>
let passphraseFile: string
let certPath: string
// A code is accepted once (RFC 6238 5.2); every user logs in after every restart, so the
// server's clock moves forward between cycles instead of the test waiting for it.
let clock: FileClock
const serverArgs = () => ['--clock-file', clock.file, '--registration', 'open']
const storePath = () => join(dir, 'data', 'securelogin.store')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const random = (min: number, max: number) => min + Math.floor(Math.random() * (max - min))

beforeAll(async () => {
  ;({ dir, remove } = await makeTempDir('kill'))
  passphraseFile = await writePassphraseFile(dir, PASSPHRASE)
  ;({ certPath } = makeCerts(join(dir, 'certs')))
  clock = new FileClock(dir)
})
afterAll(async () => {
  await killAllCli()
  await remove()
})

// A registration's recovery-code hashes run on the server's nice-19 thread, which a busy machine
// starves: an answer may take far longer than usual. The test's own timeout is the only limit.
const ANSWER_TIMEOUT_MS = 120_000

async function connect(port: number): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port,
    trust: { kind: 'ca', ca: await readFile(certPath), caFile: certPath },
    timeoutMs: ANSWER_TIMEOUT_MS,
  })
}

// The password's stretch (scrypt, 64 MiB) is what the client pays per registration and login;
// this test is about the store, so every user shares one salt (the stretch runs once for all of
// them: x still differs per name) and each user's x is derived once for its many logins.
const SALT = 'a5'.repeat(32)
const stretched = new Map<string, Promise<string>>()
const xs = new Map<string, Promise<string>>()
const cachedX =
  (name: string) =>
  ({ salt, kdf }: { salt: string; kdf: PasswordKdf }) => {
    if (!stretched.has(salt)) stretched.set(salt, stretchPassword(PASSWORD, salt, kdf))
    const key = `${name} ${salt}`
    if (!xs.has(key))
      xs.set(
        key,
        stretched.get(salt)!.then((p) => srp.derivePrivateKey(salt, name, p)),
      )
    return xs.get(key)!
  }

/** register_start with the shared salt, then the enrolment code: what `startRegistration` sends. */
async function register(port: number, name: string): Promise<string> {
  const conn = await connect(port)
  try {
    const verifier = srp.deriveVerifier(await cachedX(name)({ salt: SALT, kdf: DEFAULT_PASSWORD_KDF }))
    const { otpauthUri } = await conn.request(
      { type: 'register_start', username: name, salt: SALT, verifier, kdf: DEFAULT_PASSWORD_KDF },
      'enrol',
    )
    const { secret } = enrolmentOf(name, otpauthUri)
    await confirmEnrolment(conn, await generateTotp(secret, clock.ms))
    return secret
  } finally {
    conn.close()
  }
}

/** A full login; with `logout`, the session is ended again (one more record superseded, for compaction). */
async function login(port: number, name: string, secret: string, opts: { logout?: boolean } = {}): Promise<void> {
  const conn = await connect(port)
  try {
    await authenticateWith(conn, name, cachedX(name))
    await submitOtp(conn, await generateTotp(secret, clock.ms))
    if (opts.logout) await call(conn, 'logout', {})
  } finally {
    conn.close()
  }
}

/** `securelogin store verify`; a torn tail (what SIGKILL mid-append leaves) is allowed where asked. */
async function storeVerify(opts: { tornTailAllowed?: boolean } = {}): Promise<Record<string, unknown>> {
  const result = await runCliToEnd(
    ['store', 'verify', '--store', storePath(), '--passphrase-file', passphraseFile, '--json'],
    '',
  )
  const report = JSON.parse(result.stdout) as Record<string, unknown>
  // stderr: a note that the killed server's lock was taken over, then at most the one error line.
  const notes = result.stderr
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { event: string })
  const errors = notes.filter((note) => note.event === 'error')
  for (const note of notes) expect(['error', 'store_lock_taken_over']).toContain(note.event)
  if (opts.tornTailAllowed && report.tornTail) {
    expect(result.code).toBe(1)
    expect(errors).toEqual([
      expect.objectContaining({ code: 'ERR_STORE_CORRUPT', message: expect.stringContaining('torn record') }),
    ])
  } else {
    expect(errors).toEqual([])
    expect(result.code).toBe(0)
    expect(report.ok).toBe(true)
  }
  return report
}

/** An error as one line for the report: its code and message (the client's errors carry no secret). */
const describeError = (error: unknown) => {
  const { code, message } = error as { code?: string; message?: string }
  return `${code ?? 'no code'}: ${message ?? String(error)}`
}

/**
 * The users the killed store holds, read from a copy (the original stays as the kill left it, for
 * the restarted server to recover): acknowledged means durable, whatever the server was doing.
 */
async function usersInKilledStore(names: string[]): Promise<Map<string, string | undefined>> {
  const copy = join(dir, 'copy', 'killed.store')
  await rm(join(dir, 'copy'), { recursive: true, force: true })
  await mkdir(join(dir, 'copy'))
  await copyFile(storePath(), copy)
  const store = await openStore(copy, PASSPHRASE, { autoCompact: false })
  try {
    return new Map(
      await Promise.all(names.map(async (name) => [name, (await getUser(store, name))?.totpSecret] as const)),
    )
  } finally {
    await store.close()
  }
}

describe('SIGKILL at random moments', () => {
  it(`loses no acknowledged registration over ${CYCLES} kill and restart cycles, and the store always verifies`, async () => {
    const init = await runCliToEnd(
      [
        'store',
        'init',
        '--store',
        storePath(),
        '--passphrase-file',
        passphraseFile,
        '--kdf-logn',
        String(TEST_KDF.logN),
        '--json',
      ],
      '',
    )
    expect(init.code).toBe(0)
    const acknowledged = new Map<string, string>()
    // What was lost: an acknowledged user missing from the killed store, or refused at a login.
    const lost: string[] = []
    // Every error met, for the report. Those before a kill are failures; those after it are the
    // kill's (a connection reset, a refused connect) and are only counted.
    const unexpected: string[] = []
    let afterKill = 0
    let next = 0
    let compactionsSeen = 0
    let tornTails = 0
    let registrationRetries = 0
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      // Restart after the kill: the two newest users (the last kills came closest to their records)
      // and one other at random log in (SRP + TOTP) at a step none has used. Every user's record is
      // checked in each killed store below, and every user logs in at the end.
      clock.advance(90_000)
      const server: ServerProcess = await startServerProcess(dir, passphraseFile, serverArgs())
      const port = server.port
      const users = [...acknowledged]
      const older = users.slice(0, -2).sort(() => Math.random() - 0.5)
      const sample = [...users.slice(-2), ...older.slice(0, 1)]
      for (let i = 0; i < sample.length; i += 6) {
        await Promise.all(
          sample
            .slice(i, i + 6)
            .map(([name, secret]) =>
              login(port, name, secret).catch((error) =>
                lost.push(`cycle ${cycle}, ${name} refused after the restart (${describeError(error)})`),
              ),
            ),
        )
      }
      // Load: one registration (retried under a new name if it fails, every failure reported),
      // and beside it logins and logouts (which supersede records, so compactions run), each user
      // at most once in this step, so that no login is a refused replay; then SIGKILL.
      clock.advance(30_000)
      let killed = false
      const meet = (where: string) => (error: unknown) => {
        if (killed) afterKill += 1
        else unexpected.push(`cycle ${cycle}, ${where}: ${describeError(error)}`)
      }
      const registration = (async () => {
        for (let attempt = 1; attempt <= 3; attempt++) {
          const name = `k${next++}`
          try {
            acknowledged.set(name, await register(port, name))
            return
          } catch (error) {
            meet(`registering ${name}`)(error)
            registrationRetries += 1
          }
        }
        throw new Error(`cycle ${cycle}: three registrations failed: ${unexpected.join('; ')}`)
      })()
      const loggedIn = new Set<string>()
      let loading = true
      const logins = (async () => {
        while (loading) {
          const [name, secret] = users.find(([user]) => !loggedIn.has(user)) ?? []
          if (!name || !secret) break
          loggedIn.add(name)
          await login(port, name, secret, { logout: true }).catch(meet(`logging ${name} in`))
        }
      })()
      // However long the registration takes, the kill comes a random moment after its acknowledgement.
      await registration
      await sleep(random(0, 250))
      killed = true
      server.run.kill('SIGKILL')
      expect((await server.run.done).signal).toBe('SIGKILL')
      loading = false
      await logins
      compactionsSeen += (server.log().match(/"event":"store_compacted"/g) ?? []).length
      // The killed store verifies: every record authentic, at most a torn tail (the real command
      // runs at the end; here the same check in-process, to keep the cycles short).
      const { tornTail } = await verifyStore(storePath(), PASSPHRASE)
      if (tornTail) tornTails += 1
      // And holds every acknowledged user with the TOTP secret they were given.
      for (const [name, secret] of await usersInKilledStore([...acknowledged.keys()])) {
        if (secret !== acknowledged.get(name))
          lost.push(`cycle ${cycle}, ${name} ${secret === undefined ? 'missing from' : 'changed in'} the killed store`)
      }
    }
    clock.advance(90_000)
    const final = await startServerProcess(dir, passphraseFile, serverArgs())
    for (const [name, secret] of acknowledged)
      await login(final.port, name, secret).catch((error) =>
        lost.push(`at the end, ${name} refused (${describeError(error)})`),
      )
    expect(await final.stop()).toBe(0)
    const verified = await storeVerify()
    console.log(
      `kill test: ${CYCLES} cycles of restart, log in a sample, load, SIGKILL; ${acknowledged.size} acknowledged users (${registrationRetries} registrations retried), lost ${lost.length}, errors before a kill ${unexpected.length}, after ${afterKill}, torn tails seen ${tornTails}, compactions logged ${compactionsSeen}, store ${JSON.stringify({ records: verified.records, live: verified.live, dead: verified.dead })}`,
    )
    for (const line of [...lost, ...unexpected]) console.log(`kill test: ${line}`)
    expect(lost).toEqual([])
    expect(unexpected).toEqual([])
    // One registration is acknowledged in every cycle before its kill, by construction.
    expect(acknowledged.size).toBe(CYCLES)
  }, 600_000)
})

describe('SIGKILL during store commands', () => {
  const bigStore = () => join(dir, 'big', 'big.store')
  const names = Array.from({ length: 5_000 }, (_, i) => `user${i}`)
  const record = (username: string): AccountRecord => ({
    username,
    salt: 'ab'.repeat(32),
    verifier: 'cd'.repeat(256),
    kdf: DEFAULT_PASSWORD_KDF,
    totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ',
    role: 'regular_user',
    createdAt: '2026-11-25T00:00:00.000Z',
  })

  /** Every user and every user's last login, checked in-process; returns the store's stats. */
  async function checkAll(passphrase: string) {
    const store = await openStore(bigStore(), passphrase, { autoCompact: false, countedPrefixes: ['user/'] })
    try {
      expect(await userCount(store)).toBe(names.length)
      for (const name of names.filter((_, i) => i % 20 === 0)) expect(await getUser(store, name)).toEqual(record(name))
      for (let i = 0; i < 200; i++) expect(await getLogin(store, names[i]!)).toEqual({ at: 'x', totpStep: 3 })
      return await store.stats()
    } finally {
      await store.close()
    }
  }

  const leftovers = async () => (await readdir(join(dir, 'big'))).filter((name) => name.endsWith('.tmp')).length

  beforeAll(async () => {
    const { createStore } = await import('../../src/store/index.js')
    const store = await createStore(bigStore(), PASSPHRASE, { kdf: TEST_KDF, autoCompact: false })
    await addUsers(store, names.map(record))
    for (let step = 1; step <= 3; step++)
      for (let i = 0; i < 200; i++) await recordLogin(store, names[i]!, { at: 'x', totpStep: step })
    await store.close()
  }, 300_000)

  /**
   * Starts the command and SIGKILLs it `delayMs` after its new file appears beside the store (so
   * inside the write, or just after the rename); returns whether it was mid-write (its temporary
   * file is left). No deadline of its own: a slow machine only makes it slower.
   */
  async function killDuring(args: string[], purpose: 'compact' | 'rekey', delayMs: number): Promise<boolean> {
    const run = runCli(args)
    let writing = false
    while (!writing && run.child.exitCode === null) {
      writing = (await readdir(join(dir, 'big'))).some((name) => name.includes(`.${purpose}.`))
      if (!writing) await sleep(1)
    }
    if (writing && delayMs > 0) await sleep(delayMs)
    run.kill('SIGKILL')
    const { code, signal } = await run.done
    // Ended by the kill, or finished whole before it: never failed on its own.
    expect(signal === 'SIGKILL' || code === 0, `${purpose} exited ${code} (${signal}) on its own`).toBe(true)
    return (await leftovers()) > 0
  }

  /**
   * ROUNDS kills at random moments up to `spreadMs` after the new file appears; then, while none
   * has landed mid-write, kills the moment it appears (the file is filled for a long while after
   * it is made, so such a kill is all but always mid-write) for up to 20 more rounds.
   */
  async function killRounds(
    kill: (delayMs: number) => Promise<boolean>,
    spreadMs: number,
  ): Promise<{ rounds: number; midWrite: number }> {
    let midWrite = 0
    let round = 0
    for (; round < ROUNDS || (midWrite === 0 && round < ROUNDS + 20); round++) {
      if (await kill(round < ROUNDS ? random(0, spreadMs) : 0)) midWrite += 1
    }
    return { rounds: round, midWrite }
  }

  it('compaction: the complete old store or the complete new one, never less', async () => {
    const args = ['store', 'compact', '--store', bigStore(), '--passphrase-file', passphraseFile, '--json']
    const full = await runCliToEnd(args, '')
    expect(full.code).toBe(0)
    const { ms } = JSON.parse(full.stdout) as { ms: number }
    const { rounds, midWrite } = await killRounds(
      async (delayMs) => {
        const mid = await killDuring(args, 'compact', delayMs)
        await checkAll(PASSPHRASE)
        return mid
      },
      Math.ceil(ms * 1.2),
    )
    const stats = await checkAll(PASSPHRASE)
    expect(await leftovers()).toBe(0)
    console.log(
      `kill during compaction: ${rounds} kills after the new file appeared (a compaction takes ${ms} ms), ${midWrite} mid-write (removed at the next open), users ${stats.counted['user/']}, records ${stats.records}`,
    )
    expect(midWrite).toBeGreaterThan(0)
  }, 300_000)

  it('rekey: exactly one of the old and new passphrases opens the whole store, also after a kill mid-write', async () => {
    const passphrases = [PASSPHRASE, 'the other kill test passphrase']
    const files = await Promise.all(passphrases.map((p, i) => writePassphraseFile(dir, p, `rekey-${i}`)))
    const rekey = (from: number) => [
      'store',
      'rekey',
      '--store',
      bigStore(),
      '--passphrase-file',
      files[from]!,
      '--new-passphrase-file',
      files[1 - from]!,
      '--kdf-logn',
      String(TEST_KDF.logN),
      '--json',
    ]
    let current = 0
    const outcomes = { old: 0, new: 0 }
    const { rounds, midWrite } = await killRounds(async (delayMs) => {
      const mid = await killDuring(rekey(current), 'rekey', delayMs)
      const opens: boolean[] = []
      for (const p of passphrases) {
        opens.push(
          await openStore(bigStore(), p, { autoCompact: false }).then(
            (s) => s.close().then(() => true),
            (e) => {
              expect(e.code).toBe('ERR_STORE_BAD_PASSPHRASE')
              return false
            },
          ),
        )
      }
      expect(opens.filter(Boolean)).toHaveLength(1)
      const now = opens.indexOf(true)
      // Killed before the rename, the old passphrase must still be the one.
      if (mid) expect(now).toBe(current)
      outcomes[now === current ? 'old' : 'new'] += 1
      current = now
      await checkAll(passphrases[current]!)
      return mid
    }, 150)
    console.log(
      `kill during rekey: ${rounds} kills after the new file appeared; ${midWrite} mid-write; afterwards the old passphrase opened it ${outcomes.old} times, the new one ${outcomes.new}`,
    )
    expect(midWrite).toBeGreaterThan(0)
  }, 300_000)
})
