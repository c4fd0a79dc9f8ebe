import { execFileSync, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './env.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')

/**
 * A terminal driven as a person would drive it: its own tmux server (so nothing else is
 * touched), a fixed size, keys typed after the prompt is on screen.
 */
export class TmuxTerminal {
  readonly socket: string
  readonly #session = 'securelogin'

  private constructor(socket: string) {
    this.socket = socket
  }

  /** Runs `command` (argv) in a fresh tmux server; CI is unset because Ink prints nothing under CI=true. */
  static start(command: string[], opts: { width: number; height: number; env: Record<string, string> }): TmuxTerminal {
    const term = new TmuxTerminal(`securelogin-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)
    const envArgs = Object.entries(opts.env).map(([k, v]) => `${k}=${shellQuote(v)}`)
    // The shell keeps the pane open after the app exits, so its last screen can still be read,
    // and prints the terminal's line discipline then, which shows whether the app restored it.
    const modes = `stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '`
    const script = `env -u CI ${envArgs.join(' ')} ${command.map(shellQuote).join(' ')}; echo "[exit $?]"; echo "[tty $(${modes})]"; sleep 600`
    term.#tmux('new-session', '-d', '-s', term.#session, '-x', String(opts.width), '-y', String(opts.height), script)
    return term
  }

  /** The screen with colours (`capture-pane -p -e -N`). */
  capture(): string {
    return this.#tmux('capture-pane', '-p', '-e', '-N', '-t', this.#session)
  }

  text(): string {
    return stripAnsi(this.capture())
  }

  async waitFor(pattern: string | RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const text = this.text()
      if (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)) return text
      if (Date.now() > deadline) throw new Error(`screen never showed ${String(pattern)}; it shows:\n${text}`)
      await sleep(100)
    }
  }

  /** Types text, waits ~300 ms, then presses Enter on its own (what Ink needs, per FACTS.md). */
  async type(text: string, enter = true): Promise<void> {
    await sleep(300)
    if (text) this.#tmux('send-keys', '-t', this.#session, '-l', text)
    if (!enter) return
    await sleep(300)
    this.#tmux('send-keys', '-t', this.#session, 'Enter')
  }

  /** Whether tmux shows the cursor (an app that hides it must show it again on exit). */
  cursorVisible(): boolean {
    return this.#tmux('display-message', '-p', '-t', this.#session, '#{cursor_flag}').trim() === '1'
  }

  key(name: string): void {
    this.#tmux('send-keys', '-t', this.#session, name)
  }

  /** Kills the app by its pid, then the tmux server. */
  stop(): void {
    const panePid = spawnSync(
      'tmux',
      ['-L', this.socket, 'display-message', '-p', '-t', this.#session, '#{pane_pid}'],
      { encoding: 'utf8' },
    ).stdout.trim()
    if (/^\d+$/.test(panePid)) spawnSync('pkill', ['-KILL', '-P', panePid])
    spawnSync('tmux', ['-L', this.socket, 'kill-server'])
  }

  #tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' })
  }
}

/** Decodes the QR code on a captured screen with zbarimg, reading it as a dark or light terminal would show it. */
export function decodeQrFromScreen(capture: string, dir: string, theme: 'dark' | 'light'): string {
  const txt = join(dir, `screen-${theme}.txt`)
  const pgm = join(dir, `screen-${theme}.pgm`)
  writeFileSync(txt, capture)
  execFileSync(process.execPath, [join(ROOT, 'test', 'tools', 'qr2pgm.mjs'), txt, pgm, theme])
  // zbarimg prints harmless dbus warnings on stderr in containers: read only stdout.
  const result = spawnSync('zbarimg', ['-q', '--raw', pgm], { encoding: 'utf8' })
  return result.stdout.trim()
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}
