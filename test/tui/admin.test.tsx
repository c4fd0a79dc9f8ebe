import { afterEach, describe, expect, it } from 'vitest'
import { invokedAs } from '../../src/base/invoked.js'
import { cleanup, render } from 'ink-testing-library'
import { type, until } from './typing.js'
import { HomeApp } from '../../src/tui/HomeApp.js'
import type { Role } from '../../src/tui/types.js'
import { formatTime } from '../../src/tui/format.js'
import { stripAnsi } from '../../src/tui/group-secret.js'
import { UserTable } from '../../src/tui/UserTable.js'
import { FakeClient, INVITE_TOKEN } from './fake-client.js'

afterEach(cleanup)

type App = ReturnType<typeof render>
const UP = '\u001B[A'
const DOWN = '\u001B[B'
const ESC = '\u001B'
const BACKSPACE = '\u007F'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** One key, once the screen that should take it has had time to attach its input handler. */
async function press(app: App, key: string) {
  await sleep(100)
  app.stdin.write(key)
}

/** Home as an admin (or `role`), then the screen behind `key`. */
async function open(key: string, role: Role = 'admin') {
  const client = new FakeClient()
  client.role = role
  const app = render(<HomeApp client={client} result={await client.resumeSession()} onDone={() => {}} />)
  await until(() => expect(app.lastFrame()).toContain(`[${key}]`))
  await press(app, key)
  return { client, app }
}

async function openUsers(role: Role = 'admin') {
  const opened = await open('u', role)
  await until(() => expect(opened.app.lastFrame()).toContain('(5 of 5)'))
  return opened
}

/** ink-testing-library's terminal is always 100 columns: this makes it `columns` wide and tells the app. */
function resize(app: App, columns: number) {
  Object.defineProperty(app.stdout, 'columns', { configurable: true, get: () => columns })
  app.stdout.emit('resize')
}

/** The widest line of a frame, in terminal columns. */
const widest = (frame: string) => Math.max(...frame.split('\n').map((line) => [...stripAnsi(line)].length))

/** The role picker's lines, as shown. */
const picker = (app: App) =>
  app
    .lastFrame()!
    .split('\n')
    .filter((line) => /^(❯| ) (regular_user|admin|system_admin)\b/.test(line))
    .map((line) => line.trimEnd())

/** A user's row in the table: the name cell, then the role. */
const row = (user: string, role = '\\w+') => new RegExp(`(?<![\\w.-])${user} +${role}\\b`)

