import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startClientLogin } from '../../src/auth/srp-client.js'
import { authenticateWith } from '../../src/client/login.js'
import { DEFAULT_BUDGETS } from '../../src/server/budget.js'
import { Lab, type Account } from '../helpers/accounts.js'
import { killAllCli } from '../helpers/cli.js'
import { makeTempDir } from '../helpers/env.js'
import { opsPortOf, opsRequest, sampleOf } from '../helpers/ops.js'
import pg from 'pg'
import { ADMIN_URL, havePostgres, makeDatabase } from '../helpers/postgres.js'
import { RawClient } from '../helpers/raw-client.js'
import { getUser } from '../helpers/records.js'
import { findLeaks, noteOutput, secretCounts } from '../helpers/secrets.js'
import { startServerProcess, writePassphraseFile } from '../helpers/server-process.js'
import { requireTool } from '../helpers/tools.js'

// The operator listener (`--ops-listen`, docs/operations.md) of the real server process, over
// real HTTP: /healthz, /readyz (ready; stopping during a graceful stop; the store unable to
// write; the database unreachable), and /metrics after logins, failures, a lockout and a
// rate-limited login, checked by promtool and searched for every name, address and secret of
// the run.

const OPS = ['--ops-listen', '127.0.0.1:0']

describe('a server with --ops-listen', () => {
  let lab: Lab
  let ops: number
  let quill: Account
  let marten: Account
  /** /metrics after the logins, failures, lockout and rate limit. */
  let scraped = ''

  beforeAll(async () => {
    lab = await Lab.start('ops', {
      serverArgs: ['--registration', 'open', '--lockout-after', '3', '--failure-delay-ms', '1', ...OPS],
    })
    ops = await opsPortOf(() => lab.server.log())
  })
  afterAll(async () => {
    await lab?.close()
    await killAllCli()
  })

  /** A login with a wrong password: a random x, so the server sees a wrong proof. */
  const wrongPassword = async (name: string) => {
    const conn = await lab.connect()
    try {
      await expect(authenticateWith(conn, name, async () => randomBytes(32).toString('hex'))).rejects.toMatchObject({
        code: 'ERR_AUTH_FAILED',
      })
    } finally {
      conn.close()
    }
  }

  it('says it is alive and ready', async () => {
    expect(await opsRequest(ops, '/healthz')).toMatchObject({ status: 200, text: 'ok\n' })
    expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 200, text: 'ready\n' })
    expect(await opsRequest(ops, '/')).toMatchObject({ status: 404 })
    expect(await opsRequest(ops, '/metrics', 'DELETE')).toMatchObject({ status: 405 })
  })

  it('counts logins by outcome, registrations, stages, the lockout and the rate limit, passes promtool, and shows no name, address or secret', async () => {
    quill = await lab.registerDirect('quillon')
    marten = await lab.registerDirect('martenix')
    await lab.loginDirect(quill)
    await lab.loginDirect(quill)
    // Three wrong passwords lock martenix (--lockout-after 3); then his right one is refused too.
    for (let i = 0; i < 3; i++) await wrongPassword('martenix')
    await vi.waitFor(() => expect(lab.server.log()).toContain('"event":"user_locked"'), { timeout: 30_000 })
    await expect(lab.loginDirect(marten)).rejects.toMatchObject({ code: 'ERR_AUTH_FAILED' })
    // Logins left without a proof, from an address of their own, until its budget is spent.
    const A = startClientLogin().A
    for (let i = 0; i <= DEFAULT_BUDGETS.probes; i++) {
      const peer = await RawClient.open(lab.port, '127.0.0.1', { localAddress: '127.0.0.9' })
      try {
        const answer = await peer.request({ type: 'login_start', username: 'quillon', A })
        expect(answer).toMatchObject(i < DEFAULT_BUDGETS.probes ? { type: 'challenge' } : { code: 'ERR_RATE_LIMITED' })
      } finally {
        peer.close()
      }
    }

    const metrics = await opsRequest(ops, '/metrics')
    expect(metrics.status).toBe(200)
    expect(metrics.type).toBe('text/plain; version=0.0.4; charset=utf-8')
    const text = metrics.text
    scraped = text
    const value = (series: string) => sampleOf(text, `securelogin_${series}`)
    expect(value('logins_total{outcome="ok"}')).toBe(2)
    expect(value('logins_total{outcome="failed"}')).toBe(3)
    expect(value('logins_total{outcome="locked"}')).toBe(1)
    expect(value('logins_total{outcome="rate_limited"}')).toBe(1)
    expect(value('registrations_total{outcome="ok"}')).toBe(2)
    expect(value('lockouts_total{scope="name"}')).toBe(1)
    // Every failure answer's wait is observed, the lock's too.
    expect(value('guard_delay_seconds_count')).toBe(4)
    // SRP at every proof (2 logins, 3 wrong passwords, 1 locked); the second factor and the
    // commit at each full login; TLS at every connection.
    expect(value('login_stage_seconds_count{stage="srp"}')).toBe(6)
    expect(value('login_stage_seconds_count{stage="second_factor"}')).toBe(2)
    expect(value('login_stage_seconds_count{stage="commit"}')).toBe(2)
    expect(value('login_stage_seconds_count{stage="tls"}')).toBeGreaterThanOrEqual(2 + 2 + 4 + DEFAULT_BUDGETS.probes)
    // Read when asked: the store, the audit chain (registrations, logins, failures, the lock).
    // (Failures' audit entries are written behind their answers: the file may have grown since.)
    expect(value('store_size_bytes')).toBeGreaterThan(0)
    expect(value('store_size_bytes')).toBeLessThanOrEqual((await stat(join(lab.dir, 'data', 'securelogin.store'))).size)
    expect(value('store_records')).toBeGreaterThan(0)
    expect(value('audit_head_sequence')).toBeGreaterThanOrEqual(2 + 2 + 4)
    expect(value('connections{state="handshake"}')).toBe(0)
    expect(value('log_lines_dropped_total')).toBe(0)
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0)

    if (requireTool('promtool')) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
      expect(check.stdout + check.stderr).toBe('')
      expect(check.status).toBe(0)
    }

    // Nothing of the run: its user names, its addresses, and no secret noted so far (the
    // passphrase, the passwords, TOTP secrets, recovery codes and session tokens); the stored
    // verifiers are looked for once the server has stopped, below.
    for (const word of ['quillon', 'martenix', '127.0.0.', lab.passphrase]) expect(text).not.toContain(word)
    noteOutput('GET /metrics', 'stdout', text)
    expect(secretCounts().secrets).toBeGreaterThan(10)
    expect(findLeaks()).toEqual([])
  })

  it('says 503 "stopping" from the moment a graceful stop begins, while what is in flight finishes', async () => {
    // The third failure of a name waits (--failure-delay-ms 4000): the stop waits for its answer.
    await lab.stopServer()
    await lab.startServer(['--registration', 'open', '--failure-delay-ms', '4000', ...OPS])
    ops = await opsPortOf(() => lab.server.log())
    for (let i = 0; i < 2; i++) await wrongPassword('nobody-here')
    const third = wrongPassword('nobody-here')
    await vi.waitFor(() => expect(lab.server.log().match(/"event":"login_failed"/g)).toHaveLength(3), {
      timeout: 30_000,
      interval: 10,
    })
    const exited = lab.stopServer()
    await vi.waitFor(
      async () =>
        expect(await opsRequest(ops, '/readyz')).toEqual({ status: 503, type: expect.any(String), text: 'stopping\n' }),
      { timeout: 30_000, interval: 20 },
    )
    // Alive all the same until it exits.
    expect(await opsRequest(ops, '/healthz')).toMatchObject({ status: 200 })
    await third
    expect(await exited).toBe(0)
  })

  it('showed none of the stored secrets of the accounts (verifier, salt, TOTP secret) either', async () => {
    expect(scraped).toContain('securelogin_logins_total')
    const store = await lab.openStore()
    try {
      for (const name of ['quillon', 'martenix']) {
        const record = (await getUser(store, name))!
        for (const secret of [record.verifier, record.salt, record.totpSecret]) {
          expect(secret.length).toBeGreaterThan(10)
          expect(scraped.includes(secret), `${name}'s stored secret in /metrics`).toBe(false)
          expect(scraped.toLowerCase().includes(secret.toLowerCase().slice(0, 32))).toBe(false)
        }
      }
    } finally {
      await store.close()
    }
  })

  it('says 503 "store write failed" once a write to the store file fails, and serves on', async () => {
    if (!requireTool('prlimit')) return
    const server = await lab.startServer(['--registration', 'open', ...OPS])
    ops = await opsPortOf(() => server.log())
    expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 200 })
    // The store file cannot grow any more (RLIMIT_FSIZE at its size: the next append fails with
    // EFBIG, as on a full disk); the log is a pipe, which the limit does not touch.
    const pid = server.run.child.pid!
    const size = (await stat(join(lab.dir, 'data', 'securelogin.store'))).size
    execFileSync('prlimit', ['--pid', String(pid), `--fsize=${size}:`])
    await expect(lab.loginDirect(quill)).rejects.toMatchObject({ code: 'ERR_INTERNAL' })
    expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 503, text: 'store write failed\n' })
    expect(await opsRequest(ops, '/healthz')).toMatchObject({ status: 200 })
    expect(sampleOf((await opsRequest(ops, '/metrics')).text, 'securelogin_logins_total{outcome="ok"}')).toBe(0)
    await lab.stopServer()
  })
})

