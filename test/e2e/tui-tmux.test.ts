import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { BIN, makeTempDir } from '../helpers/env.js'
import { TmuxTerminal, decodeQrFromScreen } from '../helpers/tmux.js'
import { oathtoolCode, requireTool } from '../helpers/tools.js'
import { runCliToEnd } from '../helpers/cli.js'
import { noteSecret } from '../helpers/secrets.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { hasUser } from '../helpers/records.js'

// A person at a terminal: tmux runs the real TUI, keys are typed after each prompt appears, the
// QR code is read off the screen by zbarimg, and oathtool plays the phone.

const tools = ['tmux', 'zbarimg', 'oathtool'].map(requireTool).every(Boolean)
const PASSWORD = 'tmux person password 3'
let server: InProcessServer
let dir: string
let remove: () => Promise<void>
let term: TmuxTerminal | undefined
let secret = ''

let bootstrapToken = ''

beforeAll(async () => {
  server = await startInProcessServer({
    server: {
      registration: 'open',
      onBootstrapToken: (token) => {
        noteSecret('bootstrap token', token)
        bootstrapToken = token
      },
    },
  })
  ;({ dir, remove } = await makeTempDir('tmux'))
})
afterEach(() => {
  term?.stop()
  term = undefined
})
afterAll(async () => {
  await server?.stop()
  await remove?.()
})

const open = (command: string, width = 120, height = 50) =>
  TmuxTerminal.start([process.execPath, BIN, command, '--server', `127.0.0.1:${server.server.port}`], {
    width,
    height,
    env: { SECURELOGIN_HOME: join(dir, 'home') },
  })

