import { expect, vi } from 'vitest'
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
