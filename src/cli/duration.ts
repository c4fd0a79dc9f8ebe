import { usageError } from './output.js'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "90s", "30m", "12h", "7d" -> milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(value.trim())
  if (!match)
    throw usageError(
      `${flag} must be a number and a unit (s, m, h or d), got ${JSON.stringify(value)}`,
      `for example ${flag} 30m`,
    )
  return Number(match[1]) * UNITS[match[2]!]!
}

/** "in 29 min", "in 11 h 58 min", "ended": how far `iso` is from now, for people. */
export function fromNow(iso: string, nowMs = Date.now()): string {
  const ms = Date.parse(iso) - nowMs
  if (ms <= 0) return 'ended'
  const minutes = Math.round(ms / 60_000)
  if (minutes < 60) return `in ${minutes} min`
  return `in ${Math.floor(minutes / 60)} h ${minutes % 60} min`
}