describe('user table', () => {
  it('lists every user with role, created, last login, locked and 2FA', async () => {
    const { app, client } = await openUsers()
    const frame = app.lastFrame()!
    expect(frame).toMatch(/name\s+role\s+created\s+last login\s+locked\s+2FA/)
    expect(frame).toMatch(row('alice \\(you\\)', 'admin'))
    expect(frame).toMatch(
      new RegExp(`bob\\s+regular_user\\s+${formatTime(client.users[1]!.createdAt)}\\s+never\\s+no\\s+enrolled`),
    )
    expect(frame).toMatch(/bobby\s+regular_user\s+\S+ \S+\s+\S+ \S+\s+yes\s+enrolled/)
    expect(frame).toMatch(row('root', 'system_admin'))
    expect(frame).toContain('type: filter by name')
  })

  it('filters by typed name; backspace edits the filter; esc clears it, then goes back', async () => {
    const { app } = await openUsers()
    await press(app, 'bo')
    await until(() => expect(app.lastFrame()).toContain('(2 of 5) filter: bo'))
    expect(app.lastFrame()).toMatch(row('bob'))
    expect(app.lastFrame()).toMatch(row('bobby'))
    expect(app.lastFrame()).not.toMatch(row('carol'))
    await press(app, 'bb')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5) filter: bobb'))
    expect(app.lastFrame()).not.toMatch(row('bob'))
    await press(app, BACKSPACE)
    await until(() => expect(app.lastFrame()).toContain('(2 of 5) filter: bob'))
    await press(app, ESC)
    await until(() => expect(app.lastFrame()).toContain('(5 of 5)'))
    expect(app.lastFrame()).not.toContain('filter:')
    await press(app, ESC)
    await until(() => expect(app.lastFrame()).toContain('signed in as alice'))
  })

  it('moves the selection with arrows; remove asks first: n cancels, y removes and the row disappears', async () => {
    const { app, client } = await openUsers()
    await press(app, 'bob')
    await until(() => expect(app.lastFrame()).toContain('(2 of 5)'))
    expect(app.lastFrame()).toMatch(/❯ bob\s/)
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toMatch(/❯ bobby\s/))
    await press(app, UP)
    await until(() => expect(app.lastFrame()).toMatch(/❯ bob\s/))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('d: remove'))
    await press(app, 'd')
    await until(() =>
      expect(app.lastFrame()).toContain('remove bob? the account and its sessions are gone for good (y/n)'),
    )
    await press(app, 'n')
    await until(() => expect(app.lastFrame()).not.toContain('(y/n)'))
    expect(app.lastFrame()).toMatch(row('bob'))
    expect(client.calls.some((call) => call.startsWith('removeUser'))).toBe(false)
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('d: remove'))
    await press(app, 'd')
    await until(() => expect(app.lastFrame()).toContain('(y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('removed bob; 2 sessions revoked'))
    await until(() => expect(app.lastFrame()).toContain('(1 of 4)'))
    expect(app.lastFrame()).not.toMatch(row('bob'))
    expect(app.lastFrame()).toMatch(row('bobby'))
    expect(client.calls).toContain('removeUser bob')
  })

  it("shows the server's ERR_FORBIDDEN message in place when an admin acts on a system_admin", async () => {
    const { app, client } = await openUsers()
    await press(app, 'root')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5)'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('d: remove'))
    await press(app, 'd')
    await until(() => expect(app.lastFrame()).toContain('(y/n)'))
    await press(app, 'y')
    await until(() =>
      expect(app.lastFrame()).toContain('error: admin cannot manage system_admin accounts (ERR_FORBIDDEN)'),
    )
    expect(app.lastFrame()).toMatch(row('root', 'system_admin'))
    expect(client.calls).toContain('removeUser root')
  })

  it('changes a role picked from a list of all three, the current one marked and a no-op, after confirmation', async () => {
    const { app, client } = await openUsers('system_admin')
    await press(app, 'carol')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5)'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('r: change role'))
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('new role for carol (now admin):'))
    // Every role in its place, the cursor on the one carol has: Enter there changes nothing.
    expect(picker(app)).toEqual(['  regular_user', '❯ admin (current)', '  system_admin'])
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('carol is already admin: pick another role, or esc to go back'))
    expect(app.lastFrame()).not.toContain('(y/n)')
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ system_admin'))
    await press(app, UP)
    await press(app, UP)
    await until(() => expect(app.lastFrame()).toContain('❯ regular_user'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('make carol regular_user? (y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('carol is now regular_user (was admin)'))
    await until(() => expect(app.lastFrame()).toMatch(row('carol', 'regular_user')))
    expect(client.calls.filter((call) => call.startsWith('setRole'))).toEqual(['setRole carol regular_user'])
  })

  it('lists the roles in the same places for every user', async () => {
    const { app } = await openUsers('system_admin')
    await press(app, 'bobby')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5)'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('r: change role'))
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('new role for bobby (now regular_user):'))
    expect(picker(app)).toEqual(['❯ regular_user (current)', '  admin', '  system_admin'])
  })

  it('unlocks, resets 2FA and revokes sessions, each confirmed first, and shows the refreshed row', async () => {
    const { app, client } = await openUsers()
    await press(app, 'bobby')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5)'))
    for (const [key, said] of [
      ['u', 'unlocked bobby'],
      ['2', 'bobby enrols a new authenticator at the next login; 1 session revoked'],
      ['s', 'revoked 3 sessions of bobby'],
    ] as const) {
      await press(app, '\r')
      await until(() => expect(app.lastFrame()).toContain('s: revoke sessions'))
      await press(app, key)
      await until(() => expect(app.lastFrame()).toContain('(y/n)'))
      await press(app, 'y')
      await until(() => expect(app.lastFrame()).toContain(said))
    }
    await until(() => expect(app.lastFrame()).toMatch(/bobby\s+regular_user\s+\S+ \S+\s+\S+ \S+\s+no\s+reset/))
    expect(client.calls.filter((call) => call.endsWith(' bobby'))).toEqual([
      'unlockUser bobby',
      'resetUser2fa bobby',
      'revokeUserSessions bobby',
    ])
  })
})

