import { useEffect, useLayoutEffect, useRef, useState } from 'react'
import { invokedAs } from '../base/invoked.js'
import { Box, Text, useStdout } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import { isAdmin } from '../auth/roles.js'
import type { LoginResult, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { earlier, formatRemaining, formatTime } from './format.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Menu, type MenuItem } from './Menu.js'
import { Working } from './Working.js'
import { PasswordChange } from './PasswordChange.js'
import { TotpReset } from './TotpReset.js'
import { RecoveryRenewal } from './RecoveryRenewal.js'
import { SessionsView } from './SessionsView.js'
import { UserTable } from './UserTable.js'
import { AuditViewer } from './AuditViewer.js'
import { InviteScreen } from './InviteScreen.js'

/** How home ended: left with the session kept (quit) or revoked (log out), or an error. */
export type HomeOutcome = { user: string; loggedOut: boolean } | { error: SecureLoginError }

type Screen = 'menu' | 'password' | 'totp' | 'recovery' | 'sessions' | 'users' | 'audit' | 'invite' | 'logout' | 'quit'
type Choice = Exclude<Screen, 'menu'>

const EVERYONE: MenuItem<Choice>[] = [
  { id: 'password', label: 'change password', shortcut: 'p' },
  { id: 'totp', label: 'reset 2FA (enrol a new authenticator)', shortcut: 't' },
  { id: 'recovery', label: 'recovery codes (make ten new ones)', shortcut: 'c' },
  { id: 'sessions', label: 'sessions', shortcut: 's' },
]
const ADMINS: MenuItem<Choice>[] = [
  { id: 'users', label: 'users', shortcut: 'u' },
  { id: 'audit', label: 'audit log', shortcut: 'a' },
  { id: 'invite', label: 'invite', shortcut: 'i' },
]
const LEAVE: MenuItem<Choice>[] = [
  { id: 'logout', label: 'log out', shortcut: 'l' },
  { id: 'quit', label: 'quit (stay signed in)', shortcut: 'q' },
]

/**
 * Home after a login (or `securelogin home`, resuming a saved session): who you are, when the
 * session ends, and a menu of what you may do. Refreshes who you are from the server each time
 * the menu shows, so the expiry follows the idle timeout and a changed role changes the menu.
 */
export function HomeApp({
  client,
  result,
  onDone,
  columns,
  rows,
  now = Date.now,
  start = 'menu',
}: {
  client: TuiClient
  result: LoginResult
  /** The screen to open first (`securelogin passwd` and `reset-2fa` at a terminal); Esc goes to the menu. */
  start?: 'menu' | 'password' | 'totp'
  onDone: (outcome: HomeOutcome) => void
  columns?: number | undefined
  rows?: number | undefined
  now?: () => number
}) {
  const [screen, setScreen] = useState<Screen>(start)
  const [last, setLast] = useState<Choice>()
  const [who, setWho] = useState({
    user: result.user,
    role: result.role,
    endsAt: earlier(result.expiresAt, result.idleExpiresAt),
  })
  const [notice, setNotice] = useState<SecureLoginError>()
  const [heard, setHeard] = useState(client.notice?.())
  const [loggedOut, setLoggedOut] = useState(false)
  const clock = useClock(now)
  // The last frame (bye, logged out, or why logging out failed) is drawn back in the shell.
  useAlternateScreen(!(screen === 'quit' || (screen === 'logout' && (loggedOut || notice !== undefined))))

  useEffect(() => {
    if (screen !== 'menu') return
    let live = true
    client.whoami().then(
      ({ user, role, session }) => {
        if (!live) return
        setWho({ user, role, endsAt: session.expiresAt })
        setHeard(client.notice?.())
      },
      (error: unknown) => live && setNotice(asSecureLoginError(error)),
    )
    return () => {
      live = false
    }
  }, [screen])

  useEffect(() => {
    if (screen === 'quit') onDone({ user: who.user, loggedOut: false })
    if (screen !== 'logout') return
    client.logout().then(
      () => {
        setLoggedOut(true)
        onDone({ user: who.user, loggedOut: true })
      },
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        setNotice(failure)
        onDone({ error: failure })
      },
    )
  }, [screen])

  const back = () => setScreen('menu')
  const open = (choice: Choice) => {
    setNotice(undefined)
    setLast(choice)
    setScreen(choice)
  }

  switch (screen) {
    case 'password':
      return <PasswordChange client={client} user={who.user} onBack={back} />
    case 'totp':
      return <TotpReset client={client} onBack={back} columns={columns} rows={rows} />
    case 'recovery':
      return <RecoveryRenewal client={client} onBack={back} />
    case 'sessions':
      return <SessionsView client={client} onBack={back} />
    case 'users':
      return <UserTable client={client} self={who.user} onBack={back} rows={rows} />
    case 'audit':
      return <AuditViewer client={client} onBack={back} rows={rows} />
    case 'invite':
      return <InviteScreen client={client} onBack={back} />
    case 'logout':
      if (notice) return <ErrorView error={notice} />
      // The last frame stays in the shell: a plain line, not a spinner frozen mid-turn.
      return loggedOut ? (
        <Text>logged out: the session is revoked and its saved copy deleted</Text>
      ) : (
        <Working text="logging out" />
      )
    case 'quit':
      return (
        <Text>
          bye: the session stays saved until {formatTime(who.endsAt)}; {invokedAs()} home goes on with it
        </Text>
      )
    case 'menu':
  }

  const items = [...EVERYONE, ...(isAdmin(who.role) ? ADMINS : []), ...LEAVE]
  return (
    <Box flexDirection="column">
      <Text color="green">
        signed in as <Text bold>{who.user}</Text> ({who.role}) on {client.server}
      </Text>
      <Text>
        session ends {formatTime(who.endsAt)} ({formatRemaining(who.endsAt, clock)})
      </Text>
      {result.recoveryCodesLeft !== undefined && (
        <Text color={result.recoveryCodesLeft <= 3 ? 'yellow' : undefined}>
          recovery code used: {result.recoveryCodesLeft} left (after a login with a TOTP code, recovery codes makes ten
          new ones)
        </Text>
      )}
      {heard && (
        <Box marginTop={1} flexDirection="column">
          <Text color="yellow" bold>
            your authenticator was replaced {formatTime(heard.at)} from {heard.address}, with a recovery code
          </Text>
          <Text color="yellow">recovery codes cannot be renewed until {formatTime(heard.renewalHeldUntil)}</Text>
          <Text>{heard.message}</Text>
        </Box>
      )}
      <Box marginTop={1}>
        <Menu items={items} initial={last} onSelect={open} />
      </Box>
      {notice && <ErrorView error={notice} />}
      <KeyHints hints={['↑/↓: move', 'enter or letter: open', 'ctrl-c: quit']} />
    </Box>
  )
}

