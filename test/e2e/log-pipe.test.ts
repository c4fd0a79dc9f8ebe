import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Lab } from '../helpers/accounts.js'
import { killAllCli } from '../helpers/cli.js'
import { opsPortOf, opsRequest, sampleOf } from '../helpers/ops.js'
import { requireTool } from '../helpers/tools.js'

// A log that cannot be written never stops the server (src/cli/line-writer.ts): the real server
// process logs JSON to a pipe whose reading end the test closes, as a log shipper that dies
// would. Registrations and logins go on (and with them the audit anchor lines, which the log
// drops like any other); the server says so once on stderr, and at its stop how many lines it
// dropped, and /metrics counts them. What each failure does to the writer is
// test/unit/line-writer.test.ts's.

const canRun = requireTool('oathtool')

describe.runIf(canRun)('a server whose log reader has gone', () => {
  let lab: Lab
  let ops: number

  beforeAll(async () => {
    lab = await Lab.start('log-pipe', { serverArgs: ['--ops-listen', '127.0.0.1:0'] })
    // Where the operator listener is: the line after `listening`, read before the pipe closes.
    ops = await opsPortOf(() => lab.server.log())
  })
  afterAll(async () => {
    await killAllCli()
    await lab?.close()
  })

  it('keeps serving: a registration and logins succeed; the lines are dropped, counted and said on stderr', async () => {
    const run = lab.server.run
    // The server read its `listening` line; now nobody reads its stdout again.
    run.child.stdout!.destroy()

    const ada = await lab.register('adalovelog', { bootstrapToken: await lab.bootstrapToken() })
    await lab.mustLogin(ada)
    await vi.waitFor(() => expect(run.stderr()).toContain('the log cannot be written (EPIPE)'), { timeout: 20_000 })

    // It is still running, and another login works after the failure.
    expect(run.child.exitCode).toBeNull()
    await lab.mustLogin(ada)
    const conn = await lab.connect()
    conn.close()
    expect(run.child.exitCode).toBeNull()
    // Said once, however many lines followed.
    expect(run.stderr().match(/the log cannot be written/g)).toHaveLength(1)
    // And counted where a monitoring system sees it, with the logins that went on.
    const metrics = (await opsRequest(ops, '/metrics')).text
    expect(sampleOf(metrics, 'securelogin_logins_total{outcome="ok"}')).toBe(2)
    const dropped = sampleOf(metrics, 'securelogin_log_lines_dropped_total')!
    expect(dropped).toBeGreaterThanOrEqual(5)

    // A graceful stop, as ever (exit 0), and the count on stderr: at least the registration's
    // and both logins' audit lines, their login lines, `stopping` and `stopped`.
    expect(await lab.stopServer()).toBe(0)
    const counted = /securelogin: (\d+) log lines were dropped \(EPIPE\)/.exec(run.stderr())
    expect(counted, run.stderr()).not.toBeNull()
    expect(Number(counted![1])).toBeGreaterThanOrEqual(Math.max(7, dropped))
    expect(run.stderr()).not.toMatch(/Unhandled|EPIPE.*at /)
  })
})