describe('audit viewer', () => {
  it('shows the latest entries, appends a followed entry live, and stops following on leaving', async () => {
    const { app, client } = await open('a')
    await until(() => expect(app.lastFrame()).toContain('admin.unlock'))
    // The entries and the line about older ones come from two answers: wait for both.
    await until(() => expect(app.lastFrame()).toContain('── start of the log ──'))
    const frame = app.lastFrame()!
    expect(frame).toMatch(/time\s+actor\s+action\s+target\s+outcome\s+address/)
    expect(frame).toMatch(
      new RegExp(
        `${formatTime(client.auditLog[0]!.at, { seconds: true })}\\s+-\\s+login\\s+bob\\s+failed\\s+127\\.0\\.0\\.1`,
      ),
    )
    expect(frame).toContain('audit log: 3 entries · following')
    expect(client.calls).toContain('audit 200 follow')
    // Entry 1 is loaded: there is no older page to ask for.
    expect(frame).toContain('── start of the log ──')
    expect(client.calls.filter((call) => call.startsWith('auditPage'))).toEqual([])
    client.appendAudit({ actor: 'carol', action: 'admin.remove', target: 'dave', outcome: 'refused' })
    await until(() => expect(app.lastFrame()).toMatch(/carol\s+admin\.remove\s+dave\s+refused/))
    expect(app.lastFrame()).toContain('audit log: 4 entries')
    expect(client.auditStops).toBe(0)
    await press(app, ESC)
    await until(() => expect(app.lastFrame()).toContain('signed in as'))
    expect(client.auditStops).toBe(1)
    expect(client.followers.size).toBe(0)
  })

  it('f stops following and starts again, catching up on what was written meanwhile', async () => {
    const { app, client } = await open('a')
    await until(() => expect(app.lastFrame()).toContain('· following'))
    await press(app, 'f')
    await until(() => expect(app.lastFrame()).toContain('· not following'))
    expect(client.auditStops).toBe(1)
    // Not following means no listener at all: an entry written now cannot reach the screen.
    expect(client.followers.size).toBe(0)
    client.appendAudit({ actor: 'carol', action: 'admin.invite', target: null, outcome: 'ok' })
    expect(app.lastFrame()).not.toContain('admin.invite')
    await press(app, 'f')
    await until(() => expect(app.lastFrame()).toContain('admin.invite'))
    expect(app.lastFrame()).toContain('audit log: 4 entries · following')
    expect(client.calls.filter((call) => call === 'audit 200 follow')).toHaveLength(2)
  })

  it('scrolls with the arrows and pages, and sticks to the newest entry otherwise', async () => {
    const client = new FakeClient()
    client.role = 'admin'
    for (let i = 0; i < 40; i++) client.appendAudit({ actor: 'bob', action: `step.${i}`, target: null, outcome: 'ok' })
    const app = render(<HomeApp client={client} result={await client.resumeSession()} onDone={() => {}} rows={15} />)
    await until(() => expect(app.lastFrame()).toContain('[a]'))
    await press(app, 'a')
    // 15 rows leave 7 for entries: the newest seven.
    await until(() => expect(app.lastFrame()).toContain('step.39'))
    expect(app.lastFrame()).toContain('step.33')
    expect(app.lastFrame()).not.toContain('step.32')
    await press(app, UP)
    await until(() => expect(app.lastFrame()).toContain('step.32'))
    expect(app.lastFrame()).not.toContain('step.39')
    expect(app.lastFrame()).toContain('scrolled up')
    await press(app, '\u001B[5~') // page up
    await until(() => expect(app.lastFrame()).toContain('step.25'))
    client.appendAudit({ actor: 'bob', action: 'step.40', target: null, outcome: 'ok' })
    // The entry has arrived once the title counts it; scrolled up, the view stays put.
    await until(() => expect(app.lastFrame()).toContain(`audit log: ${client.auditLog.length} entries`))
    expect(app.lastFrame()).not.toContain('step.40')
    await press(app, '\u001B[6~') // page down
    await press(app, '\u001B[6~') // page down, to the end: following the newest again
    await until(() => expect(app.lastFrame()).toContain('step.40'))
    expect(app.lastFrame()).not.toContain('scrolled up')
  })
})

