import { readFile } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { CONNECTION_STATES, LOGIN_OUTCOMES, ServerMetrics } from '../../src/server/metrics.js'
import { isLoopback, parseOpsListen, startOpsListener, type OpsListener } from '../../src/server/ops.js'
import { createMemoryLogger } from '../../src/server/logger.js'
import type { StoreStats } from '../../src/store/index.js'
import { opsRequest, sampleOf as sample } from '../helpers/ops.js'
import { makeCerts, makeTempDir } from '../helpers/env.js'

// The metrics registry (src/server/metrics.ts) and the operator listener (src/server/ops.ts) on
// their own, over real HTTP on 127.0.0.1. The same through the real server process, with
// promtool and the no-secrets check: test/e2e/ops.test.ts.

const stats = (fileSize: number): StoreStats => ({
  formatVersion: 2,
  kdf: { name: 'scrypt', logN: 10, r: 8, p: 1 },
  storeId: 'ab',
  fileSize,
  records: 7,
  entries: 9,
  live: 5,
  dead: 4,
  counted: {},
})

describe('ServerMetrics', () => {
  it('shows every outcome at 0 before the first event, and counts each hook under its own label', async () => {
    const metrics = new ServerMetrics()
    let text = (await metrics.text()).text
    for (const outcome of LOGIN_OUTCOMES) expect(sample(text, `securelogin_logins_total{outcome="${outcome}"}`)).toBe(0)
    metrics.login('ok')
    metrics.login('ok')
    metrics.login('locked')
    metrics.registration('rate_limited')
    metrics.refused('per_address')
    metrics.cut('deadline')
    metrics.locked('name')
    metrics.guardDelay(250)
    metrics.kdfWait(3)
    metrics.stageSeconds('srp', 0.002)
    metrics.compacted(1500)
    metrics.compacted(undefined)
    text = (await metrics.text()).text
    expect(sample(text, 'securelogin_logins_total{outcome="ok"}')).toBe(2)
    expect(sample(text, 'securelogin_logins_total{outcome="locked"}')).toBe(1)
    expect(sample(text, 'securelogin_logins_total{outcome="failed"}')).toBe(0)
    expect(sample(text, 'securelogin_registrations_total{outcome="rate_limited"}')).toBe(1)
    expect(sample(text, 'securelogin_connections_refused_total{cause="per_address"}')).toBe(1)
    expect(sample(text, 'securelogin_connections_cut_total{cause="deadline"}')).toBe(1)
    expect(sample(text, 'securelogin_lockouts_total{scope="name"}')).toBe(1)
    expect(sample(text, 'securelogin_guard_delay_seconds_bucket{le="0.25"}')).toBe(1)
    expect(sample(text, 'securelogin_guard_delay_seconds_bucket{le="0"}')).toBe(0)
    expect(sample(text, 'securelogin_kdf_wait_seconds_count')).toBe(1)
    expect(sample(text, 'securelogin_login_stage_seconds_count{stage="srp"}')).toBe(1)
    expect(sample(text, 'securelogin_login_stage_seconds_count{stage="commit"}')).toBe(0)
    expect(sample(text, 'securelogin_store_compactions_total{result="ok"}')).toBe(1)
    expect(sample(text, 'securelogin_store_compactions_total{result="failed"}')).toBe(1)
    expect(sample(text, 'securelogin_store_compaction_seconds_sum')).toBe(1.5)
  })

  it('reads the store, the audit head, the KDF queue, the connections and the dropped log lines at scrape time', async () => {
    const metrics = new ServerMetrics()
    let size = 1000
    let dropped = 0
    let reads = 0
    metrics.readFrom({
      store: {
        stats: async () => {
          reads += 1
          return stats(size)
        },
      },
      auditHead: () => 42,
      kdfQueue: () => 3,
      connections: () =>
        ({ ...Object.fromEntries(CONNECTION_STATES.map((s) => [s, 0])), handshake: 2, ready: 1 }) as never,
      logLinesDropped: () => dropped,
    })
    let text = (await metrics.text()).text
    expect(sample(text, 'securelogin_store_size_bytes')).toBe(1000)
    expect(sample(text, 'securelogin_store_records')).toBe(7)
    expect(sample(text, 'securelogin_store_live_keys')).toBe(5)
    // The three store gauges of one scrape share one read.
    expect(reads).toBe(1)
    expect(sample(text, 'securelogin_audit_head_sequence')).toBe(42)
    expect(sample(text, 'securelogin_kdf_queue_length')).toBe(3)
    expect(sample(text, 'securelogin_connections{state="handshake"}')).toBe(2)
    expect(sample(text, 'securelogin_connections{state="authenticated"}')).toBe(0)
    expect(sample(text, 'securelogin_log_lines_dropped_total')).toBe(0)
    size = 2000
    dropped = 17
    text = (await metrics.text()).text
    expect(sample(text, 'securelogin_store_size_bytes')).toBe(2000)
    expect(sample(text, 'securelogin_log_lines_dropped_total')).toBe(17)
  })

  it('keeps the last store figures when the store fails', async () => {
    const metrics = new ServerMetrics()
    let fail = false
    metrics.readFrom({
      store: {
        stats: async () => {
          if (fail) throw new Error('the store is closed')
          return stats(1234)
        },
      },
    })
    await metrics.text()
    fail = true
    expect(sample((await metrics.text()).text, 'securelogin_store_size_bytes')).toBe(1234)
  })

  it('adds the process metrics under the securelogin_ prefix when asked', async () => {
    const text = (await new ServerMetrics({ process: true }).text()).text
    expect(text).toContain('securelogin_process_cpu_seconds_total')
    expect(text).toContain('securelogin_process_resident_memory_bytes')
    expect(text).toContain('securelogin_nodejs_eventloop_lag_p99_seconds')
  })
})

