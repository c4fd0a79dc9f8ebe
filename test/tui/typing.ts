import { EventEmitter } from 'node:events'
import type { ReactElement } from 'react'
import { expect, vi } from 'vitest'
import { render as inkRender } from 'ink'
import type { render } from 'ink-testing-library'

type App = ReturnType<typeof render>

/** The first QR draw and the first Ink render can take a while on a loaded machine. */
export const until = (check: () => void) => vi.waitFor(check, { timeout: 20_000 })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Types as a person would (FACTS.md): let the prompt settle, because Ink attaches an input
 * handler in a passive effect after the frame is painted and a keystroke sent before that reaches
 * the previous handler; write the text, wait for it to show (`shown`, or a short pause when
 * nothing is shown), then send Enter on its own.
 */
export async function type(app: App, text: string, shown = text) {
  await sleep(100)
  app.stdin.write(text)
  if (shown) await until(() => expect(app.lastFrame()).toContain(shown))
  else await sleep(50)
  app.stdin.write('\r')
}

/**
 * A terminal for what ink-testing-library does not show: a TTY of a given size, every byte Ink
 * writes (escape sequences included), and Ctrl-C handled by Ink as at a real terminal.
 */
export function renderInTerminal(tree: ReactElement, opts: { columns?: number; rows?: number; debug?: boolean } = {}) {
  const written: string[] = []
  const stdout = Object.assign(new EventEmitter(), {
    isTTY: true,
    columns: opts.columns ?? 100,
    rows: opts.rows ?? 40,
    write: (data: string) => (written.push(data), true),
  })
  let pending: string | null = null
  const stdin = Object.assign(new EventEmitter(), {
    isTTY: true,
    setEncoding() {},
    setRawMode() {},
    resume() {},
    pause() {},
    ref() {},
    unref() {},
    read: () => {
      const data = pending
      pending = null
      return data
    },
    write(data: string) {
      pending = data
      stdin.emit('readable')
    },
  })
  const instance = inkRender(tree, {
    stdout: stdout as unknown as NodeJS.WriteStream,
    stderr: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    // Debug mode draws every frame whole: without it Ink, seeing CI=true (as .ci/run sets it),
    // writes nothing until the app unmounts, and a test waiting for a prompt waits for ever.
    debug: opts.debug ?? true,
    patchConsole: false,
  })
  return {
    stdin,
    instance,
    /** Everything written so far, as one string. */
    output: () => written.join(''),
    /** The last write: in debug mode, the whole last frame. */
    lastFrame: () => written.at(-1) ?? '',
  }
}

/**
 * A moment for the screen just drawn to attach its input handler (Ink's useInput runs in an
 * effect after the frame): a key written before it is lost, which a loaded machine shows.
 */
export const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 100))
