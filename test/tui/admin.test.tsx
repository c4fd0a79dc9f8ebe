import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import { type, until } from './typing.js'
import { HomeApp } from '../../src/tui/HomeApp.js'
import type { Role } from '../../src/tui/types.js'
import { formatTime } from '../../src/tui/format.js'
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

  it('changes a role picked from a list, after confirmation', async () => {
    const { app, client } = await openUsers('system_admin')
    await press(app, 'carol')
    await until(() => expect(app.lastFrame()).toContain('(1 of 5)'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('r: change role'))
    await press(app, 'r')
    await until(() => expect(app.lastFrame()).toContain('new role for carol (now admin):'))
    expect(app.lastFrame()).toContain('❯ regular_user')
    await press(app, DOWN)
    await until(() => expect(app.lastFrame()).toContain('❯ system_admin'))
    await press(app, UP)
    await until(() => expect(app.lastFrame()).toContain('❯ regular_user'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('make carol regular_user? (y/n)'))
    await press(app, 'y')
    await until(() => expect(app.lastFrame()).toContain('carol is now regular_user (was admin)'))
    await until(() => expect(app.lastFrame()).toMatch(row('carol', 'regular_user')))
    expect(client.calls).toContain('setRole carol regular_user')
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

describe('invite', () => {
  it('shows the token once with the command to give the person', async () => {
    const { app, client } = await open('i')
    await until(() => expect(app.lastFrame()).toContain('❯ regular_user'))
    await press(app, '\r')
    await until(() => expect(app.lastFrame()).toContain('user name for the regular_user (optional)'))
    await type(app, 'dave')
    await until(() => expect(app.lastFrame()).toContain(INVITE_TOKEN))
    expect(app.lastFrame()).toContain('give this to the person:')
    expect(app.lastFrame()).toContain(`securelogin register --invite ${INVITE_TOKEN}`)
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
