// Where a login's server time goes, for the login benchmark (hidden `--stage-times`): SRP and
// TOTP are synchronous CPU work, so their wall time is their CPU time; `store` is the login's
// commit (session record and audit entry), whose wall time includes waiting for the fsync.
// With them, the event loop's delay (perf_hooks): how late the server gets to what is ready,
// which a long synchronous step (a KDF on the loop, say) would show. Off by default: then
// ctx.stages is undefined and nothing is measured.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { LogFields } from './logger.js'

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

  add(stage: Stage, ns: bigint): void {
    this.#ns.set(stage, this.#ns.get(stage)! + ns)
    this.#count.set(stage, this.#count.get(stage)! + 1)
  }

  /**
   * The log fields of a `stage_times` line: each stage's total milliseconds and count so far
   * (`srpMs`, `srpCount`, ...), and the event loop's delay since the last report, which starts a
   * new period.
   */
  report(): LogFields {
    const fields: LogFields = {}
    for (const stage of STAGES) {
      fields[`${stage}Ms`] = Number(this.#ns.get(stage)!) / 1e6
      fields[`${stage}Count`] = this.#count.get(stage)!
    }
    fields['loopDelayP50Ms'] = this.#loop.percentile(50) / 1e6
    fields['loopDelayP99Ms'] = this.#loop.percentile(99) / 1e6
    fields['loopDelayMaxMs'] = this.#loop.max / 1e6
    this.#loop.reset()
    return fields
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