describe.runIf(tools)('the TUI in tmux', () => {
  it('registers as a person would: trusts the server, types name and passwords, scans the QR, types the code', async () => {
    term = open('register')
    await term.waitFor(server.server.fingerprint)
    await term.waitFor('(y/N)')
    await term.type('y', false)
    await term.waitFor('user name')
    await term.type('Tmux.Person')
    await term.waitFor(/password/)
    await term.type(PASSWORD)
    await term.waitFor('repeat')
    await term.type(PASSWORD)
    const screen = await term.waitFor(/[▀█▄]{20}/)
    expect(screen).not.toContain(PASSWORD)

    const capture = term.capture()
    const fromDark = decodeQrFromScreen(capture, dir, 'dark')
    const fromLight = decodeQrFromScreen(capture, dir, 'light')
    expect(fromDark).toMatch(
      /^otpauth:\/\/totp\/securelogin:tmux\.person\?secret=[A-Z2-7]{32}&issuer=securelogin&algorithm=SHA1&digits=6&period=30$/,
    )
    expect(fromLight).toBe(fromDark)
    secret = new URL(fromDark).searchParams.get('secret')!
    // The same secret is on screen in groups of four for a person who cannot scan.
    expect(term.text()).toContain(secret.match(/.{4}/g)!.join(' '))

    await term.type(oathtoolCode(secret, Math.floor(Date.now() / 1000)))
    await term.waitFor('registered tmux.person')
    await term.waitFor('[exit 0]')
    // Ten recovery codes under it, shown once.
    expect(term.text()).toContain('they are not shown again')
    expect(term.text().match(/\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b/g)).toHaveLength(10)
  })

  it('logs in as a person would, the server already trusted', async () => {
    expect(secret).not.toBe('')
    term = open('login')
    await term.waitFor('user name')
    expect(term.text()).not.toContain('(y/N)')
    await term.type('tmux.person')
    await term.waitFor(/password/)
    await term.type(PASSWORD)
    await term.waitFor(/code/)
    // The next step's code: enrolment used this step's, and a code is accepted once.
    await term.type(oathtoolCode(secret, Math.floor(Date.now() / 1000) + 30))
    // The home screen: who, until when, and the menu; q leaves with the session kept.
    const screen = await term.waitFor('signed in as tmux.person (regular_user)')
    expect(screen).toMatch(/session ends .* \(in 30 min\)/)
    expect(screen).toContain('[p] change password')
    expect(screen).not.toContain('[u] users')
    expect(screen).not.toContain(PASSWORD)
    await term.type('q', false)
    await term.waitFor('[exit 0]')
  })

  it('shows a wrong password as the generic failure with a hint, in place', async () => {
    term = open('login')
    await term.waitFor('user name')
    await term.type('tmux.person')
    await term.waitFor(/password/)
    await term.type('a wrong password 00')
    const screen = await term.waitFor('ERR_AUTH_FAILED')
    expect(screen).toContain('authentication failed')
    expect(screen).toMatch(/clock/)
  })

  it('leaves the terminal clean on Ctrl-C: exit 130, echo and line editing back, cursor shown', async () => {
    term = open('login')
    await term.waitFor('user name')
    await term.type('tmux.person')
    await term.waitFor(/password/)
    await term.type('half a pass', false)
    await term.waitFor('*'.repeat('half a pass'.length))
    term.key('C-c')
    const screen = await term.waitFor(/\[tty [^\]]*\]/)
    expect(screen).toContain('[exit 130]')
    expect(screen).toMatch(/\[tty icanon echo ?\]/)
    expect(screen).not.toContain('half a pass')
    expect(term.cursorVisible()).toBe(true)
  })

  it('lets an admin remove a user from the user table, with a confirmation', async () => {
    expect(secret).not.toBe('')
    // The first system_admin, by the bootstrap token, then logged in by the plain CLI (which saves the session).
    const ADMIN_PASSWORD = 'tmux admin password 77 quince'
    const conn = await ServerConnection.open({
      host: '127.0.0.1',
      port: server.server.port,
      trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
    })
    let adminSecret: string
    try {
      ;({ secret: adminSecret } = await startRegistration(conn, 'root', ADMIN_PASSWORD, bootstrapToken))
      noteSecret('TOTP secret', adminSecret)
      await confirmEnrolment(conn, oathtoolCode(adminSecret, Math.floor(Date.now() / 1000)))
    } finally {
      conn.close()
    }
    const login = await runCliToEnd(
      [
        'login',
        '--server',
        `127.0.0.1:${server.server.port}`,
        '--user',
        'root',
        '--password-stdin',
        '--otp',
        oathtoolCode(adminSecret, Math.floor(Date.now() / 1000) + 30),
        '--json',
      ],
      `${ADMIN_PASSWORD}\n`,
      { env: { SECURELOGIN_HOME: join(dir, 'home') } },
    )
    expect(login.code).toBe(0)

    term = open('home')
    await term.waitFor('signed in as root (system_admin)')
    await term.type('u', false)
    await term.waitFor('tmux.person')
    // Typing filters the table; Enter opens the selected user's actions; d asks before removing.
    await term.type('tmux', false)
    await term.waitFor('filter: tmux')
    expect(term.text()).not.toContain('root (you)')
    await term.type('', true)
    await term.waitFor('d: remove')
    await term.type('d', false)
    await term.waitFor('remove tmux.person?')
    expect(term.text()).toContain('y/n')
    expect(await hasUser(server.store, 'tmux.person')).toBe(true)
    await term.type('y', false)
    await term.waitFor(/removed tmux\.person/i)
    expect(await hasUser(server.store, 'tmux.person')).toBe(false)
    const removal = (await server.store.get<{ actor: string; target: string; action: string }>(
      `audit/${String((await server.store.get<{ n: number }>('audit-head'))!.n).padStart(12, '0')}`,
    ))!
    expect(removal).toMatchObject({ actor: 'root', action: 'user.remove', target: 'tmux.person', outcome: 'ok' })
    term.key('Escape')
    await term.waitFor(/users \(1 of 1\)|no user name contains/)
  })
})
