import { copyFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { openStore, type Store } from '../../src/store/index.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, parseResult, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// The audit log through the running server and the real CLI (issue 6, "Audit log"): reading it
// with --user, --since and --limit, following it, and `admin audit verify` and `store verify`
// finding a removed, edited, reordered or truncated entry in the real store file. How the chain
// is built and every way of breaking it, case by case: test/store/audit.test.ts.

const hasOathtool = requireTool('oathtool')

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('audit', { serverArgs: ['--registration', 'open'] })
  if (!hasOathtool) return
  root = await lab.register('root', { bootstrapToken: await lab.bootstrapToken() })
  sam = await lab.registerDirect('sam')
  await lab.mustLogin(root)
  await lab.loginDirect(sam)
  await lab.run(sam, ['logout'])
}, 60_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

const audit = async (...args: string[]): Promise<AuditEntry[]> => {
  const result = await lab.run(root, ['admin', 'audit', ...args])
  expect(result.code, describeResult(result)).toBe(0)
  return result.events.map(({ event: _, ...entry }) => entry as AuditEntry)
}

describe.runIf(hasOathtool)('reading the log', () => {
  it('oldest first, numbered 1.., each chained to the one before, with time, actor, target, address and outcome', async () => {
    const entries = await audit()
    expect(entries.map((e) => e.n)).toEqual(entries.map((_, i) => i + 1))
    entries.slice(1).forEach((entry, i) => expect(entry.prev).toBe(entries[i]!.hash))
    expect(entries.map((e) => [e.action, e.actor, e.target, e.outcome])).toEqual(
      expect.arrayContaining([
        ['user.register', null, 'root', 'ok'],
        ['user.register', null, 'sam', 'ok'],
        ['login.ok', 'root', 'root', 'ok'],
        ['login.ok', 'sam', 'sam', 'ok'],
        ['session.logout', 'sam', expect.stringMatching(/^[0-9a-f]{32}$/), 'ok'],
      ]),
    )
    for (const entry of entries)
      expect(entry).toMatchObject({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        address: '127.0.0.1',
      })
  })

  it('--user NAME, --since TIME and --limit N narrow it down', async () => {
    const all = await audit()
    expect((await audit('--user', 'sam')).map((e) => e.n)).toEqual(
      all.filter((e) => e.actor === 'sam' || e.target === 'sam').map((e) => e.n),
    )
    const middle = all[Math.floor(all.length / 2)]!
    expect((await audit('--since', middle.at)).every((e) => e.at >= middle.at)).toBe(true)
    expect((await audit('--since', middle.at)).map((e) => e.n)).toContain(middle.n)
    const lastTwo = await audit('--limit', '2')
    expect(lastTwo.map((e) => e.n)).toEqual([lastTwo[1]!.n - 1, lastTwo[1]!.n])
    const usage = await lab.run(root, ['admin', 'audit', '--since', 'yesterday'])
    expect(usage.code).toBe(2)
    expect(usage.error?.code).toBe('ERR_USAGE')
  })

  it('prints lines a person can read without --json', async () => {
    const run = await runCliToEnd(
      ['admin', 'audit', '--user', 'sam', '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath],
      '',
      { env: { SECURELOGIN_HOME: root.home } },
    )
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(
      /^\s+\d+ \d{4}-\d\d-\d\dT[\d:.]+Z ok\s+user\.register\s+actor=- target=sam from=127\.0\.0\.1/m,
    )
  })
})

describe.runIf(hasOathtool)('admin audit --follow', () => {
  it('prints each new entry as it is written, and stops at Ctrl-C', async () => {
    const follow = await lab.startIn(root.home, ['admin', 'audit', '--follow', '--limit', '1'])
    const last = JSON.parse(await follow.nextLine())
    expect(last).toMatchObject({ event: 'audit', n: expect.any(Number) })
    await lab.mustLogin(sam)
    const next = JSON.parse(await follow.nextLine())
    expect(next).toMatchObject({ event: 'audit', n: last.n + 1, action: 'login.ok', actor: 'sam', prev: last.hash })
    follow.kill('SIGINT')
    expect((await follow.done).code).toBe(0)
  })

  it('ends with ERR_FORBIDDEN when the follower stops being an admin', async () => {
    const [ada] = await lab.registerInvitedDirect(root, [['ada', 'admin']])
    await lab.loginDirect(ada!)
    const follow = await lab.startIn(ada!.home, ['admin', 'audit', '--follow', '--limit', '1'])
    await follow.nextLine()
    const demote = await lab.run(root, ['admin', 'role', 'ada', 'regular_user'])
    expect(demote.code, describeResult(demote)).toBe(0)
    // The demotion's own entry may still reach the follower; then the stream ends.
    const done = parseResult(await follow.done)
    expect(done.code).toBe(1)
    expect(done.error?.code).toBe('ERR_FORBIDDEN')
  })
})

// --- Tampering with the store file itself, as an insider with the passphrase and a modified tool would.

const key = (n: number) => `audit/${String(n).padStart(12, '0')}`

interface Tamper {
  name: string
  /** Damages the store; `entries` are the log as it stood, `head` its last number. */
  tamper: (store: Store, entries: AuditEntry[], head: number) => Promise<void>
  /** What both verifiers report, entry by entry. */
  problems: (head: number) => Array<[number, RegExp]>
  /** Verify against the head before the damage (as the server log printed it). */
  anchored?: true
}

const TAMPERS: Tamper[] = [
  {
    name: 'a removed entry',
    tamper: (store) => store.commit([{ key: key(3), delete: true }]),
    problems: () => [[3, /entry 3 is missing \(removed\)/]],
  },
  {
    name: 'an edited entry',
    tamper: (store, e) => store.commit([{ key: key(3), value: { ...e[2]!, outcome: 'failed' } }]),
    problems: () => [[3, /entry 3's hash does not match its content \(edited\)/]],
  },
  {
    name: 'two entries swapped',
    tamper: (store, e) =>
      store.commit([
        { key: key(3), value: e[3] },
        { key: key(4), value: e[2] },
      ]),
    problems: () => [
      [3, /moved or reordered/],
      [3, /entry 3's prev/],
      [4, /moved or reordered/],
      [4, /entry 4's prev/],
      [5, /entry 5's prev/],
    ],
  },
  {
    name: 'the last two entries cut off',
    tamper: (store, _e, head) =>
      store.commit([
        { key: key(head), delete: true },
        { key: key(head - 1), delete: true },
      ]),
    problems: (head) => [[head - 1, /\(truncated\)/]],
  },
  {
    name: 'the last two entries cut off and the head rewritten to match',
    tamper: (store, e, head) =>
      store.commit([
        { key: key(head), delete: true },
        { key: key(head - 1), delete: true },
        { key: 'audit-head', value: { n: head - 2, hash: e[head - 3]!.hash } },
      ]),
    problems: (head) => [[head, /the anchor names entry \d+ but the log ends at entry \d+ \(truncated\)/]],
    anchored: true,
  },
]

/** The server log's record of the last entry written: the anchor an operator keeps. */
function loggedHead(): { n: number; hash: string } {
  const lines = lab.server
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{"event":"audit"'))
  const { n, hash } = JSON.parse(lines.at(-1)!)
  return { n, hash }
}

const storeVerify = async (anchor?: string): Promise<CliResult> =>
  parseResult(
    await runCliToEnd(
      [
        'store',
        'verify',
        '--store',
        lab.storePath,
        '--passphrase-file',
        lab.passphraseFile,
        '--json',
        ...(anchor ? ['--audit-anchor', anchor] : []),
      ],
      '',
    ),
  )

describe.runIf(hasOathtool)(
  'a damaged log is found by admin audit verify (the running server) and store verify (the file)',
  () => {
    it('an intact log passes both', async () => {
      const verify = await lab.run(root, ['admin', 'audit', 'verify'])
      expect(verify.code, describeResult(verify)).toBe(0)
      expect(verify.json).toMatchObject({ event: 'audit_verify', ok: true, problems: [] })
      expect(verify.json!['entries']).toBeGreaterThanOrEqual(8)
      await lab.stopServer()
      const file = await storeVerify()
      expect(file.code, describeResult(file)).toBe(0)
      expect(file.json!['audit']).toMatchObject({ ok: true, problems: [] })
      await lab.startServer()
    })

    it.each(TAMPERS)('$name', async ({ tamper, problems, anchored }) => {
      // The log (restored after the last case) verifies, and that verification is its newest entry.
      const before = await lab.run(root, ['admin', 'audit', 'verify'])
      expect(before.code, describeResult(before)).toBe(0)
      const anchor = loggedHead()
      expect(anchor.n).toBe(before.json!['entries'] + 1)
      await lab.stopServer()
      const backup = `${lab.storePath}.before-tamper`
      await copyFile(lab.storePath, backup)
      try {
        const store = await openStore(lab.storePath, lab.passphrase)
        try {
          const entries = await Promise.all(
            Array.from({ length: anchor.n }, (_, i) => store.get<AuditEntry>(key(i + 1))),
          )
          expect(entries.at(-1)!.hash, 'the log holds what the server logged').toBe(anchor.hash)
          await tamper(store, entries as AuditEntry[], anchor.n)
        } finally {
          await store.close()
        }
        const expected = problems(anchor.n)
        const anchorArg = anchored ? `${anchor.n}:${anchor.hash}` : undefined
        const check = (report: { ok: boolean; problems: Array<{ n: number; problem: string }> }) => {
          expect(report.ok).toBe(false)
          expect(report.problems.map((p) => p.n)).toEqual(expected.map(([n]) => n))
          report.problems.forEach((p, i) => expect(p.problem).toMatch(expected[i]![1]))
        }

        const file = await storeVerify(anchorArg)
        expect(file.code, describeResult(file)).toBe(1)
        expect(file.error?.code).toBe('ERR_STORE_CORRUPT')
        check(file.json!['audit'])
        if (anchored) expect((await storeVerify()).code, 'without the anchor the rewrite goes unseen').toBe(0)

        await lab.startServer()
        const live = await lab.run(root, ['admin', 'audit', 'verify', ...(anchorArg ? ['--anchor', anchorArg] : [])])
        expect(live.code, describeResult(live)).toBe(1)
        expect(live.error?.code).toBe('ERR_STORE_CORRUPT')
        check(live.json as { ok: boolean; problems: Array<{ n: number; problem: string }> })
      } finally {
        await lab.stopServer() // (again, if it already stopped: a no-op)
        await copyFile(backup, lab.storePath)
        await lab.startServer()
      }
    })
  },
)
