import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { BIN, makeTempDir } from '../helpers/env.js'
import { TmuxTerminal } from '../helpers/tmux.js'
import { requireTool } from '../helpers/tools.js'

// What only a real terminal shows about input: Ctrl-C at the trust prompt gives the shell back
// at once (it used to hang until the server dropped the idle connection, about a minute), and
// backspaces that reach the app in one read delete instead of inserting DEL characters.

const tools = requireTool('tmux')
let server: InProcessServer
let dir: string
let remove: () => Promise<void>
let term: TmuxTerminal | undefined

beforeAll(async () => {
  server = await startInProcessServer()
  ;({ dir, remove } = await makeTempDir('tui-input'))
})
afterEach(() => {
  term?.stop()
  term = undefined
})
afterAll(async () => {
  await server?.stop()
  await remove?.()
})

/** The app under bash, which prints the time it ended (ms since the epoch) before the helper's "[exit N]". */
const open = (command: string, home: string) =>
  TmuxTerminal.start(
    [
      'bash',
      '-c',
      '"$@"; status=$?; echo "[ended $(date +%s%3N)]"; exit $status',
      'app',
      process.execPath,
      BIN,
      command,
      '--server',
      `127.0.0.1:${server.server.port}`,
    ],
    { width: 80, height: 24, env: { SECURELOGIN_HOME: join(dir, home) } },
  )

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.runIf(tools)('TUI input in tmux', () => {
  it('leaves the trust prompt on Ctrl-C within 1 s, exit 130, the terminal restored', async () => {
    term = open('login', 'ctrl-c')
    await term.waitFor('(y/N)')
    await sleep(300)
    const pressed = Date.now()
    term.key('C-c')
    const screen = await term.waitFor(/\[tty [^\]]*\]/, 5_000)
    const ended = Number(/\[ended (\d+)\]/.exec(screen)![1])
    expect(screen).toContain('[exit 130]')
    expect(ended - pressed).toBeLessThan(1_000)
    // Canonical mode and echo are back: the shell's line editing works.
    expect(screen).toMatch(/\[tty icanon echo ?\]/)
    expect(term.cursorVisible()).toBe(true)
  })

  it('deletes for every backspace of a burst, in a text field and a password field', async () => {
    term = open('login', 'burst')
    await term.waitFor('(y/N)')
    await term.type('y', false)
    await term.waitFor('user name')
    await term.type('abcdef', false)
    await term.waitFor('user name: abcdef')
    // Three DEL bytes (what the backspace key sends) in one write to the terminal.
    await term.type('\u007f'.repeat(3), false)
    expect(await term.waitFor(/user name: abc(?!d)/)).not.toMatch(/user name: abcd/)
    await term.type('', true)
    await term.waitFor('password')
    await term.type('25 characters of password', false)
    await term.waitFor(/password: \*{25}/)
    await term.type('\u007f'.repeat(2), false)
    await term.waitFor(/password: \*{23}(?!\*)/)
    term.key('C-c')
    await term.waitFor('[exit 130]', 5_000)
  })
})