describe('a server on PostgreSQL with --ops-listen', () => {
  it('says 503 "database unreachable" while the database refuses it, and ready again when it is back', async () => {
    if (!(await havePostgres())) return
    const db = await makeDatabase()
    const { dir, remove } = await makeTempDir('ops-pg')
    const server = await startServerProcess(
      dir,
      await writePassphraseFile(dir, `ops pg ${randomBytes(4).toString('hex')}`),
      ['--store', db.url, ...OPS],
    )
    try {
      const ops = await opsPortOf(() => server.log())
      expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 200, text: 'ready\n' })
      // No new connection to this database, and the server's cut.
      await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`)
      await adminSql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db.name])
      await vi.waitFor(
        async () =>
          expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 503, text: 'database unreachable\n' }),
        { timeout: 30_000, interval: 100 },
      )
      await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`)
      await vi.waitFor(async () => expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 200 }), {
        timeout: 30_000,
        interval: 100,
      })
    } finally {
      await server.stop()
      await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`).catch(() => {})
      await db.drop()
      await remove()
    }
  })

  it("with --workers 2, serves the workers' metrics summed and their stores' readiness", async () => {
    if (!(await havePostgres())) return
    const db = await makeDatabase()
    const lab = await Lab.start('ops-workers', {
      serverArgs: ['--store', db.url, '--workers', '2', '--registration', 'open', ...OPS],
    })
    try {
      const ops = await opsPortOf(() => lab.server.log())
      expect(await opsRequest(ops, '/readyz')).toMatchObject({ status: 200, text: 'ready\n' })
      // Three logins, each on a connection of its own: the kernel hands them to either worker.
      const ada = await lab.registerDirect('adalind')
      for (let i = 0; i < 3; i++) await lab.loginDirect(ada)
      const { status, text } = await opsRequest(ops, '/metrics')
      expect(status).toBe(200)
      expect(sampleOf(text, 'securelogin_logins_total{outcome="ok"}')).toBe(3)
      expect(sampleOf(text, 'securelogin_registrations_total{outcome="ok"}')).toBe(1)
      expect(sampleOf(text, 'securelogin_login_stage_seconds_count{stage="commit"}')).toBe(3)
      expect(sampleOf(text, 'securelogin_store_records')).toBeGreaterThan(0)
      expect(text).not.toContain('adalind')
      if (requireTool('promtool')) {
        const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
        expect(check.stdout + check.stderr).toBe('')
      }
      noteOutput('GET /metrics (workers)', 'stdout', text)
    } finally {
      await lab.close()
      await db.drop()
    }
  })
})

/** One statement on the admin database (this test's own database may be refusing connections). */
async function adminSql(text: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL })
  await client.connect()
  try {
    await client.query(text, values)
  } finally {
    await client.end()
  }
}
