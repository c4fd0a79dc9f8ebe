import { SecureLoginError } from '../protocol/errors.js'
import type { AuditEvent } from './audit-log.js'

// A refused request costs its sender one frame and the server, before these budgets, one audit
// entry in the store: refused registrations grew it by 0.9 GB an hour from one address. Every
// refusal now spends a token of its address's bucket (and, for a logged-in call, of its
// account's); with the bucket empty the request is answered ERR_RATE_LIMITED before anything
// reaches the store, and the audit log holds one entry with a count for each run of identical
// refusals. Registrations that are accepted spend a token of a slower bucket of their own: each
// costs the server ten recovery-code hashes.

export interface BudgetLimits {
  /** Refused requests one address, or one account, may make in a burst... */
  refusals: number
  /** ...refilled at that many per this long. */
  refusalPeriodMs: number
  /** Registrations one address may start in a burst (open or with a token)... */
  registrations: number
  /** ...refilled at that many per this long. */
  registrationPeriodMs: number
  /** Logins one address may start and leave without a proof (a timing prober's probes)... */
  probes: number
  /** ...refilled at that many per this long. */
  probePeriodMs: number
  /** Identical refusals within this long are audited once, then once more with their count. */
  auditWindowMs: number
}

export const DEFAULT_BUDGETS: BudgetLimits = {
  refusals: 30,
  refusalPeriodMs: 60_000,
  registrations: 20,
  registrationPeriodMs: 60 * 60_000,
  probes: 30,
  probePeriodMs: 60_000,
  auditWindowMs: 60_000,
}

/** Remembered buckets and open audit runs, at most this many each (the oldest go first). */
const MEMORY_ENTRIES = 100_000

