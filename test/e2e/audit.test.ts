import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { runAdminAudit, runAdminAuditVerify } from '../../src/cli/admin.js'
import { runStoreVerify } from '../../src/cli/store.js'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { AuditLog } from '../../src/server/audit-log.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, parseResult, type Account } from '../helpers/accounts.js'
import { noteOutput } from '../helpers/secrets.js'
import { requireTool } from '../helpers/tools.js'
import { storeKindAvailable } from '../helpers/store-kind.js'

// The audit log through the running server and the real CLI (issue 6, "Audit log"): `admin
// audit` with --user, --since and --limit, its plain output, --follow until Ctrl-C or until the
// server ends the stream, and `admin audit verify` and `store verify` on a server's own store,
// intact and with entries cut off behind a rewritten head. What each action writes, the
// queries, following and every way of damaging the log, through the server's conversations:
// test/conversation/audit.test.ts; the chain case by case: test/store/audit.test.ts.
//
// A CLI process costs about half a second: each command's output, options and exit codes are
// shown through the real process, and a run that would add only another outcome of the same
// code (a refusal made before anything is printed, the passing half of a verification) is the
// command's run function called in this process (here()), its stdout captured; errors become
// exit codes and stderr lines in one place for every command (src/cli/output.ts, reportError).
// What the entries should be is read in this process too, through the client library on root's
// saved session.

// Once on each store kind (vitest.config.ts): skipped, with one line, without oathtool or the
// kind's server (PostgreSQL); under CI either fails instead.
const canRun = requireTool('oathtool') && (await storeKindAvailable())
const MINUTE = 60_000

let lab: Lab
let root: Account
let sam: Account

beforeAll(async () => {
  lab = await Lab.start('audit')
  if (!canRun) return
  root = await lab.registerDirect('root', { invite: await lab.bootstrapToken() })
  await lab.loginDirect(root)
  // A minute later, so that --since has something to tell apart: root invites sam, an admin
  // (to be demoted while following), who registers and logs in.
  lab.clock.advance(MINUTE)
  sam = (await lab.registerInvitedDirect(root, [['sam', 'admin']]))[0]!
  await lab.loginDirect(sam)
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

/** The whole log as the server gives it to root, read in this process. */
const wholeLog = (): Promise<AuditEntry[]> =>
  lab.asUser(root, async (run) => {
    // A page at a time, from the newest back (the log outgrows one frame below).
    const pages: AuditEntry[][] = []
    let before: number | undefined
    do {
      const page = await run('audit', before === undefined ? {} : { before })
      pages.unshift(page.entries)
      before = page.next
    } while (before !== undefined)
    return pages.flat()
  })

const clientArgs = () => ({ server: `127.0.0.1:${lab.port}`, ca: lab.certPath, json: true, passwordStdin: false })

/**
 * A command's run function in this process, as the client whose home is `home`: 'ok' or the
 * error's code (what its exit code and stderr line are made of, src/cli/output.ts), and what it
 * printed.
 */
async function here(home: string, work: () => Promise<void>): Promise<{ code: string; stdout: string }> {
  const saved = process.env['SECURELOGIN_HOME']
  let stdout = ''
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk)
    return true
  })
  process.env['SECURELOGIN_HOME'] = home
  try {
    await work()
    return { code: 'ok', stdout }
  } catch (error) {
    if (!(error instanceof SecureLoginError)) throw error
    return { code: error.code, stdout }
  } finally {
    if (saved === undefined) delete process.env['SECURELOGIN_HOME']
    else process.env['SECURELOGIN_HOME'] = saved
    write.mockRestore()
    noteOutput('a command run in this process', 'stdout', stdout)
  }
}

describe.runIf(canRun)('reading the log', () => {
  it('one JSON line per entry; --user NAME and --since TIME are passed on; a time that is not one is refused', async () => {
    const all = await wholeLog()
    const since = all.find((e) => e.action === 'invite.create')!.at
    const byRoot = (e: AuditEntry) => e.actor === 'root' || e.target === 'root'
    const expected = all.filter((e) => byRoot(e) && e.at >= since)
    // Each option changes the answer here, so each must have been passed on.
    expect(expected.length).toBeGreaterThan(0)
    expect(all.filter(byRoot)).not.toEqual(expected)
    expect(all.filter((e) => e.at >= since)).not.toEqual(expected)
    expect(await audit('--user', 'root', '--since', since)).toEqual(expected)
    // The command checks --since before asking the server (see the header; --limit: the --follow test).
    expect(await here(root.home, () => runAdminAudit({ ...clientArgs(), since: 'yesterday' }))).toEqual({
      code: 'ERR_USAGE',
      stdout: '',
    })
  })

  it('prints lines a person can read without --json, one per entry, the whole log', async () => {
    const run = await runCliToEnd(['admin', 'audit', '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath], '', {
      env: { SECURELOGIN_HOME: root.home },
    })
    expect(run.code).toBe(0)
    const lines = run.stdout.trimEnd().split('\n')
    expect(lines.map((line) => Number(line.trim().split(' ')[0]))).toEqual((await wholeLog()).map((e) => e.n))
    expect(run.stdout).toMatch(
      /^\s+\d+ \d{4}-\d\d-\d\dT[\d:.]+Z ok\s+user\.register\s+actor=- target=sam address=127\.0\.0\.1/m,
    )
    // Each key once a line (src/cli/admin.ts, formatAuditLine; its cases: test/unit/audit-line.test.ts).
    for (const line of lines) {
      const keys = [...line.matchAll(/ ([^\s=]+)=/g)].map((match) => match[1])
      expect(new Set(keys).size, line).toBe(keys.length)
    }
  })
})

