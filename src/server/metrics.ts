import { performance } from 'node:perf_hooks'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client'
import type { Store, StoreStats } from '../store/index.js'

// The server's Prometheus metrics (docs/operations.md lists each one). One registry per server,
// never prom-client's global one, so two servers in one process (the tests) count apart.
//
// Every label value comes from a fixed list below: no user name, address, token or anything a
// client sends can become a label (or a series: an attacker must not be able to grow the
// registry). The hot path pays a counter increment or a histogram observation per login stage;
// what can be read when Prometheus asks (the store's size, the audit head, the KDF queue, the
// connections by state) is read then, in `collect`, and costs a login nothing. Without
// `--ops-listen` there is no ServerMetrics at all and every hook is one undefined check.

export const LOGIN_OUTCOMES = ['ok', 'failed', 'locked', 'rate_limited'] as const
export type LoginOutcome = (typeof LOGIN_OUTCOMES)[number]
export const REGISTRATION_OUTCOMES = ['ok', 'refused', 'rate_limited', 'failed'] as const
export type RegistrationOutcome = (typeof REGISTRATION_OUTCOMES)[number]
export const LOGIN_STAGES = ['tls', 'srp', 'second_factor', 'commit'] as const
export type LoginStage = (typeof LOGIN_STAGES)[number]
/** Why a connection was refused before any message: the limits of src/server/server.ts. */
export const REFUSAL_CAUSES = ['too_many', 'per_address', 'tls'] as const
export type RefusalCause = (typeof REFUSAL_CAUSES)[number]
/** Why the server ended a connection it had accepted: the bounds of src/server/connection.ts. */
export const CUT_CAUSES = ['idle', 'deadline', 'output_cap'] as const
export type CutCause = (typeof CUT_CAUSES)[number]
export const LOCK_SCOPES = ['name', 'device'] as const
export type LockScope = (typeof LOCK_SCOPES)[number]
/**
 * A connection's state: `handshake` until TLS is done, then its conversation's (src/server/
 * vocabulary.ts; Connection#state's type holds the two lists together).
 */
export const CONNECTION_STATES = [
  'handshake',
  'ready',
  'awaiting_enrol_code',
  'awaiting_proof',
  'awaiting_otp',
  'authenticated',
] as const
export type ConnectionState = (typeof CONNECTION_STATES)[number]

/** What is read at scrape time; each is set by whoever owns it (the server, the CLI). */
export interface MetricSources {
  store?: Pick<Store, 'stats'>
  /** The audit chain's head sequence number as this process last saw it. */
  auditHead?: () => number
  /** Calls waiting for the KDF thread (and the one on it). */
  kdfQueue?: () => number
  /** Open connections: how many in each state (a state left out has none). */
  connections?: () => Partial<Record<ConnectionState, number>>
  /** Log lines dropped because the log could not be written (src/cli/line-writer.ts). */
  logLinesDropped?: () => number
}

