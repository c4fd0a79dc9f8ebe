import { render } from 'ink'
import type { ReactElement } from 'react'
import type { LoginResult, TuiClient } from './types.js'
import { RegisterApp, type RegisterResult } from './RegisterApp.js'
import { LoginApp, type LoginOutcome } from './LoginApp.js'
import { HomeApp, type HomeOutcome } from './HomeApp.js'

export type Cancelled = { cancelled: true }

/** Runs one flow to its end; Ctrl-C (Ink's exitOnCtrlC) ends it as cancelled, the terminal restored. */
async function runApp<T>(
  draw: (onDone: (result: T) => void) => ReactElement,
  client: TuiClient,
): Promise<T | Cancelled> {
  let outcome: T | undefined
  const instance = render(
    draw((result) => {
      outcome = result
      // Let Ink paint the last screen before leaving.
      setTimeout(() => instance.unmount(), 50)
    }),
  )
  try {
    await instance.waitUntilExit()
  } finally {
    client.close()
  }
  return outcome ?? { cancelled: true }
}

/** `user`: the name given with --user, filled in at the name step. */
export function runRegisterTui(client: TuiClient, user?: string): Promise<RegisterResult | Cancelled> {
  return runApp<RegisterResult>(
    (onDone) => <RegisterApp client={client} onDone={onDone} {...(user !== undefined ? { user } : {})} />,
    client,
  )
}

export function runLoginTui(
  client: TuiClient,
  opts: { renewRecoveryCodes?: boolean } = {},
): Promise<LoginOutcome | Cancelled> {
  return runApp<LoginOutcome>(
    (onDone) => <LoginApp client={client} onDone={onDone} renewRecoveryCodes={opts.renewRecoveryCodes ?? false} />,
    client,
  )
}

/** `securelogin home`: the caller has resumed the saved session (client.resumeSession) and passes its result. */
export function runHomeTui(
  client: TuiClient,
  result: LoginResult,
  start: 'menu' | 'password' | 'totp' = 'menu',
): Promise<HomeOutcome | Cancelled> {
  return runApp<HomeOutcome>(
    (onDone) => <HomeApp client={client} result={result} onDone={onDone} start={start} />,
    client,
  )
}