describe.runIf(canRun)('a log longer than one frame', () => {
  it('admin audit reads it a page at a time: every entry, in order (issue 16, audit paging)', async () => {
    // Entries written into the store while the server is stopped, as a busy server would have.
    await lab.stopServer()
    const store = await lab.openStore()
    try {
      const log = await AuditLog.open(store, () => lab.clock.ms)
      for (let i = 0; i < 400; i += 25)
        await Promise.all(
          Array.from({ length: 25 }, (_, j) =>
            log.append({
              actor: 'root',
              action: 'test.filler',
              target: 'sam',
              address: '127.0.0.1',
              outcome: 'ok',
              details: { index: i + j },
            }),
          ),
        )
    } finally {
      await store.close()
    }
    await lab.startServer()
    const entries = await audit()
    expect(entries.length).toBeGreaterThan(400)
    expect(entries.map((e) => e.n)).toEqual(Array.from({ length: entries.length }, (_, i) => i + 1))
    expect(entries).toEqual(await wholeLog())
    expect(entries.filter((e) => e.action === 'test.filler')).toHaveLength(400)
    // --limit past one page: the newest that many, paged the same way.
    expect((await audit('--limit', '300')).map((e) => e.n)).toEqual(entries.slice(-300).map((e) => e.n))
  })
})

describe.runIf(canRun)('admin audit --follow', () => {
  it('prints the last --limit entries, then each new entry as it is written, and stops at Ctrl-C', async () => {
    const head = (await wholeLog()).at(-1)!
    const follow = await lab.startIn(root.home, ['admin', 'audit', '--follow', '--limit', '1'])
    const last = JSON.parse(await follow.nextLine())
    expect(last).toMatchObject({ event: 'audit', n: head.n, hash: head.hash })
    await lab.loginDirect(sam)
    // The next line is the login: --limit 1 printed the last entry alone.
    const next = JSON.parse(await follow.nextLine())
    expect(next).toMatchObject({ event: 'audit', n: last.n + 1, action: 'login.ok', actor: 'sam', prev: last.hash })
    follow.kill('SIGINT')
    expect((await follow.done).code).toBe(0)
  })

  it('ends with ERR_FORBIDDEN when the follower stops being an admin', async () => {
    const follow = await lab.startIn(sam.home, ['admin', 'audit', '--follow', '--limit', '1'])
    await follow.nextLine()
    // `admin role` is the roles tests' command; here its call, by root.
    expect(await lab.asUser(root, (run) => run('set_role', { user: 'sam', role: 'regular_user' }))).toMatchObject({
      previous: 'admin',
    })
    const done = parseResult(await follow.done)
    expect(done.code).toBe(1)
    expect(done.error?.code).toBe('ERR_FORBIDDEN')
  })
})

// --- The store itself, damaged as an insider with the passphrase and a modified tool would.

const key = (n: number) => `audit/${String(n).padStart(12, '0')}`

/**
 * The server log's record of entry `n`, the last written: the anchor an operator keeps. Waited
 * for: an entry is written (and logged) just after the answer it is about.
 */
async function loggedHead(n: number, timeoutMs = 10_000): Promise<{ n: number; hash: string }> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const lines = lab.server
      .log()
      .split('\n')
      .filter((line) => line.startsWith('{"event":"audit"'))
    const last = lines.length > 0 ? (JSON.parse(lines.at(-1)!) as { n: number; hash: string }) : undefined
    if (last && last.n >= n) return { n: last.n, hash: last.hash }
    if (Date.now() > deadline) throw new Error(`the server log shows no audit entry ${n} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const storeArgs = () => ({ store: lab.storePath, passphraseFile: lab.passphraseFile, json: true })

describe.runIf(canRun)('admin audit verify (the running server) and store verify (the store)', () => {
  it('intact, the log passes; cut off behind a rewritten head, both find it with the head the server log printed', async () => {
    // The passing half of each command in this process, the failing half through the CLI (see the header).
    const entries = (await wholeLog()).length
    const before = await here(root.home, () => runAdminAuditVerify(clientArgs()))
    expect(before.code).toBe('ok')
    const intact = parseResult({ code: 0, stdout: before.stdout, stderr: '' }).json
    expect(intact).toMatchObject({ event: 'audit_verify', ok: true, problems: [], entries })
    // That verification is the newest entry, and the server logged the head it made.
    const anchor = await loggedHead(entries + 1)
    expect(anchor.n).toBe(entries + 1)
    // The last test of the file: the damaged store is not put back.
    await lab.stopServer()
    const store = await lab.openStore()
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

    const file = parseResult(
      await runCliToEnd(
        [
          'store',
          'verify',
          '--store',
          lab.storePath,
          '--passphrase-file',
          lab.passphraseFile,
          '--json',
          '--audit-anchor',
          anchorArg,
        ],
        '',
      ),
    )
    expect(file.code, describeResult(file)).toBe(1)
    expect(file.error?.code).toBe('ERR_STORE_CORRUPT')
    expect(file.json!['audit']).toMatchObject({ ok: false, problems: expected })
    // Without the anchor the rewrite goes unseen: the chain that is left is intact.
    const unanchored = await here(lab.dir, () => runStoreVerify(storeArgs()))
    expect(unanchored.code).toBe('ok')
    expect(parseResult({ code: 0, stdout: unanchored.stdout, stderr: '' }).json!['audit']).toMatchObject({
      ok: true,
      problems: [],
    })

    await lab.startServer()
    const live = await lab.run(root, ['admin', 'audit', 'verify', '--anchor', anchorArg])
    expect(live.code, describeResult(live)).toBe(1)
    expect(live.error?.code).toBe('ERR_STORE_CORRUPT')
    expect(live.json).toMatchObject({ event: 'audit_verify', ok: false, problems: expected })
  })
})
