import { describe, expect, it } from 'vitest'
import { formatAuditLine } from '../../src/cli/admin.js'
import type { AuditEntry } from '../../src/protocol/calls.js'

// `admin audit` without --json: one line per entry, each key once, every value one token.

const entry = (fields: Partial<AuditEntry>): AuditEntry => ({
  n: 42,
  at: '2026-05-01T14:03:07.123Z',
  actor: 'root',
  action: 'user.set_role',
  target: 'sam',
  address: '127.0.0.1',
  outcome: 'ok',
  prev: '0'.repeat(64),
  hash: '1'.repeat(64),
  ...fields,
})

/** The keys of a line's key=value pairs, in order. */
const keys = (line: string) => [...line.matchAll(/ ([^\s=]+)=/g)].map((match) => match[1])

describe('formatAuditLine', () => {
  it('writes the address as address=, apart from a role change from= and to=', () => {
    const line = formatAuditLine(entry({ details: { from: 'system_admin', to: 'regular_user' } }))
    expect(line).toBe(
      '    42 2026-05-01T14:03:07.123Z ok      user.set_role    actor=root target=sam address=127.0.0.1 from=system_admin to=regular_user',
    )
    expect(keys(line)).toEqual(['actor', 'target', 'address', 'from', 'to'])
  })

  it('writes a detail named like a fixed field as details.KEY, so each key is there once', () => {
    const line = formatAuditLine(entry({ details: { address: '10.0.0.1', actor: 'x', count: 3 } }))
    expect(keys(line)).toEqual(['actor', 'target', 'address', 'details.address', 'details.actor', 'count'])
    expect(new Set(keys(line)).size).toBe(keys(line).length)
  })

  it.each([
    ['a value with spaces', 'rate limited', 'reason="rate limited"'],
    ['a value with =', 'a=b', 'reason="a=b"'],
    ['a newline', 'one\nactor=root', 'reason="one\\nactor=root"'],
    ['an escape sequence', '\u001b[2J', 'reason="\\u001b[2J"'],
    ['a right-to-left override', 'a\u202eb', 'reason="a\\u202eb"'],
    ['an empty value', '', 'reason=""'],
  ])('quotes %s, so it stays one value on one line', (_, reason, written) => {
    const line = formatAuditLine(entry({ actor: null, target: null, address: null, details: { reason } }))
    expect(line).toMatch(/actor=- target=- address=- /)
    expect(line.endsWith(` ${written}`)).toBe(true)
    expect(line).not.toMatch(/[\n\u001b\u202e]/)
  })
})