/** Token buckets by key: `capacity` tokens, refilled continuously at `capacity` per `periodMs`. */
export class Buckets {
  readonly #capacity: number
  readonly #periodMs: number
  readonly #now: () => number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(capacity: number, periodMs: number, now: () => number) {
    this.#capacity = capacity
    this.#periodMs = periodMs
    this.#now = now
  }

  /** 0 when `key` has a token left, else how long until it has one (ms). Takes nothing. */
  waitFor(key: string): number {
    const { tokens } = this.#refilled(key)
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * this.#periodMs) / this.#capacity)
  }

  /** Spends one token of `key` (never below zero). */
  take(key: string): void {
    const bucket = this.#refilled(key)
    bucket.tokens = Math.max(0, bucket.tokens - 1)
    this.#buckets.delete(key)
    this.#buckets.set(key, bucket)
    if (this.#buckets.size > MEMORY_ENTRIES) this.#buckets.delete(this.#buckets.keys().next().value!)
  }

  /** Gives back a token spent on something that turned out to be allowed (never above capacity). */
  give(key: string): void {
    const bucket = this.#refilled(key)
    if (bucket.tokens + 1 >= this.#capacity) this.#buckets.delete(key)
    else this.#buckets.set(key, { tokens: bucket.tokens + 1, at: bucket.at })
  }

  #refilled(key: string): { tokens: number; at: number } {
    const now = this.#now()
    const bucket = this.#buckets.get(key)
    if (!bucket) return { tokens: this.#capacity, at: now }
    // A clock stepped back earns nothing and spends nothing.
    const elapsed = Math.max(0, now - bucket.at)
    const tokens = Math.min(this.#capacity, bucket.tokens + (elapsed * this.#capacity) / this.#periodMs)
    if (tokens >= this.#capacity) this.#buckets.delete(key)
    return { tokens, at: Math.max(now, bucket.at) }
  }
}

export function rateLimited(what: string, waitMs: number): SecureLoginError {
  return new SecureLoginError('ERR_RATE_LIMITED', `too many ${what}`, {
    hint: `try again in ${Math.max(1, Math.ceil(waitMs / 1000))} s`,
  })
}

interface Run {
  event: AuditEvent
  repeated: number
  timer: NodeJS.Timeout
}

/**
 * Audits refusals without letting their number grow the log: the first of a run of identical
 * refusals (same action, actor, target, address and reason) is written at once; the ones that
 * follow within the window are counted, and the count is written as one entry when the window
 * ends (or at shutdown), with `repeated` in its details.
 */
export class RefusalAudit {
  readonly #write: (event: AuditEvent) => void
  readonly #windowMs: number
  readonly #runs = new Map<string, Run>()

  constructor(write: (event: AuditEvent) => void, windowMs: number) {
    this.#write = write
    this.#windowMs = windowMs
  }

  note(event: AuditEvent): void {
    const key = JSON.stringify([event.action, event.actor, event.target, event.address, event.details])
    const run = this.#runs.get(key)
    if (run) {
      run.repeated++
      return
    }
    this.#write(event)
    const timer = setTimeout(() => this.#close(key), this.#windowMs).unref()
    this.#runs.set(key, { event, repeated: 0, timer })
    if (this.#runs.size > MEMORY_ENTRIES) this.#close(this.#runs.keys().next().value!)
  }

  /** Writes every open run's count now (before the store closes). */
  flush(): void {
    for (const key of [...this.#runs.keys()]) this.#close(key)
  }

  #close(key: string): void {
    const run = this.#runs.get(key)
    if (!run) return
    this.#runs.delete(key)
    clearTimeout(run.timer)
    if (run.repeated > 0) this.#write({ ...run.event, details: { ...run.event.details, repeated: run.repeated } })
  }
}

/** The budgets of one server: where a refusal or a registration is counted and checked. */
export class Budgets {
  readonly #refusals: Buckets
  readonly #registrations: Buckets
  readonly #probes: Buckets
  readonly audit: RefusalAudit

  constructor(limits: BudgetLimits, now: () => number, write: (event: AuditEvent) => void) {
    this.#refusals = new Buckets(limits.refusals, limits.refusalPeriodMs, now)
    this.#registrations = new Buckets(limits.registrations, limits.registrationPeriodMs, now)
    this.#probes = new Buckets(limits.probes, limits.probePeriodMs, now)
    this.audit = new RefusalAudit(write, limits.auditWindowMs)
  }

  /**
   * Throws ERR_RATE_LIMITED (and audits it, counted) when any of `keys` (`address:...`,
   * `account:...`) has used its refusals; `event` is what the refusal would be audited as.
   */
  checkRefusals(keys: string[], event: AuditEvent): void {
    this.#refuseWhenSpent(this.#refusals, keys, event, 'refused requests')
  }

  /** Counts one refusal against each key; `event`, when given, is audited (identical ones counted). */
  refused(keys: string[], event?: AuditEvent): void {
    for (const key of keys) this.#refusals.take(key)
    if (event) this.audit.note(event)
  }

  /**
   * A login_start spends one of its address's probes, and its login_proof gives it back
   * (`proved`): only logins left without a proof count, such as a prober timing challenges, who
   * otherwise pays nothing (a proof, even a wrong one, is counted by the guard). Throws
   * ERR_RATE_LIMITED (audited, counted) when the address has none left.
   */
  takeProbe(address: string, event: AuditEvent): void {
    this.#refuseWhenSpent(this.#probes, [address], event, 'logins started and left without a proof from this address')
    this.#probes.take(address)
  }

  proved(address: string): void {
    this.#probes.give(address)
  }

  /** Spends a registration of `address`, or throws ERR_RATE_LIMITED (audited, counted). */
  takeRegistration(address: string, event: AuditEvent): void {
    this.#refuseWhenSpent(this.#registrations, [address], event, 'registrations from this address')
    this.#registrations.take(address)
  }

  /** ERR_RATE_LIMITED, audited as a rate-limited `event` (counted), when any of `keys` has no token. */
  #refuseWhenSpent(buckets: Buckets, keys: string[], event: AuditEvent, what: string): void {
    const wait = Math.max(...keys.map((key) => buckets.waitFor(key)))
    if (wait === 0) return
    this.audit.note({ ...event, target: null, details: { reason: 'rate limited' } })
    throw rateLimited(what, wait)
  }
}
