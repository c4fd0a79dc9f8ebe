// The server's log lines, written together at most every FLUSH_MS: at hundreds of logins a
// second each login logs three lines, and a write to a pipe or a terminal is a synchronous
// system call in Node, with the reader woken for each (bench/login.mjs measured about 1 ms of
// server time per login when every line was its own write, and 0.18 ms with one write per turn
// of the event loop). Lines keep their order; what is pending is written at exit.

const PIPE_BUF = 4096
/** How long a line may wait for others to share its write. */
export const FLUSH_MS = 20

export interface LineWriter {
  write(line: string): void
  flush(): void
}

export function createLineWriter(stream: NodeJS.WritableStream): LineWriter {
  let pending: string[] = []
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (pending.length === 0) return
    const lines = pending
    pending = []
    // Several server processes (`--workers`) may share one pipe: a write of at most PIPE_BUF
    // (4096) bytes reaches it whole, so no line is cut by another process's.
    let chunk = ''
    let bytes = 0
    for (const line of lines) {
      const size = Buffer.byteLength(line) + 1
      if (chunk !== '' && bytes + size > PIPE_BUF) {
        stream.write(chunk)
        chunk = ''
        bytes = 0
      }
      chunk += `${line}\n`
      bytes += size
    }
    stream.write(chunk)
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
  }
}