/** The current time, updated every 15 s so "in N min" counts down while the menu is open. */
function useClock(now: () => number): number {
  const [time, setTime] = useState(now)
  useEffect(() => {
    const timer = setInterval(() => setTime(now()), 15_000)
    return () => clearInterval(timer)
  }, [now])
  return time
}

const ENTER_ALTERNATE = '\u001B[?1049h\u001B[H'
const LEAVE_ALTERNATE = '\u001B[?1049l'

/**
 * Home is a full-screen app, as k9s or lazygit are: at a terminal it draws on the alternate
 * screen, so its menus and tables never pile up in the scrollback, and gives the terminal back
 * as it found it. `active` false leaves early, so the final frame lands in the shell; an unmount
 * (Ctrl-C, an error, a signal Ink catches) leaves too. Ink's write() clears its frame, writes
 * the switch, and draws the frame again on the other screen, so its line count stays right.
 */
function useAlternateScreen(active: boolean): void {
  const { stdout, write } = useStdout()
  const on = useRef(false)
  useLayoutEffect(() => {
    if (!stdout.isTTY || on.current === active) return
    on.current = active
    write(active ? ENTER_ALTERNATE : LEAVE_ALTERNATE)
  }, [active])
  useLayoutEffect(
    () => () => {
      // Ink has stopped drawing by now: straight to the terminal.
      if (on.current) stdout.write(LEAVE_ALTERNATE)
      on.current = false
    },
    [],
  )
}
