import { fstatSync, writeSync } from 'node:fs'
import { isatty } from 'node:tty'
import { createJsonLogger, createTextLogger } from '../server/logger.js'

// The server's log lines, written together at most every FLUSH_MS: at hundreds of logins a
// second each login logs three lines, and a write to a pipe or a terminal is a synchronous
// system call in Node, with the reader woken for each (bench/login.mjs measured about 1 ms of
// server time per login when every line was its own write, and 0.18 ms with one write per turn
// of the event loop). Lines keep their order; what is pending is written at exit.
//
// A log that cannot be written never stops the server: a write that fails (a reader that closed
// its end: EPIPE; a full disk: ENOSPC) or a reader that stopped reading is told once on stderr,
// and the lines are dropped and counted until the log takes them again; then a line with the
// count goes first (docs/architecture.md, "A log that cannot be written").

const PIPE_BUF = 4096
/** How long a line may wait for others to share its write. */
export const FLUSH_MS = 20
/**
 * What a stream may hold unwritten before lines are dropped: a pipe whose reader stopped
 * reading. Node does not block on a full pipe (libuv makes it non-blocking) but keeps what it
 * could not write in memory, without a bound; 4 MiB is several seconds of logins at peak.
 */
export const MAX_BUFFERED = 4 * 1024 * 1024
/** Failures no later write gets over: the reader has gone, or the stream has ended. */
const FOR_GOOD = new Set(['EPIPE', 'EBADF', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END'])

export interface LineWriter {
  write(line: string): void
  flush(): void
  /** Flushes, and says on stderr how many lines were dropped, if any (the log cannot say it). */
  end(): void
  /** Lines dropped so far because the log could not be written. */
  dropped(): number
  /** Why the log cannot be written now (an error code, EAGAIN for a reader that does not read), or undefined. */
  failing(): string | undefined
}

export interface LineWriterOptions {
  /**
   * The log line that reports dropped lines, written first once the log takes lines again
   * (formatted by the caller's logger: the writer does not know the log's format).
   */
  droppedLine?: (count: number, code: string) => string
  /** Names the process in what is said on stderr (`worker 2`). */
  who?: string
  /** Where what goes to stderr goes: tests. */
  note?: (text: string) => void
  /** Bytes a stream may hold unwritten before lines are dropped (MAX_BUFFERED). */
  maxBuffered?: number
}

/** What the writer needs of a stream: process.stdout's, or a test's stand-in. */
export interface LogStream {
  write(chunk: string, callback: (error?: Error | null) => void): boolean
  on(event: 'error', listener: (error: Error) => void): unknown
  /** False once the stream can take no more writes (destroyed, ended, failed for good). */
  readonly writable: boolean
  /** Bytes taken but not yet written. */
  readonly writableLength: number
}

/** A file descriptor, or a stream whose writes may fail in every way a stream can. */
export type LogOutput = LogStream | { fd: number }

/**
 * Where the server's log goes: stdout. On a file (or a device such as /dev/null) Node's own
 * stdout writes with a blocking writeSync, as here, but one failed write (a full disk) leaves it
 * failed for good; written directly, a disk that has room again takes the log again. On a pipe
 * or a terminal: process.stdout (a pipe is made non-blocking by it; measured in architecture.md).
 */
export function logOutput(): LogOutput {
  try {
    const stat = fstatSync(1)
    if (stat.isFile() || (stat.isCharacterDevice() && !isatty(1))) return { fd: 1 }
  } catch {
    // No stdout at all: the stream's writes fail and are counted like any other.
  }
  return process.stdout
}

/** Writes to stderr, which may be gone too: never throws, never leaves an 'error' unheard. */
export function writeStderr(text: string): void {
  ignoreStderrErrors()
  try {
    process.stderr.write(text)
  } catch {
    // Nowhere left to say it.
  }
}

let stderrGuarded = false
/** A stderr whose reader has gone emits 'error' (EPIPE), which unheard would end the process. */
export function ignoreStderrErrors(): void {
  if (stderrGuarded) return
  stderrGuarded = true
  process.stderr.on('error', () => {})
}

export function createLineWriter(output: LogOutput, opts: LineWriterOptions = {}): LineWriter {
  const prefix = `securelogin: ${opts.who === undefined ? '' : `${opts.who}: `}`
  const note = opts.note ?? writeStderr
  const maxBuffered = opts.maxBuffered ?? MAX_BUFFERED
  const stream = 'fd' in output ? undefined : output
  let pending: string[] = []
  let scheduled = false
  let dropped = 0
  /** Dropped lines no log line has reported yet, and how many of them a write under way reports. */
  let unreported = 0
  let reporting = 0
  /** The reason of the current failure, or undefined while the log is written. */
  let failure: string | undefined
  /** The last failure's reason (for the report of its lines once the log is written again). */
  let lastCode = ''
  let forGood = false
  /** Stream writes whose callback has not come yet. */
  let inFlight = 0
  /** A write that failed part-way left half a line: the next write starts on a new line. */
  let cut = false

  // Every failure is seen through its write's callback: an 'error' event unheard would throw.
  stream?.on('error', () => {})

  const fail = (error: unknown, lines: number) => {
    const code = errorCode(error)
    dropped += lines
    unreported += lines
    lastCode = code
    if (FOR_GOOD.has(code) || stream?.writable === false) forGood = true
    if (failure !== undefined) return
    failure = code
    note(`${prefix}the log cannot be written (${code}): dropping its lines until it can; counting them\n`)
  }
  /** Lines not written at all: counted as dropped without a write. */
  const drop = (lines: number, code: string) => fail(Object.assign(new Error(code), { code }), lines)

  /**
   * One write of at most PIPE_BUF bytes: `lines` lines of the log, after the report of
   * `report` dropped lines when that is not 0 (then the chunk's first line).
   */
  const send = (chunk: string, lines: number, report: number) => {
    reporting += report
    const reported = () => {
      reporting -= report
      unreported -= report
      failure = undefined
    }
    if (stream === undefined) {
      const prefixed = cut
      const bytes = Buffer.from(prefixed ? `\n${chunk}` : chunk)
      let at = 0
      try {
        while (at < bytes.length) at += writeSync((output as { fd: number }).fd, bytes, at)
        cut = false
        reported()
      } catch (error) {
        // Part written (a disk that filled up mid-write): the whole lines got there.
        let whole = bytes.subarray(0, at).filter((byte) => byte === 0x0a).length - (prefixed && at > 0 ? 1 : 0)
        reporting -= report
        if (report > 0 && whole > 0) {
          unreported -= report
          whole--
        }
        cut = cut || at > 0
        fail(error, lines - whole)
      }
      return
    }
    inFlight++
    try {
      stream.write(chunk, (error?: Error | null) => {
        inFlight--
        if (!error) return reported()
        reporting -= report
        fail(error, lines)
      })
    } catch (error) {
      // A stream that throws instead of calling back.
      inFlight--
      reporting -= report
      fail(error, lines)
    }
  }

  const flush = () => {
    scheduled = false
    if (pending.length === 0) return
    const lines = pending
    pending = []
    if (forGood) return void drop(lines.length, lastCode)
    if (stream !== undefined) {
      // A reader that stopped reading: drop rather than hold without a bound.
      if (stream.writableLength >= maxBuffered) return void drop(lines.length, 'EAGAIN')
      // Failing, with the last try's answer still to come: it says whether to try again.
      if (failure !== undefined && inFlight > 0) return void drop(lines.length, failure)
    }
    // Lines were dropped: the log says how many before the next of its lines.
    const report = opts.droppedLine ? unreported - reporting : 0
    if (report > 0) lines.unshift(opts.droppedLine!(report, lastCode))
    // Several server processes (`--workers`) may share one pipe: a write of at most PIPE_BUF
    // (4096) bytes reaches it whole, so no line is cut by another process's.
    let chunk = ''
    let bytes = 0
    let count = 0
    let withReport = report
    for (const line of lines) {
      const size = Buffer.byteLength(line) + 1
      if (chunk !== '' && bytes + size > PIPE_BUF) {
        send(chunk, withReport > 0 ? count - 1 : count, withReport)
        withReport = 0
        chunk = ''
        bytes = 0
        count = 0
      }
      chunk += `${line}\n`
      bytes += size
      count++
    }
    send(chunk, withReport > 0 ? count - 1 : count, withReport)
  }
  process.once('exit', flush)
  return {
    write(line) {
      // One write is one line whoever formatted it: a line break inside would let what follows
      // it pass for a line of the server's own (the loggers escape their fields; this is the floor).
      pending.push(/[\r\n]/.test(line) ? line.replace(/\r/g, '\\r').replace(/\n/g, '\\n') : line)
      if (scheduled) return
      scheduled = true
      setTimeout(flush, FLUSH_MS).unref()
    },
    flush,
    end() {
      flush()
      if (dropped > 0) note(`${prefix}${dropped} log line${dropped === 1 ? ' was' : 's were'} dropped (${lastCode})\n`)
    },
    dropped: () => dropped,
    failing: () => failure,
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'EIO'
}

/**
 * The report of dropped lines in the log's own format: what `droppedLine` writes for the server
 * (JSON or text), naming the worker whose lines they were.
 */
export function droppedLinesReport(json: boolean, worker?: number): (count: number, code: string) => string {
  return (count, code) => {
    let line = ''
    const format = (json ? createJsonLogger : createTextLogger)((formatted) => (line = formatted))
    format.log(
      'warn',
      'log_lines_dropped',
      { ...(worker === undefined ? {} : { worker }), count, code },
      `${worker === undefined ? '' : `worker ${worker}: `}dropped ${count} log line${count === 1 ? '' : 's'}: ` +
        `the log could not be written (${code})`,
    )
    return line
  }
}
