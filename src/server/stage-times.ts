// Where a login's server time goes, for the login benchmark (hidden `--stage-times`): SRP and
// TOTP are synchronous CPU work, so their wall time is their CPU time; `store` is the login's
// commit (session record and audit entry), whose wall time includes waiting for the fsync.
// With them, the event loop's delay (perf_hooks): how late the server gets to what is ready,
// which a long synchronous step (a KDF on the loop, say) would show. Off by default: then
// ctx.stages is undefined and nothing is measured.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

export type Stage = 'srp' | 'totp' | 'store'
const STAGES: readonly Stage[] = ['srp', 'totp', 'store']

export class StageTimes {
  readonly #ns = new Map<Stage, bigint>(STAGES.map((stage) => [stage, 0n]))
  readonly #count = new Map<Stage, number>(STAGES.map((stage) => [stage, 0]))
  readonly #loop: IntervalHistogram

  constructor() {
    this.#loop = monitorEventLoopDelay({ resolution: 10 })
    this.#loop.enable()
  }

  /** The event loop's delay since the last call (ms), then starts a new period. */
  loopDelay(): { p50: number; p99: number; max: number } {
    const delay = { p50: this.#loop.percentile(50) / 1e6, p99: this.#loop.percentile(99) / 1e6, max: this.#loop.max / 1e6 }
    this.#loop.reset()
    return delay
  }

  add(stage: Stage, ns: bigint): void {
    this.#ns.set(stage, this.#ns.get(stage)! + ns)
    this.#count.set(stage, this.#count.get(stage)! + 1)
  }

  /** Totals so far: milliseconds and how many times each stage ran. */
  snapshot(): Record<Stage, { ms: number; count: number }> {
    return Object.fromEntries(STAGES.map((stage) => [stage, { ms: Number(this.#ns.get(stage)!) / 1e6, count: this.#count.get(stage)! }])) as Record<Stage, { ms: number; count: number }>
  }
}

/** Runs `work`, adding its time to `stage` when measuring. */
export function timed<T>(stages: StageTimes | undefined, stage: Stage, work: () => T): T {
  if (!stages) return work()
  const start = process.hrtime.bigint()
  const result = work()
  if (result instanceof Promise) {
    return result.finally(() => stages.add(stage, process.hrtime.bigint() - start)) as T
  }
  stages.add(stage, process.hrtime.bigint() - start)
  return result
}
