import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { createLineWriter, droppedLinesReport, FLUSH_MS, type LogStream } from '../../src/cli/line-writer.js'
import { makeTempDir } from '../helpers/env.js'

// The server's log writer (src/cli/line-writer.ts): lines in order, written together at most every
// FLUSH_MS; a log that cannot be written is told once on stderr, and its lines dropped and counted.

function sink() {
  const writes: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      writes.push(String(chunk))
      done()
    },
  })
  return { writes, stream }
}

/**
 * A stand-in for stdout on a pipe: each write answers on a later turn, failing with the code
 * `failing()` gives, or kept. Node's Writable stays failed after one failed write; stdout's
 * stream does not (it fails the next write again, or writes it), and neither does this one.
 */
function flaky(failing: () => string | undefined) {
  const writes: string[] = []
  const stream: LogStream = {
    writable: true,
    writableLength: 0,
    on: () => stream,
    write(chunk, callback) {
      const code = failing()
      if (code === undefined) writes.push(chunk)
      setImmediate(() => callback(code === undefined ? null : Object.assign(new Error(`write ${code}`), { code })))
      return true
    },
  }
  return { writes, stream }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))
const nextFlush = () => new Promise((resolve) => setTimeout(resolve, FLUSH_MS + 5))
const report = (count: number, code: string) => `dropped ${count} (${code})`
/**
 * Writes what is pending now and waits for the stream's answers (flaky() answers on the next
 * turn): no timer races the writer's own, so a loaded machine cannot reorder the steps.
 */
const settle = async (lines: { flush(): void }) => {
  lines.flush()
  await nextTurn()
  await nextTurn()
}

const temp = await makeTempDir('line-writer')
afterAll(() => temp.remove())

describe('createLineWriter', () => {
  it('writes the lines of FLUSH_MS as one write, in order, each ending in a newline', async () => {
    const { writes, stream } = sink()
    const lines = createLineWriter(stream)
    lines.write('one')
    lines.write('two')
    await nextTurn()
    // Lines of later turns wait for the same write.
    lines.write('three')
    expect(writes).toEqual([])
    await nextFlush()
    expect(writes).toEqual(['one\ntwo\nthree\n'])
    lines.write('four')
    await nextFlush()
    expect(writes).toEqual(['one\ntwo\nthree\n', 'four\n'])
  })

  it('flush() writes what is pending at once, and nothing twice', async () => {
    const { writes, stream } = sink()
    const lines = createLineWriter(stream)
    lines.write('stopped')
    lines.flush()
    expect(writes).toEqual(['stopped\n'])
    await nextTurn()
    lines.flush()
    expect(writes).toEqual(['stopped\n'])
  })

  it('keeps one write one line: a line break inside is written escaped', async () => {
    const { writes, stream } = sink()
    const lines = createLineWriter(stream)
    lines.write('warn: protocol_error reason=x\nlogin_ok user=sysadm\r')
    lines.write('next')
    await nextFlush()
    expect(writes).toEqual(['warn: protocol_error reason=x\\nlogin_ok user=sysadm\\r\nnext\n'])
  })

  it('writes at most 4096 bytes at once, whole lines only', async () => {
    const { writes, stream } = sink()
    const lines = createLineWriter(stream)
    const line = 'x'.repeat(999)
    for (let i = 0; i < 10; i++) lines.write(line)
    lines.flush()
    expect(writes.map((w) => w.length)).toEqual([4000, 4000, 2000])
  })
})