describe('at 80 columns', () => {
  const LONG_NAME = 'a-user-name-long-enough-to-need-cutting.at-eighty'
  const LONG_TARGET = 'another-long-name-that-runs-on-and-on'
  const IPV6 = '2001:db8:85a3:1234:5678:8a2e:370:7334'

  /** An admin's fake client with values wider than their columns. */
  function wideClient(): FakeClient {
    const client = new FakeClient()
    client.role = 'admin'
    client.users.push({ ...client.users[3]!, user: LONG_NAME, twoFactor: 'reset', locked: true })
    client.sessions.push({ ...client.sessions[1]!, id: 'f00d0004'.padEnd(32, '0'), address: IPV6 })
    client.auditLog.push({ ...client.auditLog[2]!, n: 4, actor: LONG_NAME, target: LONG_TARGET, address: IPV6 })
    client.auditLog.push({
      ...client.auditLog[2]!,
      n: 5,
      action: 'admin.set_role',
      target: LONG_TARGET,
      outcome: 'refused',
    })
    return client
  }

  /** Home at `columns` (ink-testing-library's terminal is 100 wide: this tells the app otherwise), then the screen behind `key`. */
  async function openAt(columns: number, key: string) {
    const client = wideClient()
    const app = render(<HomeApp client={client} result={await client.resumeSession()} onDone={() => {}} />)
    resize(app, columns)
    await until(() => expect(app.lastFrame()).toContain(`[${key}]`))
    await press(app, key)
    return { client, app }
  }

  it('the user table drops "created", cuts a long name with an ellipsis, and keeps each row on one line', async () => {
    const { app } = await openAt(80, 'u')
    await until(() => expect(app.lastFrame()).toContain('(6 of 6)'))
    const frame = app.lastFrame()!
    expect(widest(frame)).toBeLessThanOrEqual(80)
    expect(frame).toMatch(/^ {2}name +role +last login +locked +2FA$/m)
    expect(frame).not.toContain('created')
    const rows = frame.split('\n').filter((line) => /^(❯| ) \S/.test(line) && !/^ {2}name /.test(line))
    expect(rows).toHaveLength(6)
    // Name, role, a whole time (or never), locked, 2FA: every row, each cell whole or cut with "…".
    for (const line of rows)
      expect(line).toMatch(/^(❯| ) \S+( \(you\))? +\w+ +(\d{4}-\d\d-\d\d \d\d:\d\d|never) +(yes|no) +(enrolled|reset)$/)
    expect(frame).toMatch(new RegExp(`^  ${LONG_NAME.slice(0, 10)}\\S*… +admin `, 'm'))
    expect(frame).not.toContain(LONG_NAME)
  })

  it('the sessions screen drops "signed in", then "last seen", and keeps "this session" and the end time whole', async () => {
    const { app, client } = await openAt(80, 's')
    await until(() => expect(app.lastFrame()).toContain('this session'))
    const frame = app.lastFrame()!
    expect(widest(frame)).toBeLessThanOrEqual(80)
    // A full IPv6 address is wider than "last seen" leaves room for: it is cut, that column goes.
    expect(frame).toMatch(/^ {2}id +address +ends$/m)
    const ends = formatTime(client.sessions[0]!.expiresAt)
    expect(frame).toMatch(new RegExp(`^❯ c0ffee01 +127\\.0\\.0\\.1 +${ends} +this session$`, 'm'))
    expect(frame).toMatch(new RegExp(`^  f00d0004 +${IPV6.slice(0, 12)}\\S*… +${ends}$`, 'm'))

    // Without it, only "signed in" goes.
    await press(app, DOWN)
    await press(app, DOWN)
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toMatch(/^❯ f00d0004/m))
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('(y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('revoked 1 session'))
    await until(() => expect(app.lastFrame()).toMatch(/^ {2}id +address +last seen +ends$/m))
    expect(widest(app.lastFrame()!)).toBeLessThanOrEqual(80)
    expect(app.lastFrame()).toMatch(new RegExp(`^  c0ffee01 +127\\.0\\.0\\.1 +\\S+ \\S+ +${ends} +this session$`, 'm'))
  })

  it('the audit viewer drops the address and leaves a gap between a cut target and the outcome', async () => {
    const { app } = await openAt(80, 'a')
    await until(() => expect(app.lastFrame()).toContain('admin.set_role'))
    const frame = app.lastFrame()!
    expect(widest(frame)).toBeLessThanOrEqual(80)
    expect(frame).toMatch(/^time +actor +action +target +outcome$/m)
    expect(frame).not.toContain('127.0.0.1')
    expect(frame).toMatch(/admin\.set_role +another-long-\S*… +refused$/m)
    expect(frame).toMatch(/^\S+ \S+ +a-user-\S*… +admin\.unlock +another-long-\S*… +ok$/m)
  })

  it('lays the table out again for the new width on resize, as if drawn at that width', async () => {
    const client = wideClient()
    const users = await client.listUsers()
    const wide = render(<UserTable client={client} self="alice" onBack={() => {}} />)
    resize(wide, 120)
    await until(() => expect(wide.lastFrame()).toContain('created'))
    expect(widest(wide.lastFrame()!)).toBeGreaterThan(80)
    resize(wide, 80)
    await until(() => expect(wide.lastFrame()).not.toContain('created'))
    const narrow = render(<UserTable client={client} self="alice" onBack={() => {}} />)
    resize(narrow, 80)
    await until(() => expect(narrow.lastFrame()).toContain(`(${users.length} of ${users.length})`))
    expect(widest(wide.lastFrame()!)).toBeLessThanOrEqual(80)
    // Nothing of the wider layout stays behind: the same lines as a table drawn at 80 from the start.
    expect(wide.lastFrame()).toBe(narrow.lastFrame())
  })

  it('puts key hints that do not fit on the next line whole, at 40 columns too', async () => {
    const { app } = await openAt(40, 'u')
    await until(() => expect(app.lastFrame()).toContain('(6 of 6)'))
    const frame = app.lastFrame()!
    expect(widest(frame)).toBeLessThanOrEqual(40)
    for (const hint of ['type: filter by name', '↑/↓: select', 'enter: actions', 'backspace: edit filter', 'esc: back'])
      expect(frame).toContain(hint)
  })
})

