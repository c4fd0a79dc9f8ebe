import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { Lab, newPassword, type Account } from '../helpers/accounts.js'
import { BIN } from '../helpers/env.js'
import { noteSecret } from '../helpers/secrets.js'
import { TmuxTerminal, decodeQrFromScreen } from '../helpers/tmux.js'
import { requireTool } from '../helpers/tools.js'

// What only a real terminal shows of the screens' layout: at 80 columns no line of `securelogin
// home`'s tables wraps (tmux marks a line the terminal wrapped; `capture-pane -J` joins it back,
// so a joined line wider than the pane is one that wrapped), every row is whole on its line, a
// shrink from 120 columns leaves nothing of the wider layout, and leaving a screen leaves none of
// its lines. And the enrolment QR code, drawn with a four-module quiet zone, scans from a capture
// on a dark and a light palette, also when the capture trims the right edge. One server; the
// accounts, sessions and audit entries are made in this process (Lab's direct calls).

const tools = ['tmux', 'zbarimg', 'oathtool'].map(requireTool).every(Boolean)
const LONG_ADMIN = 'an-admin-whose-name-is-too-long-for-its-column'
const LONG_USER = 'a-regular-user-whose-name-also-runs-on.and-on'
const NEWCOMER = 'qr.newcomer'
const TIME = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d`

let lab: Lab
let root: Account
let invite = ''

beforeAll(async () => {
  lab = await Lab.start('layout')
  if (!tools) return
  root = await lab.registerDirect('root', { invite: await lab.bootstrapToken() })
  await lab.loginDirect(root)
  await lab.registerInvitedDirect(root, [
    [LONG_ADMIN, 'admin'],
    [LONG_USER, 'regular_user'],
  ])
  // Two more sessions of root's, from other homes: three rows on the sessions screen.
  await lab.loginDirect(root, { home: lab.homeOf('root-2') })
  await lab.loginDirect(root, { home: lab.homeOf('root-3') })
  invite = await lab.asUser(root, async (run) => {
    const { token } = await run('invite', { role: 'regular_user', user: NEWCOMER, ttlSeconds: 3600 })
    return token
  })
  noteSecret('bearer token', invite)
}, 120_000)

afterAll(async () => {
  await lab?.close()
})

/** The CLI in a fresh tmux of its own, stopped when the test `context` ends (tests here run side by side). */
function start(context: TestContext, args: string[], home: string, width: number, height: number): TmuxTerminal {
  const term = TmuxTerminal.start(
    [process.execPath, BIN, ...args, '--server', `127.0.0.1:${lab.port}`, '--ca', lab.certPath],
    { width, height, env: { SECURELOGIN_HOME: home } },
  )
  context.onTestFinished(() => term.stop())
  return term
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The pane's lines with the ones the terminal wrapped joined back (tmux remembers which it wrapped). */
function joinedLines(term: TmuxTerminal): string[] {
  return execFileSync('tmux', ['-L', term.socket, 'capture-pane', '-p', '-J'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trimEnd())
}

/**
 * No line of the screen is wider than `columns`: none was wrapped by the terminal. Polled for a
 * moment: after a resize the app clears the screen once its new frame is drawn.
 */
async function expectNoWrap(term: TmuxTerminal, columns: number) {
  const tooWide = () => joinedLines(term).filter((line) => [...line].length > columns)
  for (let tries = 0; tries < 20 && tooWide().length > 0; tries++) await sleep(100)
  expect(tooWide()).toEqual([])
}

/** A key, once the screen that takes it is up (Ink attaches input handlers after the first frame). */
async function press(term: TmuxTerminal, key: string) {
  await sleep(300)
  term.key(key)
}

const lines = (text: string) => text.split('\n').map((line) => line.trimEnd())

/** The cells of the QR code's lines: light (true) or dark, top and bottom module of each. */
function qrCells(capture: string): Array<Array<[boolean, boolean]>> {
  const rows: Array<Array<[boolean, boolean]>> = []
  for (const line of capture.split('\n')) {
    if (!line.includes('▀')) continue
    let fg = true
    let bg = true
    const cells: Array<[boolean, boolean]> = []
    for (const token of line.match(/\x1b\[[0-9;]*m|[^\x1b]/gu) ?? []) {
      if (token.startsWith('\x1b')) {
        for (const p of token.slice(2, -1).split(';').map(Number)) {
          if (p === 30) fg = false
          else if (p === 97 || p === 37) fg = true
          else if (p === 40) bg = false
          else if (p === 107 || p === 47) bg = true
        }
      } else if (token === '▀') cells.push([fg, bg])
    }
    rows.push(cells)
  }
  return rows
}

/** The capture with the last cell of each QR line cut off, as a capture that trims the right edge would. */
function trimLastCell(capture: string): string {
  return capture
    .split('\n')
    .map((line) => {
      const last = line.lastIndexOf('▀')
      return last < 0 ? line : line.slice(0, last) + line.slice(last + 1)
    })
    .join('\n')
}

// The two terminals run side by side: each mostly waits for its app.
describe.runIf(tools).concurrent('the TUI in tmux: layout and QR code', () => {
  it('fits sessions, users and the audit log in 80 columns, each row on one line, with nothing left over', async (context) => {
    const term = start(context, ['home'], root.home, 120, 24)
    await term.waitFor('signed in as root (system_admin)')

    // Users at 120 columns, then the terminal shrinks to 80: "created" goes, nothing of the wide table stays.
    await press(term, 'u')
    await term.waitFor(/^ {2}name +role +created +last login +locked +2FA$/m)
    execFileSync('tmux', ['-L', term.socket, 'resize-window', '-x', '80', '-y', '24'])
    let screen = await term.waitFor(/^ {2}name +role +last login +locked +2FA$/m)
    // The narrower frame is drawn first, and the screen cleared and drawn again about 50 ms
    // later (src/tui: the terminal's own rewrap of the wide frame leaves more rows than Ink
    // erases): a loaded machine may capture between the two. What must hold is the end state.
    for (let i = 0; i < 50 && screen.includes('created'); i++) {
      await sleep(100)
      screen = term.text()
    }
    await expectNoWrap(term, 80)
    expect(screen).not.toContain('created')
    expect(screen.match(/users \(3 of 3\)/g)).toHaveLength(1)
    const users = lines(screen).filter((line) => /^(❯| ) [a-z]/.test(line) && !/^ {2}name /.test(line))
    expect(users).toHaveLength(3)
    for (const line of users)
      expect(line).toMatch(
        new RegExp(
          `^(❯| ) \\S+( \\(you\\))? +(regular_user|admin|system_admin) +(${TIME}|never) +(yes|no) +(enrolled|reset)$`,
        ),
      )
    expect(screen).toMatch(/^ {2}an-admin-\S*… +admin /m)
    expect(screen).not.toContain(LONG_ADMIN)
    expect(screen).toContain('type: filter by name')
    expect(screen).toContain('esc: back')

    // Back at the menu: no line of the table is left on the screen.
    await press(term, 'Escape')
    screen = await term.waitFor('[s] sessions')
    expect(screen).not.toMatch(/last login|users \(/)
    await expectNoWrap(term, 80)

    await press(term, 's')
    screen = await term.waitFor('this session')
    await expectNoWrap(term, 80)
    expect(screen).toMatch(/^ {2}id +address +last seen +ends$/m)
    const sessions = lines(screen).filter((line) => /^(❯| ) [0-9a-f]{8} /.test(line))
    expect(sessions).toHaveLength(3)
    for (const line of sessions)
      expect(line).toMatch(new RegExp(`^(❯| ) [0-9a-f]{8} +127\\.0\\.0\\.1 +${TIME} +${TIME}( +this session)?$`))
    expect(sessions.filter((line) => line.endsWith('this session'))).toHaveLength(1)

    await press(term, 'Escape')
    screen = await term.waitFor('[a] audit log')
    expect(screen).not.toMatch(/your sessions|this session/)

    await press(term, 'a')
    await term.waitFor(/^time +actor +action +target +outcome/m)
    screen = await term.waitFor(/audit log: [1-9][\d,]* entries · following/)
    await expectNoWrap(term, 80)
    const entries = lines(screen).filter((line) => new RegExp(`^${TIME}:\\d\\d `).test(line))
    expect(entries.length).toBeGreaterThan(5)
    for (const line of entries) expect(line).toMatch(/ {2}(ok|failed|refused)( +\S+)?$/)
    // A long target is cut with an ellipsis, then a gap, then the outcome.
    expect(screen).toMatch(/ a-regular-\S*… +ok( +\S+)?$/m)

    await press(term, 'Escape')
    screen = await term.waitFor('[u] users')
    expect(screen).not.toMatch(/audit log:|outcome/)
    await expectNoWrap(term, 80)
  })

  it('draws the enrolment QR code with a four-module quiet zone that scans on dark and light palettes, also with the right edge trimmed', async (context) => {
    const term = start(context, ['register', '--invite', invite], lab.homeOf(NEWCOMER), 80, 40)
    await term.waitFor('user name')
    await term.type(NEWCOMER)
    const password = newPassword()
    noteSecret('password', password)
    await term.waitFor(/password/)
    await term.type(password)
    await term.waitFor('repeat')
    await term.type(password)
    await term.waitFor(/▀{20}/)
    const full = term.capture()
    const uri = new RegExp(`^otpauth://totp/securelogin:${NEWCOMER.replace('.', '\\.')}\\?secret=[A-Z2-7]{32}&`)

    // Four light modules on every side: two cell rows above and below, four cells left and right.
    const cells = qrCells(full)
    const light = (row: Array<[boolean, boolean]>) => row.every(([top, bottom]) => top && bottom)
    expect(cells.length).toBeGreaterThan(20)
    expect(new Set(cells.map((row) => row.length)).size).toBe(1)
    for (const row of [...cells.slice(0, 2), ...cells.slice(-2)]) expect(light(row)).toBe(true)
    for (const row of cells) expect(light([...row.slice(0, 4), ...row.slice(-4)])).toBe(true)
    expect(cells.some((row) => !light(row))).toBe(true)

    // capture-pane -N keeps every cell; without it tmux trims trailing blank cells; and a copy
    // that loses the last cell of each line.
    const trimmed = execFileSync('tmux', ['-L', term.socket, 'capture-pane', '-p', '-e'], { encoding: 'utf8' })
    for (const [name, capture] of [
      ['full', full],
      ['trimmed by tmux', trimmed],
      ['last cell cut', trimLastCell(full)],
    ] as const) {
      for (const theme of ['dark', 'light'] as const) {
        const dir = lab.dir
        expect(decodeQrFromScreen(capture, dir, theme), `${name}, ${theme}`).toMatch(uri)
      }
    }
  })
})
