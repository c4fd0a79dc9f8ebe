import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import {
  AccountJson,
  AuditCheckJson,
  ErrorEvent,
  KdfJson,
  ListeningLine,
  NoticeEvent,
  SessionJson,
  StdoutEvent,
  StoreReportEvents,
} from '../../src/cli/json-events.js'
import { TokenClaims } from '../../src/protocol/signed-tokens.js'
import { checkJsonOutput, takeJsonViolations } from '../helpers/json-events.js'

// docs/cli-json.md and src/cli/json-events.ts name the same fields; and the suite-wide check of
// the CLI's JSON lines (test/setup/cli-json.ts) can fail.

const DOC = readFileSync(new URL('../../docs/cli-json.md', import.meta.url), 'utf8')

/** Objects the document describes once, in "Objects", and names by link elsewhere. */
const NAMED = new Map<z.ZodType, string>([
  [SessionJson, 'session object'],
  [AccountJson, 'account object'],
  [KdfJson, 'kdf object'],
  [TokenClaims, 'claims object'],
  [AuditCheckJson, 'audit check object'],
])

type Node = z.ZodType & { def: { type: string; innerType?: Node; element?: Node }; shape?: Record<string, Node> }

function unwrap(schema: Node): { inner: Node; optional: boolean } {
  let inner = schema
  let optional = false
  while (inner.def.type === 'optional' || inner.def.type === 'nullable') {
    optional ||= inner.def.type === 'optional'
    inner = inner.def.innerType!
  }
  return { inner, optional }
}

/** A schema's fields as the document's tables write them: `a?` when optional, `a.b` and `a[].b` inside. */
function fieldsOf(shape: Record<string, Node>, prefix = ''): string[] {
  const fields: string[] = []
  for (const [key, schema] of Object.entries(shape)) {
    if (prefix === '' && key === 'event') continue
    const { inner, optional } = unwrap(schema)
    fields.push(`${prefix}${key}${optional ? '?' : ''}`)
    let nested = inner
    let path = `${prefix}${key}`
    if (nested.def.type === 'array') {
      nested = unwrap(nested.def.element!).inner
      path += '[]'
    }
    if (nested.def.type === 'object' && !NAMED.has(nested)) fields.push(...fieldsOf(nested.shape!, `${path}.`))
  }
  return fields.sort()
}

/** Each `### \`name\`` (or `#### \`name\` report`) section of the document: the fields of its table. */
function documented(): Map<string, string[]> {
  const sections = new Map<string, string[]>()
  let current: string[] | undefined
  for (const line of DOC.split('\n')) {
    const heading = /^#{2,4} (.*)$/.exec(line)
    if (heading) {
      const named = /^`([a-z0-9_ ]+)`( object| report)?$/.exec(heading[1]!)
      current = named && line.startsWith('###') ? [] : undefined
      if (named && current) sections.set(`${named[1]}${named[2] ?? ''}`, current)
      continue
    }
    const row = /^\| `([^`]+)` \|/.exec(line)
    if (row && current) current.push(row[1]!)
  }
  for (const fields of sections.values()) fields.sort()
  return sections
}

function expected(): Map<string, string[]> {
  const sections = new Map<string, string[]>()
  const shapeOf = (schema: z.ZodType) => (schema as Node).shape!
  for (const option of StdoutEvent.options) sections.set(option.shape.event.value, fieldsOf(shapeOf(option)))
  sections.set('error', fieldsOf(shapeOf(ErrorEvent)))
  sections.set('notice', fieldsOf(shapeOf(NoticeEvent)))
  for (const report of StoreReportEvents) sections.set(`${report.shape.event.value} report`, fieldsOf(shapeOf(report)))
  sections.set('listening', fieldsOf(shapeOf(ListeningLine)))
  for (const [schema, name] of NAMED) sections.set(name, fieldsOf(shapeOf(schema)))
  return sections
}

describe('docs/cli-json.md', () => {
  const doc = documented()
  it('has a section for every event, report and object of src/cli/json-events.ts, and no other', () => {
    expect([...doc.keys()].sort()).toEqual([...expected().keys()].sort())
  })

  for (const [name, fields] of expected())
    it(`lists the fields of ${name}, optional ones marked with ?`, () => {
      expect(doc.get(name)).toEqual(fields)
    })
})

describe('the check of every JSON line the CLI prints', () => {
  const login = {
    event: 'login',
    user: 'ada',
    role: 'regular_user',
    sessionId: '0123456789abcdef0123456789abcdef',
    expiresAt: '2026-11-25T22:00:00.000Z',
    idleExpiresAt: '2026-11-25T10:30:00.000Z',
  }
  const line = (value: unknown) => `${JSON.stringify(value)}\n`

  it('passes lines as the document says, and lines for people on stderr', () => {
    const error = { event: 'error', code: 'ERR_AUTH_FAILED', message: 'authentication failed' }
    checkJsonOutput(
      'login',
      ['login', '--json'],
      line(login),
      `securelogin: warning: 1 recovery code left\n${line(error)}`,
    )
    checkJsonOutput('login', ['login'], 'welcome ada\n', '')
    expect(takeJsonViolations()).toEqual([])
  })

  it('reports an unknown event, a missing, extra or malformed field, and a line that is not JSON', () => {
    const secret = 'sls_' + 'a'.repeat(43)
    const { idleExpiresAt: _, ...missing } = login
    checkJsonOutput(
      'run',
      ['login', '--json'],
      [
        line({ event: 'logged_in', user: 'ada' }),
        line(missing),
        line({ ...login, token: secret }),
        line({ ...login, role: 'root' }),
        `not json ${secret}\n`,
      ].join(''),
      line({ event: 'error', code: 'ERR_NOPE', message: secret }),
    )
    const found = takeJsonViolations()
    expect(found).toHaveLength(6)
    expect(found[0]).toMatch(/^run: stdout line 1, event "logged_in"/)
    expect(found[1]).toMatch(/stdout line 2, event "login".*idleExpiresAt/)
    expect(found[2]).toMatch(/stdout line 3, event "login".*token/)
    expect(found[3]).toMatch(/stdout line 4, event "login".*role/)
    expect(found[4]).toBe('run: stdout line 5 is not JSON (56 characters)')
    expect(found[5]).toMatch(/stderr line 1, event "error".*code/)
    // The report names fields, never their values.
    expect(found.join('\n')).not.toContain(secret.slice(4))
    expect(found.join('\n')).not.toContain('root')
  })

  it("knows the server's log and the JWKS document", () => {
    const listening = {
      event: 'listening',
      host: '127.0.0.1',
      port: 7443,
      fingerprint: Array.from({ length: 32 }, () => 'AB').join(':'),
      srpEngine: 'openssl',
      level: 'info',
      time: '2026-11-25T10:00:00.000Z',
    }
    const logLine = { event: 'audit', n: 3, hash: 'ab', level: 'info', time: '2026-11-25T10:00:01.000Z' }
    checkJsonOutput('server', ['server', '--json'], line(listening) + line(logLine), '')
    checkJsonOutput('jwks', ['jwks', '--json'], line({ keys: [] }), '')
    const found = takeJsonViolations()
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^jwks: stdout line 1, event unnamed.*keys/)
  })
})
