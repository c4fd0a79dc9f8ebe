import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { openStore } from '../../src/store/index.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, parseResult, type Account, type CliResult } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// The audit log through the running server and the real CLI (issue 6, "Audit log"): `admin
// audit` with --user, --since and --limit, its plain output, --follow until Ctrl-C or until the
// server ends the stream, and `admin audit verify` and `store verify` on a server's own store,
// intact and with entries cut off behind a rewritten head. What each action writes, the
// queries, following and every way of damaging the log, through the server's conversations:
// test/conversation/audit.test.ts; the chain case by case: test/store/audit.test.ts.

const hasOathtool = requireTool('oathtool')

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('audit', { serverArgs: ['--registration', 'open'] })
  if (!hasOathtool) return
  root = await lab.registerDirect('root', { invite: await lab.bootstrapToken() })
  sam = await lab.registerDirect('sam')
  await lab.loginDirect(root)
  await lab.loginDirect(sam)
  await lab.run(sam, ['logout'])
}, 240_000)

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

const audit = async (...args: string[]): Promise<AuditEntry[]> => {
  const result = await lab.run(root, ['admin', 'audit', ...args])
  expect(result.code, describeResult(result)).toBe(0)
  expect(result.events.every((e) => e['event'] === 'audit')).toBe(true)
  return result.events.map(({ event: _, ...entry }) => entry as AuditEntry)
}

describe.runIf(hasOathtool)('reading the log', () => {
  it('one JSON line per entry; --user NAME, --since TIME and --limit N are passed on', async () => {
    const all = await audit()
    expect(all.map((e) => e.n)).toEqual(all.map((_, i) => i + 1))
    expect(all.map((e) => [e.action, e.actor])).toEqual(
      expect.arrayContaining([
        ['user.register', null],
        ['login.ok', 'sam'],
        ['session.logout', 'sam'],
      ]),
    )
    expect((await audit('--user', 'sam')).map((e) => e.n)).toEqual(
      all.filter((e) => e.actor === 'sam' || e.target === 'sam').map((e) => e.n),
    )
    const last = all.at(-1)!
    const since = await audit('--since', last.at)
    expect(since.every((e) => e.at >= last.at)).toBe(true)
    expect(since.map((e) => e.n)).toContain(last.n)
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
    await lab.loginDirect(sam)
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
    const done = parseResult(await follow.done)
    expect(done.code).toBe(1)
    expect(done.error?.code).toBe('ERR_FORBIDDEN')
  })
})

// --- The store file itself, damaged as an insider with the passphrase and a modified tool would.

const key = (n: number) => `audit/${String(n).padStart(12, '0')}`

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

describe.runIf(hasOathtool)('admin audit verify (the running server) and store verify (the file)', () => {
  it('intact, the log passes; cut off behind a rewritten head, both find it with the head the server log printed', async () => {
    const before = await lab.run(root, ['admin', 'audit', 'verify'])
    expect(before.code, describeResult(before)).toBe(0)
    expect(before.json).toMatchObject({ event: 'audit_verify', ok: true, problems: [] })
    expect(before.json!['entries']).toBeGreaterThanOrEqual(8)
    // That verification is the newest entry, and the server logged the head it made.
    const anchor = loggedHead()
    expect(anchor.n).toBe(before.json!['entries'] + 1)
    // The last test of the file: the damaged store is not put back.
    await lab.stopServer()
    const store = await openStore(lab.storePath, lab.passphrase)
    try {
      const last = await store.get<AuditEntry>(key(anchor.n))
      expect(last!.hash, 'the log holds what the server logged').toBe(anchor.hash)
      const third = await store.get<AuditEntry>(key(anchor.n - 2))
      await store.commit([
        { key: key(anchor.n), delete: true },
        { key: key(anchor.n - 1), delete: true },
        { key: 'audit-head', value: { n: anchor.n - 2, hash: third!.hash } },
      ])
    } finally {
      await store.close()
    }
    const anchorArg = `${anchor.n}:${anchor.hash}`
    const expected = [{ n: anchor.n, problem: expect.stringMatching(/the anchor names entry \d+ but the log ends/) }]

    const file = await storeVerify(anchorArg)
    expect(file.code, describeResult(file)).toBe(1)
    expect(file.error?.code).toBe('ERR_STORE_CORRUPT')
    expect(file.json!['audit']).toMatchObject({ ok: false, problems: expected })
    // Without the anchor the rewrite goes unseen: the chain that is left is intact.
    const unanchored = await storeVerify()
    expect(unanchored.code, describeResult(unanchored)).toBe(0)
    expect(unanchored.json!['audit']).toMatchObject({ ok: true, problems: [] })

    await lab.startServer()
    const live = await lab.run(root, ['admin', 'audit', 'verify', '--anchor', anchorArg])
    expect(live.code, describeResult(live)).toBe(1)
    expect(live.error?.code).toBe('ERR_STORE_CORRUPT')
    expect(live.json).toMatchObject({ event: 'audit_verify', ok: false, problems: expected })
  })
})