describe('invite', () => {
  it('shows the token once with the command to give the person', async () => {
    const { app, client } = await open('i')
    await until(() => expect(app.lastFrame()).toContain('❯ regular_user'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('user name for the regular_user (optional)'))
    await type(app, 'dave')
    await until(() => expect(app.lastFrame()).toContain(INVITE_TOKEN))
    expect(app.lastFrame()).toContain('give this to the person:')
    // In the form this process was run by (src/base/invoked.ts): pasted, it works.
    // One argument a line, joined by backslashes: the token is never broken by the terminal.
    expect(app.lastFrame()).toContain(`  --invite ${INVITE_TOKEN}`)
    expect(app.lastFrame()).toContain(`${invokedAs()} register \\`)
    expect(app.lastFrame()).toContain('invite for a regular_user named dave')
    expect(client.calls).toContain('invite regular_user dave')
  })

  it("shows the server's refusal for a role this admin may not give", async () => {
    const { app, client } = await open('i')
    await until(() => expect(app.lastFrame()).toContain('❯ regular_user'))
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ admin'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('user name for the admin (optional)'))
    await type(app, '', '')
    await until(() => expect(app.lastFrame()).toContain('error: admin cannot give the role admin (ERR_FORBIDDEN)'))
    expect(app.lastFrame()).not.toContain('sli_')
    expect(client.calls).toContain('invite admin')
  })
})
