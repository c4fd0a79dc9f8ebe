import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLineWriter, FLUSH_MS } from '../../src/cli/line-writer.js'

// The server's log writer (src/cli/line-writer.ts): lines in order, written together at most every FLUSH_MS.

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

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))
const nextFlush = () => new Promise((resolve) => setTimeout(resolve, FLUSH_MS + 5))

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
})