const PREFIX = 'securelogin_'
/** A login's stages run from tens of microseconds (a TOTP check) to seconds (an fsync on a busy disk). */
const STAGE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** The guard's waits: none, then the base delay (250 ms) doubling up to 8 s. */
const DELAY_BUCKETS = [0, 0.25, 0.5, 1, 2, 4, 8]
const KDF_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const COMPACTION_BUCKETS = [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
/** A scrape does not wait longer than this for the store's figures; the last ones are shown meanwhile. */
const STORE_STATS_TIMEOUT_MS = 2_000

/** A counter's children by label value, made (and shown as 0) before the first event. */
function children<L extends string>(counter: Counter<string>, values: readonly L[]): Record<L, { inc(): void }> {
  const out = {} as Record<L, { inc(): void }>
  for (const value of values) {
    const child = counter.labels(value)
    child.inc(0)
    out[value] = { inc: () => child.inc() }
  }
  return out
}

export class ServerMetrics {
  readonly registry = new Registry()
  readonly #sources: MetricSources = {}
  readonly #logins: Record<LoginOutcome, { inc(): void }>
  readonly #registrations: Record<RegistrationOutcome, { inc(): void }>
  readonly #refused: Record<RefusalCause, { inc(): void }>
  readonly #cut: Record<CutCause, { inc(): void }>
  readonly #locks: Record<LockScope, { inc(): void }>
  readonly #stages: Record<LoginStage, { observe(seconds: number): void }>
  readonly #guardDelay: Histogram<string>
  readonly #kdfWait: Histogram<string>
  readonly #compactionSeconds: Histogram<string>
  readonly #compactions: Record<'ok' | 'failed', { inc(): void }>
  #storeStats: StoreStats | undefined
  /** The read under way: the store's gauges of one scrape share it. */
  #storeRead: Promise<StoreStats | undefined> | undefined

  /** `process`: also the process's CPU, memory, event-loop delay and GC (prom-client's default metrics). */
  constructor(opts: { process?: boolean } = {}) {
    const registers = [this.registry]
    // Each counter has one label, from a fixed list.
    const counter = <L extends string>(name: string, help: string, label: string, values: readonly L[]) =>
      children(new Counter({ name: PREFIX + name, help, labelNames: [label], registers }), values)
    const outcome = 'Logins that ended, by outcome (rate_limited: refused at login_start)'
    this.#logins = counter('logins_total', outcome, 'outcome', LOGIN_OUTCOMES)
    const registrations = 'Registrations that ended, by outcome'
    this.#registrations = counter('registrations_total', registrations, 'outcome', REGISTRATION_OUTCOMES)
    const refused = 'Connections refused before any message, by cause'
    this.#refused = counter('connections_refused_total', refused, 'cause', REFUSAL_CAUSES)
    const cut = 'Accepted connections the server ended for a bound, by cause'
    this.#cut = counter('connections_cut_total', cut, 'cause', CUT_CAUSES)
    const locks = 'Names (or one device of a name) locked by the failed-login guard'
    this.#locks = counter('lockouts_total', locks, 'scope', LOCK_SCOPES)
    const compactions = 'Compactions of the store file, by result'
    this.#compactions = counter('store_compactions_total', compactions, 'result', ['ok', 'failed'] as const)
    const stages = new Histogram({
      name: `${PREFIX}login_stage_seconds`,
      help: 'Server time of a login by stage: tls (accept to handshake done), srp, second_factor, commit',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    })
    this.#stages = {} as Record<LoginStage, { observe(seconds: number): void }>
    for (const stage of LOGIN_STAGES) {
      const child = stages.labels(stage)
      stages.zero({ stage })
      this.#stages[stage] = { observe: (seconds) => child.observe(seconds) }
    }
    this.#guardDelay = new Histogram({
      name: `${PREFIX}guard_delay_seconds`,
      help: 'The wait the failed-login guard put on each failure answer',
      buckets: DELAY_BUCKETS,
      registers,
    })
    this.#kdfWait = new Histogram({
      name: `${PREFIX}kdf_wait_seconds`,
      help: 'How long a KDF call (recovery codes) waited for the KDF thread',
      buckets: KDF_BUCKETS,
      registers,
    })
    this.#compactionSeconds = new Histogram({
      name: `${PREFIX}store_compaction_seconds`,
      help: 'How long each completed compaction of the store file took',
      buckets: COMPACTION_BUCKETS,
      registers,
    })
    const sources = this.#sources
    const gauge = (
      name: string,
      help: string,
      aggregator: Aggregator,
      collect: (this: Gauge<string>) => void | Promise<void>,
      labelNames: string[] = [],
    ) => new Gauge({ name: PREFIX + name, help, labelNames, aggregator, registers, collect })
    // Each worker of --workers counts its own connections and queue: summed. The store and the
    // audit chain are one for all: the largest figure.
    gauge(
      'connections',
      'Open connections by state (handshake, then the conversation state)',
      'sum',
      function () {
        const counts = sources.connections?.()
        for (const state of CONNECTION_STATES) this.set({ state }, counts?.[state] ?? 0)
      },
      ['state'],
    )
    gauge('kdf_queue_length', 'KDF calls waiting for the KDF thread, with the one on it', 'sum', function () {
      this.set(sources.kdfQueue?.() ?? 0)
    })
    gauge('audit_head_sequence', "The audit chain's head entry number as this process last saw it", 'max', function () {
      this.set(sources.auditHead?.() ?? 0)
    })
    const storeStats = () => this.#readStoreStats()
    const storeGauge = (name: string, help: string, read: (stats: StoreStats) => number) =>
      gauge(name, help, 'max', async function () {
        const stats = await storeStats()
        if (stats) this.set(read(stats))
      })
    storeGauge('store_size_bytes', "The store's size: the file, or the database's tables", (s) => s.fileSize)
    storeGauge('store_records', 'Sealed records in the store file (rows on PostgreSQL)', (s) => s.records)
    storeGauge('store_live_keys', 'Live keys in the store (the current state)', (s) => s.live)
    new Counter({
      name: `${PREFIX}log_lines_dropped_total`,
      help: 'Log lines dropped because the log could not be written',
      registers,
      collect() {
        this.reset()
        this.inc(sources.logLinesDropped?.() ?? 0)
      },
    })
    if (opts.process) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX })
      // Gauges that prom-client names `_total`, which Prometheus keeps for counters (promtool
      // says so): counts of libuv handles and requests that say little about a login server.
      for (const name of ['active_handles', 'active_requests', 'active_resources'])
        this.registry.removeSingleMetric(`${PREFIX}nodejs_${name}_total`)
    }
  }

  /** Sets what is read at scrape time (each call adds to or replaces what was set). */
  readFrom(sources: MetricSources): void {
    Object.assign(this.#sources, sources)
  }

  login(outcome: LoginOutcome): void {
    this.#logins[outcome].inc()
  }

  registration(outcome: RegistrationOutcome): void {
    this.#registrations[outcome].inc()
  }

  /** A stage's time, from a `performance.now()` reading taken when it began. */
  stageSince(stage: LoginStage, startMs: number): void {
    this.#stages[stage].observe((performance.now() - startMs) / 1000)
  }

  stageSeconds(stage: LoginStage, seconds: number): void {
    this.#stages[stage].observe(seconds)
  }

  refused(cause: RefusalCause): void {
    this.#refused[cause].inc()
  }

  cut(cause: CutCause): void {
    this.#cut[cause].inc()
  }

  guardDelay(ms: number): void {
    this.#guardDelay.observe(ms / 1000)
  }

  locked(scope: LockScope): void {
    this.#locks[scope].inc()
  }

  kdfWait(ms: number): void {
    this.#kdfWait.observe(ms / 1000)
  }

  /** A compaction ended (`ms` undefined: it failed). */
  compacted(ms: number | undefined): void {
    if (ms === undefined) return this.#compactions.failed.inc()
    this.#compactions.ok.inc()
    this.#compactionSeconds.observe(ms / 1000)
  }

  /** The text Prometheus reads, and its Content-Type. */
  async text(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }

  /** The store's figures, or the last ones when it does not answer in time (a database down). */
  #readStoreStats(): Promise<StoreStats | undefined> {
    this.#storeRead ??= this.#storeStatsNow().finally(() => (this.#storeRead = undefined))
    return this.#storeRead
  }

  async #storeStatsNow(): Promise<StoreStats | undefined> {
    const store = this.#sources.store
    if (!store) return this.#storeStats
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>(
      (resolve) => (timer = setTimeout(() => resolve(undefined), STORE_STATS_TIMEOUT_MS)),
    )
    try {
      this.#storeStats = (await Promise.race([store.stats(), late])) ?? this.#storeStats
    } catch {
      // A closed store or an unreachable database: /readyz says so; the figures stay as they were.
    } finally {
      clearTimeout(timer)
    }
    return this.#storeStats
  }
}
