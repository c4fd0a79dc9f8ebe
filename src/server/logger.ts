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
      if (text !== undefined) return write(level === 'info' ? text : `${level}: ${text}`)
      const pairs = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${String(v)}`)
      write([level === 'info' ? '' : `${level}:`, event, ...pairs].filter(Boolean).join(' '))
    },
  }
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
