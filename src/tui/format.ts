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

/** How many terminal columns `text` takes: one a character (the TUI's table text is names, times and addresses). */
export function textWidth(text: string): number {
  // Most of it is ASCII: counting code points costs an array a string, and the audit log is long.
  return /^[\x20-\x7e]*$/.test(text) ? text.length : [...text].length
}

/** `text` cut to `width` columns, its last one an ellipsis when anything was cut. */
export function truncate(text: string, width: number): string {
  const chars = [...text]
  if (chars.length <= width) return text
  return width <= 0 ? '' : `${chars.slice(0, width - 1).join('')}…`
}

/** One column of a table, as fitColumns weighs it. */
export interface ColumnFit {
  head: string
  /** The widest it grows to; longer text is cut with an ellipsis. */
  max: number
  /** How narrow it may be cut while still useful; omitted: it is not cut (a time). */
  min?: number
  /** Columns that may go when the table is too wide go lowest first; omitted: the column stays. */
  drop?: number
}

/** Spaces between two columns. */
export const COLUMN_GAP = 2

/**
 * The width of each column (0: left out) so the table fits `width` terminal columns, gaps
 * included: each column as wide as its widest text (up to its max); when that is too wide, the
 * low-value columns go first (as gh and k9s do), then the remaining ones are cut toward their
 * minimum, widest first. In a terminal too narrow even for that, every column is cut further and
 * then the rightmost ones go, so no line is ever wider than the terminal (a wider line wraps,
 * and the lines Ink erases on the next frame no longer match the ones on screen).
 */
export function fitColumns(
  columns: readonly ColumnFit[],
  rows: readonly (readonly string[])[],
  width: number,
): number[] {
  const natural = columns.map((column, i) => {
    let widest = textWidth(column.head)
    for (const row of rows) widest = Math.max(widest, textWidth(row[i] ?? ''))
    return Math.min(column.max, widest)
  })
  const widths = [...natural]
  const total = () => {
    const shown = widths.filter((w) => w > 0)
    return shown.reduce((sum, w) => sum + w, 0) + COLUMN_GAP * Math.max(0, shown.length - 1)
  }
  const droppable = columns
    .map((column, i) => ({ i, rank: column.drop }))
    .filter((c): c is { i: number; rank: number } => c.rank !== undefined && widths[c.i]! > 0)
    .sort((a, b) => a.rank - b.rank)
  for (const { i } of droppable) {
    if (total() <= width) break
    widths[i] = 0
  }
  // Cut toward each column's minimum; in a terminal too narrow for the minimums, the columns that
  // may be cut go down to two characters and an ellipsis before a time is touched, then anything
  // to one column. The widest first at each step, so the cut is shared.
  const floors = [
    (i: number) => Math.min(natural[i]!, columns[i]!.min ?? natural[i]!),
    (i: number) => Math.min(natural[i]!, columns[i]!.min === undefined ? natural[i]! : 3),
    () => 1,
  ]
  for (const floor of floors) {
    while (total() > width) {
      let widest = -1
      for (let i = 0; i < widths.length; i++) {
        if (widths[i]! > floor(i) && (widest < 0 || widths[i]! - floor(i) > widths[widest]! - floor(widest))) widest = i
      }
      if (widest < 0) break
      widths[widest] = widths[widest]! - 1
    }
  }
  for (let i = widths.length - 1; i > 0 && total() > width; i--) widths[i] = 0
  if (total() > width) widths[0] = Math.max(0, width)
  return widths
}
