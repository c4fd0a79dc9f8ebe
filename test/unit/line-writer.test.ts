import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLineWriter } from '../../src/cli/line-writer.js'

// The server's log writer (src/cli/line-writer.ts): lines in order, one write per event-loop turn.

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

describe('createLineWriter', () => {
  it('writes the lines of one turn as one write, in order, each ending in a newline', async () => {
    const { writes, stream } = sink()
    const lines = createLineWriter(stream)
    lines.write('one')
    lines.write('two')
    lines.write('three')
    expect(writes).toEqual([])
    await nextTurn()
    expect(writes).toEqual(['one\ntwo\nthree\n'])
    lines.write('four')
    await nextTurn()
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
    await nextTurn()
    expect(writes).toEqual(['warn: protocol_error reason=x\\nlogin_ok user=sysadm\\r\nnext\n'])
  })
})
