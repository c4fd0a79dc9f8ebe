// How the TUI shows times and counts. Times are shown in the terminal's local time zone.

const pad = (n: number) => String(n).padStart(2, '0')

/** "2026-05-01 14:03" (local time), with seconds when asked; an unreadable time is shown as given. */
export function formatTime(iso: string, opts: { seconds?: boolean } = {}): string {
  const at = new Date(iso)
  if (Number.isNaN(at.getTime())) return iso
  const date = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}${opts.seconds ? `:${pad(at.getSeconds())}` : ''}`
  return `${date} ${time}`
}

/** "in 30 min", "in 11 h 59 min", "expired": how long until `iso`, to the nearest minute. */
export function formatRemaining(iso: string, now: number): string {
  const ms = Date.parse(iso) - now
  if (!(ms > 0)) return 'expired'
  const minutes = Math.round(ms / 60_000)
  if (minutes === 0) return 'in under a minute'
  if (minutes < 120) return `in ${minutes} min`
  const hours = Math.floor(minutes / 60)
  return minutes % 60 ? `in ${hours} h ${minutes % 60} min` : `in ${hours} h`
}

/** The earlier of two ISO times. */
export function earlier(a: string, b: string): string {
  return Date.parse(a) <= Date.parse(b) ? a : b
}

/** "1 session", "3 sessions". */
export function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`
}
