import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeFrame, MAX_FRAME_BYTES } from '../../src/protocol/frame.js'
import type { AuditEntry } from '../../src/protocol/calls.js'
import { Bench, type LoggedIn } from '../helpers/conversation.js'

// Reading a long audit log a page at a time (issue 16, "Audit paging"): each answer fits one
// frame, `next` reaches every older entry, and `after` what came since. Before, `audit` without
// a limit answered with the whole log in one frame, which failed past about 180 entries
// (ERR_FRAME_TOO_LARGE), and nothing reached further back.

const ENTRIES = 20_000

let bench: Bench
let root: LoggedIn

beforeAll(async () => {
  bench = await Bench.start({ registration: 'open' })
  root = await bench.login(await bench.registerBootstrap('root'))
  // Appends made together are written as one record, and reading one entry reads its record:
  // batches of 25, near what a busy server writes, not one record of thousands.
  for (let i = 0; i < ENTRIES; i += 25) {
    await Promise.all(
      Array.from({ length: 25 }, (_, j) =>
        bench.core.ctx.audit.append({
          actor: 'root',
          action: 'test.filler',
          target: `user${(i + j) % 97}`,
          address: '127.0.0.1',
          outcome: 'ok',
          details: { index: i + j, note: 'an entry of about the usual size, to fill pages' },
        }),
      ),
    )
  }
}, 240_000)

afterAll(() => bench?.stop())

/** One `audit` call, and the size of the frame its answer is sent in. */
async function page(args: Record<string, unknown>) {
  const answer = await root.peer.send({ type: 'call', op: 'audit', args })
  expect(answer.message.type).toBe('result')
  const data = (answer.message as unknown as { data: { entries: AuditEntry[]; head: { n: number }; next?: number } })
    .data
  return { ...data, bytes: encodeFrame(answer.message).length }
}

describe('audit pages', () => {
  it(`returns all of a ${ENTRIES.toLocaleString('en')}-entry log through its pages, in order, each frame under 64 KiB`, async () => {
    const head = bench.core.ctx.audit.head().n
    expect(head).toBeGreaterThan(ENTRIES)
    const pages: AuditEntry[][] = []
    let before: number | undefined
    let largest = 0
    do {
      const { entries, next, bytes } = await page(before === undefined ? {} : { before })
      largest = Math.max(largest, bytes)
      expect(entries.length).toBeGreaterThan(0)
      pages.unshift(entries)
      before = next
    } while (before !== undefined)
    const ns = pages.flat().map((entry) => entry.n)
    expect(ns).toEqual(Array.from({ length: head }, (_, i) => i + 1))
    expect(largest).toBeLessThanOrEqual(MAX_FRAME_BYTES)
    console.log(`audit pages: ${head} entries in ${pages.length} pages, the largest frame ${largest} bytes`)
  })

  it('limit 10,000 keeps the newest ten thousand, paged the same way; after gives what came since', async () => {
    const head = bench.core.ctx.audit.head().n
    let left = 10_000
    let before: number | undefined
    const got: number[] = []
    do {
      const { entries, next } = await page({ limit: left, ...(before === undefined ? {} : { before }) })
      got.unshift(...entries.map((entry) => entry.n))
      left -= entries.length
      before = next
    } while (before !== undefined && left > 0)
    expect(got).toEqual(Array.from({ length: 10_000 }, (_, i) => head - 10_000 + i + 1))
    const since = await page({ after: head - 3 })
    expect(since.entries.map((entry) => entry.n)).toEqual([head - 2, head - 1, head])
    expect(since.next).toBeUndefined()
  })
})
