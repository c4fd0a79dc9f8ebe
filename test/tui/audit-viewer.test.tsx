import { afterEach, describe, expect, it, vi } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { AuditViewer } from '../../src/tui/AuditViewer.js'
import { SecureLoginError } from '../../src/protocol/errors.js'
import { stripAnsi } from '../../src/tui/group-secret.js'
import { FakeClient } from './fake-client.js'

afterEach(cleanup)

type App = ReturnType<typeof render>
const UP = '\u001B[A'
const PAGE_UP = '\u001B[5~'
// 58 rows leave 50 for entries: a page of 200 is four screens.
const ROWS = 58
/** As typing.ts's until, polled often: a screen here changes in a few milliseconds, many times over. */
const until = (check: () => void) => vi.waitFor(check, { timeout: 20_000, interval: 5 })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * One key. Ink attaches the viewer's input handler after its first frame, hence the wait once;
 * later keys may reach the handler of the frame before, which scrolls the same way (the scroll
 * works from the view's state, not from what that frame showed).
 */
const attached = new WeakSet<App>()
async function press(app: App, key: string) {
  if (!attached.has(app)) await sleep(100)
  attached.add(app)
  app.stdin.write(key)
}

/** An admin's fake client whose log holds `size` entries, named after their numbers. */
function clientWithLog(size: number): FakeClient {
  const client = new FakeClient()
  client.role = 'admin'
  client.auditLog = []
  for (let n = 1; n <= size; n++)
    client.appendAudit({ actor: 'bob', action: `entry.${n}`, target: null, outcome: 'ok' })
  return client
}

/** The numbers of the entries on screen, top to bottom. */
const shown = (app: App) => [...app.lastFrame()!.matchAll(/entry\.(\d+)/g)].map((match) => Number(match[1]))
/** How many entries the title says are loaded. */
const loaded = (app: App) => Number(/audit log: ([\d,]+)/.exec(app.lastFrame()!)![1]!.replaceAll(',', ''))
const run = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const pages = (client: FakeClient) => client.calls.filter((call) => call.startsWith('auditPage'))

describe('audit viewer: scrolling back', () => {
  it('loads older pages as the person scrolls past the oldest entry, without moving the view', async () => {
    const client = clientWithLog(1000)
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    client.auditPageWait = () => held
    const app = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    await until(() => expect(shown(app)).toEqual(run(951, 1000)))
    expect(app.lastFrame()).toContain('audit log: 200 of 1,000 entries loaded · following')
    expect(app.lastFrame()).toContain('↑ 950 older entries')
    for (const top of [901, 851]) {
      await press(app, PAGE_UP)
      await until(() => expect(shown(app)).toEqual(run(top, top + 49)))
    }
    expect(pages(client)).toEqual([])

    // At the oldest entry loaded, the page before it is asked for, once, however often the
    // person presses up meanwhile; the view stays on the same entries while it loads and after.
    await press(app, PAGE_UP)
    await until(() => expect(app.lastFrame()).toContain('loading older entries'))
    expect(shown(app)).toEqual(run(801, 850))
    await press(app, PAGE_UP)
    await press(app, UP)
    await sleep(100)
    expect(pages(client)).toEqual(['auditPage 801 200'])
    expect(shown(app)).toEqual(run(801, 850))
    release()
    await until(() => expect(app.lastFrame()).toContain('audit log: 400 of 1,000 entries loaded'))
    expect(shown(app)).toEqual(run(801, 850))
    expect(app.lastFrame()).toContain('↑ 800 older entries')
    expect(app.lastFrame()).not.toContain('loading older entries')

    // Page by page to entry 1: each screen is a run of entries with no gap and no repeat.
    for (let top = 751; top >= 1; top -= 50) {
      // A key pressed while the page before the view loads does not move it (nothing is there yet).
      await until(() => expect(1000 - loaded(app)).toBeLessThan(top))
      await press(app, PAGE_UP)
      await until(() => expect(shown(app)).toEqual(run(top, top + 49)))
    }
    await until(() => expect(app.lastFrame()).toContain('── start of the log ──'))
    expect(app.lastFrame()).toContain('audit log: 1,000 entries · following · scrolled up')
    await press(app, PAGE_UP)
    await sleep(100)
    expect(shown(app)).toEqual(run(1, 50))
    expect(pages(client)).toEqual(['auditPage 801 200', 'auditPage 601 200', 'auditPage 401 200', 'auditPage 201 200'])
    expect(client.auditPagesAtOnce).toBe(1)
  })

  it('starts again at the newest when more was written while not following than one answer holds', async () => {
    const client = clientWithLog(1000)
    const app = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    await until(() => expect(shown(app)).toEqual(run(951, 1000)))
    await press(app, 'f')
    await until(() => expect(app.lastFrame()).toContain('· not following'))
    // The follow ends in an effect after that frame: until then, new entries still reach the screen.
    await until(() => expect(client.followers.size).toBe(0))
    for (let n = 1001; n <= 1300; n++)
      client.appendAudit({ actor: 'bob', action: `entry.${n}`, target: null, outcome: 'ok' })
    await press(app, 'f')
    // 1,101 to 1,300: keeping 801 to 1,000 too would leave a hole no older page fills.
    await until(() => expect(app.lastFrame()).toContain('audit log: 200 of 1,300 entries loaded · following'))
    expect(shown(app)).toEqual(run(1251, 1300))
    for (const top of [1201, 1151, 1101, 1051]) {
      await until(() => expect(1300 - loaded(app)).toBeLessThan(top))
      await press(app, PAGE_UP)
      await until(() => expect(shown(app)).toEqual(run(top, top + 49)))
    }
    expect(pages(client)).toEqual(['auditPage 1101 200'])
  })

  it('shows a page that failed as an error, and tries again when the person scrolls up', async () => {
    const client = clientWithLog(250)
    client.auditPageWait = async () => {
      client.auditPageWait = undefined
      throw new SecureLoginError('ERR_TIMEOUT', 'the server did not answer in time')
    }
    const app = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    await until(() => expect(shown(app)).toEqual(run(201, 250)))
    for (const top of [151, 101, 51]) {
      await press(app, PAGE_UP)
      await until(() => expect(shown(app)).toEqual(run(top, top + 49)))
    }
    await until(() => expect(app.lastFrame()).toContain('error: the server did not answer in time (ERR_TIMEOUT)'))
    expect(app.lastFrame()).toContain('older entries did not load: scroll up to try again')
    expect(shown(app)).toEqual(run(51, 100))
    await sleep(100)
    expect(pages(client)).toEqual(['auditPage 51 200'])

    await press(app, UP)
    await until(() => expect(app.lastFrame()).toContain('audit log: 250 entries'))
    expect(app.lastFrame()).not.toContain('ERR_TIMEOUT')
    expect(shown(app)).toEqual(run(51, 100))
    await press(app, PAGE_UP)
    await until(() => expect(shown(app)).toEqual(run(1, 50)))
    expect(app.lastFrame()).toContain('── start of the log ──')
    expect(pages(client)).toEqual(['auditPage 51 200', 'auditPage 51 200'])
  })
})

describe('audit viewer: width', () => {
  /** ink-testing-library's terminal is always 100 columns: this makes it `columns` wide and tells the app. */
  function resize(app: App, columns: number) {
    Object.defineProperty(app.stdout, 'columns', { configurable: true, get: () => columns })
    app.stdout.emit('resize')
  }
  const lines = (app: App) => app.lastFrame()!.split('\n')
  const widest = (app: App) => Math.max(...lines(app).map((line) => [...stripAnsi(line)].length))
  /** The entry rows: each starts with its whole time. */
  const entryRows = (app: App) => lines(app).filter((line) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /.test(line))

  function wideLog(): FakeClient {
    const client = clientWithLog(30)
    client.appendAudit({
      actor: 'an-actor-with-a-long-name.x',
      action: 'user.set_role',
      target: 'a-target-whose-name-is-longer-than-its-column',
      outcome: 'refused',
    })
    client.auditLog.at(-1)!.address = '2001:db8::8a2e:370:7334'
    return client
  }

  it('fits 80 columns: the address goes, a cut name ends in an ellipsis and a gap, every entry on one line', async () => {
    const client = wideLog()
    const app = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    resize(app, 80)
    await until(() => expect(app.lastFrame()).toContain('user.set_role'))
    expect(widest(app)).toBeLessThanOrEqual(80)
    expect(app.lastFrame()).toMatch(/^time +actor +action +target +outcome$/m)
    expect(entryRows(app)).toHaveLength(31)
    for (const row of entryRows(app)) expect(row).toMatch(/^\S+ \S+ +\S+ +[\w.]+ +\S+ +(ok|failed|refused)$/)
    expect(app.lastFrame()).toMatch(/ an-actor-\S*… +user\.set_role +a-target-\S*… +refused$/m)
  })

  it('lays the log out again on resize from 120 to 80, as if drawn at 80 from the start', async () => {
    const client = wideLog()
    const wide = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    resize(wide, 120)
    await until(() => expect(wide.lastFrame()).toContain('2001:db8'))
    expect(widest(wide)).toBeGreaterThan(80)
    resize(wide, 80)
    await until(() => expect(wide.lastFrame()).not.toContain('2001:db8'))
    expect(widest(wide)).toBeLessThanOrEqual(80)
    const narrow = render(<AuditViewer client={client} onBack={() => {}} rows={ROWS} />)
    resize(narrow, 80)
    await until(() => expect(entryRows(narrow)).toHaveLength(31))
    expect(wide.lastFrame()).toBe(narrow.lastFrame())
  })
})
