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
/**
 * The event loop delay histogram samples with a timer this often; what it records is the time
 * between two firings, the interval included (an idle loop reads about 10.2 ms), so the interval
 * is taken off to give the delay alone.
 */
const LOOP_SAMPLE_MS = 10
const loopDelayMs = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS)

export class StageTimes {
  readonly #ns = new Map<Stage, bigint>(STAGES.map((stage) => [stage, 0n]))
  readonly #count = new Map<Stage, number>(STAGES.map((stage) => [stage, 0]))
  readonly #loop: IntervalHistogram

  constructor() {
    this.#loop = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS })
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
    fields['loopDelayP50Ms'] = loopDelayMs(this.#loop.percentile(50))
    fields['loopDelayP99Ms'] = loopDelayMs(this.#loop.percentile(99))
    fields['loopDelayMaxMs'] = loopDelayMs(this.#loop.max)
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
