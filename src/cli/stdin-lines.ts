import { createInterface } from 'node:readline'
import { usageError } from './output.js'

/** Reads stdin a line at a time: the password first, then (when asked) a code. */
export function stdinLines(input: NodeJS.ReadableStream = process.stdin) {
  const reader = createInterface({ input, crlfDelay: Infinity, terminal: false })
  const lines = reader[Symbol.asyncIterator]()
  return {
    async next(what: string): Promise<string> {
      const line = await lines.next()
      if (line.done) throw usageError(`stdin ended before the ${what}`, `put the ${what} on its own line of stdin`)
      return line.value
    },
    close(): void {
      reader.close()
    },
  }
}