describe('a log that cannot be written', () => {
  it('a reader gone (EPIPE): no throw, no unhandled error, one note on stderr, every line after counted', async () => {
    const notes: string[] = []
    let writes = 0
    const stream = new Writable({
      write(_chunk, _encoding, done) {
        writes++
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
      },
    })
    const lines = createLineWriter(stream, { note: (text) => notes.push(text), droppedLine: report })
    lines.write('one')
    lines.write('two')
    lines.flush()
    await nextTurn()
    expect(lines.dropped()).toBe(2)
    expect(lines.failing()).toBe('EPIPE')
    // A closed reader never reads again: later lines are counted without a write.
    for (let i = 0; i < 5; i++) {
      lines.write(`line ${i}`)
      await nextFlush()
    }
    expect(writes).toBe(1)
    expect(lines.dropped()).toBe(7)
    expect(notes).toEqual([
      'securelogin: the log cannot be written (EPIPE): dropping its lines until it can; counting them\n',
    ])
    lines.end()
    expect(notes.at(-1)).toBe('securelogin: 7 log lines were dropped (EPIPE)\n')
  })

  it('a disk full for a while (ENOSPC): lines dropped and counted, then the count, first, once it can write', async () => {
    const notes: string[] = []
    let code: string | undefined
    const { writes, stream } = flaky(() => code)
    const lines = createLineWriter(stream, { note: (text) => notes.push(text), droppedLine: report, who: 'worker 3' })
    lines.write('before')
    await settle(lines)
    code = 'ENOSPC'
    lines.write('lost 1')
    lines.write('lost 2')
    await settle(lines)
    lines.write('lost 3')
    await settle(lines)
    expect(lines.failing()).toBe('ENOSPC')
    expect(lines.dropped()).toBe(3)
    code = undefined
    lines.write('after')
    await settle(lines)
    expect(writes).toEqual(['before\n', 'dropped 3 (ENOSPC)\nafter\n'])
    expect(lines.failing()).toBeUndefined()
    expect(lines.dropped()).toBe(3)
    // Once for the failure; the count is the log's to tell.
    expect(notes).toEqual([
      'securelogin: worker 3: the log cannot be written (ENOSPC): dropping its lines until it can; counting them\n',
    ])
    lines.write('more')
    await settle(lines)
    expect(writes.at(-1)).toBe('more\n')
  })

  it('a stream that throws instead of calling back is a failure like any other', async () => {
    const notes: string[] = []
    const stream = new Writable({ write: (_c, _e, done) => done() })
    stream.write = () => {
      throw Object.assign(new Error('write EBADF'), { code: 'EBADF' })
    }
    const lines = createLineWriter(stream, { note: (text) => notes.push(text) })
    lines.write('one')
    expect(() => lines.flush()).not.toThrow()
    expect(lines.dropped()).toBe(1)
    expect(lines.failing()).toBe('EBADF')
    expect(notes).toHaveLength(1)
  })

  it('a reader that stops reading: at most maxBuffered bytes are held, the rest dropped (EAGAIN) until it reads', async () => {
    const notes: string[] = []
    const held: Array<() => void> = []
    const writes: string[] = []
    const stream = new Writable({
      highWaterMark: 16,
      write(chunk, _encoding, done) {
        writes.push(String(chunk))
        held.push(done)
      },
    })
    const lines = createLineWriter(stream, {
      note: (text) => notes.push(text),
      droppedLine: report,
      maxBuffered: 30,
    })
    // Each flush one write of 20 bytes; the reader takes none of them.
    const line = 'y'.repeat(19)
    for (let i = 0; i < 4; i++) {
      lines.write(line)
      lines.flush()
    }
    // 20 bytes held, 40 > 30: the third and fourth are dropped.
    expect(stream.writableLength).toBe(40)
    expect(lines.dropped()).toBe(2)
    expect(lines.failing()).toBe('EAGAIN')
    expect(notes[0]).toContain('(EAGAIN)')
    // The reader reads again.
    while (held.length > 0) held.shift()!()
    await nextTurn()
    lines.write('after')
    lines.flush()
    expect(writes.at(-1)).toBe('dropped 2 (EAGAIN)\nafter\n')
    held.shift()!()
    await nextTurn()
    expect(lines.failing()).toBeUndefined()
  })

  it('a file that cannot be written (/dev/full: ENOSPC) is counted, never thrown', async () => {
    if (!existsSync('/dev/full')) return
    const fd = openSync('/dev/full', 'w')
    try {
      const notes: string[] = []
      const lines = createLineWriter({ fd }, { note: (text) => notes.push(text), droppedLine: report })
      lines.write('one')
      lines.write('two')
      expect(() => lines.flush()).not.toThrow()
      lines.write('three')
      lines.flush()
      expect(lines.dropped()).toBe(3)
      expect(lines.failing()).toBe('ENOSPC')
      expect(notes).toHaveLength(1)
    } finally {
      closeSync(fd)
    }
  })

  it('a file descriptor that can be written gets the same lines a stream would', async () => {
    const path = join(temp.dir, 'log')
    const fd = openSync(path, 'w')
    try {
      const lines = createLineWriter({ fd })
      lines.write('one')
      lines.write('two')
      lines.flush()
      expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n')
      expect(lines.dropped()).toBe(0)
    } finally {
      closeSync(fd)
    }
  })
})

describe('droppedLinesReport', () => {
  it('is a warn line of the log: JSON with its fields, or text, naming the worker', () => {
    const json = JSON.parse(droppedLinesReport(true, 2)(12, 'EAGAIN'))
    expect(json).toMatchObject({ event: 'log_lines_dropped', level: 'warn', worker: 2, count: 12, code: 'EAGAIN' })
    expect(droppedLinesReport(false)(1, 'ENOSPC')).toBe(
      'warn: dropped 1 log line: the log could not be written (ENOSPC)',
    )
  })
})
