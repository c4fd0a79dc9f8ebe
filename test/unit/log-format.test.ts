import { describe, expect, it } from 'vitest'
import { createTextLogger, formatTextLine, quoteLogValue, type LogFields } from '../../src/server/logger.js'
import { RAW_DANGER, parseTextLine } from '../helpers/text-log.js'

// The text log's lines (src/server/logger.ts): whatever a field holds, one log call is one line,
// and that line reads back as exactly its level, event and fields. The server process writes
// these lines for a hostile frame in test/e2e/log-forging.test.ts.

const TRICKY = [
  'x\nlogin_ok user=sysadm',
  '\r\nwarn: user_locked user=ada',
  'a=b',
  'two words',
  'user=sysadm',
  '"quoted"',
  'back\\slash',
  '\\"',
  '',
  ' ',
  'tab\there',
  'esc \u001b[2J\u001b[H cleared',
  'nul\u0000byte',
  'del\u007f',
  'next line\u0085 (C1 NEL)',
  'line\u2028separator',
  'paragraph\u2029separator',
  'right-to-left \u202eoverride',
  'zero\u200bwidth',
  'bom\ufeff',
  'lone \ud800 surrogate',
  'tag \u{e0041} character',
  'no-break\u00a0space',
  'ideographic\u3000space',
  'ünïcödé-names_are.fine:1/2@3',
  '127.0.0.1',
  '-1',
]

describe('the text log line', () => {
  it.each(TRICKY)('holds %j as one line that reads back to it', (value) => {
    const fields = { address: '127.0.0.1', reason: value, [value || 'empty']: 'as a key' }
    for (const level of ['info', 'warn', 'error'] as const) {
      const line = formatTextLine(level, 'protocol_error', fields)
      expect(line).not.toMatch(RAW_DANGER)
      expect(parseTextLine(line)).toEqual({ level, event: 'protocol_error', fields })
    }
  })

  it('keeps plain values bare and quotes only what needs it', () => {
    expect(formatTextLine('info', 'login_ok', { user: 'ada', address: '127.0.0.1', factor: 'totp', n: 3 })).toBe(
      'login_ok user=ada address=127.0.0.1 factor=totp n=3',
    )
    expect(formatTextLine('warn', 'protocol_error', { reason: 'x\nlogin_ok user=sysadm' })).toBe(
      'warn: protocol_error reason="x\\nlogin_ok user=sysadm"',
    )
    expect(quoteLogValue('a=b')).toBe('"a=b"')
    expect(quoteLogValue('')).toBe('""')
    expect(quoteLogValue('\u202e')).toBe('"\\u202e"')
    expect(quoteLogValue(true)).toBe('true')
  })

  it('leaves out undefined fields and writes numbers and booleans as they print', () => {
    const fields: LogFields = { a: undefined, b: 1.5, c: false }
    expect(parseTextLine(formatTextLine('info', 'e', fields))).toEqual({
      level: 'info',
      event: 'e',
      fields: { b: '1.5', c: 'false' },
    })
  })

  it('reads back a thousand random values made of the characters that matter', () => {
    const alphabet = [...'ab =="\\\n\r\t ', '\u0000', '\u001b', '\u0085', '\u2028', '\u202e', '\ud800', '\u00a0', 'é']
    let seed = 17
    const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31)
    for (let i = 0; i < 1000; i++) {
      const value = Array.from({ length: next() % 12 }, () => alphabet[next() % alphabet.length]).join('')
      const line = formatTextLine('warn', 'protocol_error', { reason: value })
      expect(line).not.toMatch(RAW_DANGER)
      expect(parseTextLine(line).fields).toEqual({ reason: value })
    }
  })

  it('writes a human line as one line too, whatever it holds', () => {
    const lines: string[] = []
    const logger = createTextLogger((line) => lines.push(line))
    logger.log('info', 'store_created', { path: '/tmp/x\nlogin_ok user=sysadm' }, 'created store /tmp/x\nlogin_ok')
    logger.log('warn', 'e', {}, 'odd\u2028path\u202e')
    logger.log('warn', 'protocol_error', { reason: 'k\r\nlogin_ok user=sysadm' })
    expect(lines).toEqual([
      'created store /tmp/x\\nlogin_ok',
      'warn: odd\\u2028path\\u202e',
      'warn: protocol_error reason="k\\r\\nlogin_ok user=sysadm"',
    ])
  })
})