describe('--ops-listen', () => {
  it('takes HOST:PORT and [IPv6]:PORT, and refuses anything else', () => {
    expect(parseOpsListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(parseOpsListen('[::1]:0')).toEqual({ host: '::1', port: 0 })
    expect(parseOpsListen('localhost:80')).toEqual({ host: 'localhost', port: 80 })
    for (const bad of ['9464', '127.0.0.1', '::1:9464', '[localhost]:1', '1.2.3.4:70000', 'a:b', ''])
      expect(() => parseOpsListen(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }))
  })

  it('serves plain HTTP only on loopback', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopback(host)).toBe(true)
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'example.org'])
      expect(isLoopback(host)).toBe(false)
  })
})

describe('the operator listener', () => {
  let ops: OpsListener | undefined
  afterEach(async () => {
    await ops?.close()
    ops = undefined
  })

  const get = (path: string, method = 'GET', body?: string) => opsRequest(ops!.port, path, method, body)

  it('answers /healthz, /readyz and /metrics, 404 elsewhere, 405 for other methods, and refuses bodies', async () => {
    let reason: string | undefined
    ops = await startOpsListener({
      host: '127.0.0.1',
      port: 0,
      logger: createMemoryLogger(),
      readiness: async () => reason,
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', text: 'x_total 1\n' }),
    })
    expect(ops.tls).toBe(false)
    expect(await get('/healthz')).toMatchObject({ status: 200, text: 'ok\n' })
    expect(await get('/readyz')).toMatchObject({ status: 200, text: 'ready\n' })
    reason = 'store closed\nand more'
    expect(await get('/readyz')).toMatchObject({ status: 503, text: 'store closed and more\n' })
    expect(await get('/metrics?x=1')).toEqual({
      status: 200,
      type: 'text/plain; version=0.0.4; charset=utf-8',
      text: 'x_total 1\n',
    })
    expect(await get('/metrics', 'HEAD')).toMatchObject({ status: 200, text: '' })
    expect(await get('/')).toMatchObject({ status: 404 })
    expect(await get('/metrics/../healthz')).toMatchObject({ status: 404 })
    expect(await get('/metrics', 'POST')).toMatchObject({ status: 405 })
    expect(await get('/readyz', 'GET', 'a body')).toMatchObject({ status: 413 })
    reason = undefined
    ops.stopping()
    expect(await get('/readyz')).toMatchObject({ status: 503, text: 'stopping\n' })
    expect(await get('/healthz')).toMatchObject({ status: 200 })
  })

  it('says 500 without the error when the metrics cannot be read, and logs it', async () => {
    const logger = createMemoryLogger()
    ops = await startOpsListener({
      host: '127.0.0.1',
      port: 0,
      logger,
      readiness: async () => undefined,
      metrics: async () => {
        throw new Error('the registry broke')
      },
    })
    expect(await get('/metrics')).toMatchObject({ status: 500, text: 'internal error\n' })
    expect(logger.entries).toMatchObject([{ level: 'error', event: 'ops_error', fields: { path: '/metrics' } }])
  })

  it('refuses an address that is not loopback without a certificate', async () => {
    await expect(
      startOpsListener({
        host: '0.0.0.0',
        port: 0,
        logger: createMemoryLogger(),
        readiness: async () => undefined,
        metrics: async () => ({ contentType: 'text/plain', text: '' }),
      }),
    ).rejects.toMatchObject({ code: 'ERR_CONFIG' })
  })

  it('is HTTPS with the certificate it is given on an address that is not loopback, and takes a new pair', async () => {
    const { dir, remove } = await makeTempDir('ops-tls')
    try {
      const first = makeCerts(`${dir}/first`)
      const second = makeCerts(`${dir}/second`)
      const pair = async (certs: { certPath: string; keyPath: string }) => ({
        cert: await readFile(certs.certPath),
        key: await readFile(certs.keyPath),
      })
      ops = await startOpsListener({
        host: '0.0.0.0',
        port: 0,
        ...(await pair(first)),
        logger: createMemoryLogger(),
        readiness: async () => undefined,
        metrics: async () => ({ contentType: 'text/plain', text: '' }),
      })
      expect(ops.tls).toBe(true)
      /** GET /healthz over TLS 1.3: the answer and the fingerprint of the certificate shown. */
      const healthz = () =>
        new Promise<{ status: number; fingerprint: string; protocol: string | null }>((resolve, reject) => {
          const req = httpsRequest(
            { host: '127.0.0.1', port: ops!.port, path: '/healthz', rejectUnauthorized: false, agent: false },
            (res) => {
              const socket = res.socket as TLSSocket
              const shown = { fingerprint: socket.getPeerCertificate().fingerprint256, protocol: socket.getProtocol() }
              res.resume()
              res.on('end', () => resolve({ status: res.statusCode!, ...shown }))
            },
          )
          req.on('error', reject)
          req.end()
        })
      expect(await healthz()).toEqual({ status: 200, fingerprint: first.fingerprint, protocol: 'TLSv1.3' })
      // Plain HTTP gets no answer from it.
      await expect(opsRequest(ops.port, '/healthz')).rejects.toThrow()
      ops.setCertificate((await pair(second)).cert, (await pair(second)).key)
      expect(await healthz()).toEqual({ status: 200, fingerprint: second.fingerprint, protocol: 'TLSv1.3' })
    } finally {
      await ops?.close()
      ops = undefined
      await remove()
    }
  })
})
