// The server's log. Fields are plain values chosen by the caller; nothing secret is ever passed
// here (no password, verifier, TOTP secret, session key or passphrase).
export type LogFields = Record<string, string | number | boolean | undefined>
export type LogLevel = 'info' | 'warn' | 'error'

export interface Logger {
  /** `text` is the human line for text mode; without it the event and its fields are printed. */
  log(level: LogLevel, event: string, fields?: LogFields, text?: string): void
}

export function createTextLogger(write: (line: string) => void): Logger {
  return {
    log(level, event, fields = {}, text) {
      if (text !== undefined) return write(escapeBreaks(level === 'info' ? text : `${level}: ${text}`))
      write(formatTextLine(level, event, fields))
    },
  }
}

// A text line is `[level:] event key=value ...`, and it must stay one line that reads back as
// exactly its fields whatever a value holds: values come from peers too (a protocol error's
// reason quotes the JSON key a client sent, newlines and all). So an event, key or value is
// written bare only when it holds nothing but printable characters other than white space, `=`,
// `"` and `\`; anything else is written as a JSON string literal with every control, format
// (bidirectional overrides, zero-width) and line-separator character escaped, which a reader
// undoes with JSON.parse. Splitting a line at the spaces outside quotes gives its parts.
const BARE = /^[^\s"=\\\p{C}\p{Z}]+$/u
const UNSAFE = /["\\\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu
const BREAKS = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu
const SHORT: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

const escapeChar = (char: string) =>
  SHORT[char] ??
  Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')

/** One part of a text line: bare, or quoted and escaped (see above). */
export function quoteLogValue(value: unknown): string {
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value)
  return BARE.test(text) ? text : `"${text.replace(UNSAFE, escapeChar)}"`
}

/** The text line of one log call without a human `text`. */
export function formatTextLine(level: LogLevel, event: string, fields: LogFields): string {
  const pairs = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${quoteLogValue(k)}=${quoteLogValue(v)}`)
  return [level === 'info' ? '' : `${level}:`, quoteLogValue(event), ...pairs].filter(Boolean).join(' ')
}

/**
 * A human line (the operator's own paths and addresses) is not quoted, but still cannot break
 * in two or hide text: control, format and line-separator characters are escaped.
 */
function escapeBreaks(text: string): string {
  return text.replace(BREAKS, escapeChar)
}

export function createJsonLogger(write: (line: string) => void, now: () => number = Date.now): Logger {
  return {
    log(level, event, fields = {}) {
      write(JSON.stringify({ event, ...fields, level, time: new Date(now()).toISOString() }))
    },
  }
}

/** Collects entries, for tests and for reports made before the log's first line. */
export function createMemoryLogger(): Logger & {
  entries: Array<{ level: LogLevel; event: string; fields: LogFields; text?: string }>
} {
  const entries: Array<{ level: LogLevel; event: string; fields: LogFields; text?: string }> = []
  return {
    entries,
    log(level, event, fields = {}, text) {
      entries.push(text === undefined ? { level, event, fields } : { level, event, fields, text })
    },
  }
}
