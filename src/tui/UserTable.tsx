import { useEffect, useState } from 'react'
import { Box, Text, useInput } from 'ink'
import { ROLES } from '../auth/roles.js'
import type { SecureLoginError } from '../protocol/errors.js'
import type { Role, TuiClient, AccountSummary } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { useEscape } from './use-escape.js'
import { formatTime, plural } from './format.js'
import { Table, useTerminalSize, type Column } from './Cell.js'
import { Confirm } from './Confirm.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Menu } from './Menu.js'
import { Working } from './Working.js'

type Action =
  | { kind: 'remove'; user: string }
  | { kind: 'role'; user: string; role: Role }
  | { kind: 'reset-2fa'; user: string }
  | { kind: 'unlock'; user: string }
  | { kind: 'revoke'; user: string }

type Mode =
  | { name: 'table' }
  | { name: 'actions'; user: AccountSummary }
  /** same: the person picked the role the user has already. */
  | { name: 'role'; user: AccountSummary; same?: boolean }
  | { name: 'confirm'; action: Action }
  | { name: 'working' }

const NAME_KEYS = /^[A-Za-z0-9._-]+$/

/** Too wide: "created" goes first, then "last login", "locked" and "2FA"; a long name is cut. */
function columnsFor(self: string): Column<AccountSummary>[] {
  return [
    { head: 'name', max: 24, min: 10, text: (u) => (u.user === self ? `${u.user} (you)` : u.user) },
    { head: 'role', max: 12, text: (u) => u.role },
    { head: 'created', max: 16, drop: 1, text: (u) => formatTime(u.createdAt) },
    { head: 'last login', max: 16, drop: 2, text: (u) => (u.lastLoginAt ? formatTime(u.lastLoginAt) : 'never') },
    {
      head: 'locked',
      max: 6,
      drop: 3,
      text: (u) => (u.locked ? 'yes' : 'no'),
      color: (u) => (u.locked ? 'yellow' : undefined),
    },
    {
      head: '2FA',
      max: 8,
      drop: 4,
      text: (u) => u.twoFactor,
      color: (u) => (u.twoFactor === 'reset' ? 'yellow' : undefined),
    },
  ]
}

function question(action: Action): string {
  switch (action.kind) {
    case 'remove':
      return `remove ${action.user}? the account and its sessions are gone for good`
    case 'role':
      return `make ${action.user} ${action.role}?`
    case 'reset-2fa':
      return `reset 2FA of ${action.user}? they enrol a new authenticator at their next login`
    case 'unlock':
      return `unlock ${action.user}?`
    case 'revoke':
      return `revoke every session of ${action.user}?`
  }
}

async function perform(client: TuiClient, action: Action): Promise<string> {
  const { user } = action
  switch (action.kind) {
    case 'remove': {
      const { revokedSessions } = await client.removeUser(user)
      return `removed ${user}; ${plural(revokedSessions, 'session')} revoked`
    }
    case 'role': {
      const { previous } = await client.setRole(user, action.role)
      return `${user} is now ${action.role} (was ${previous})`
    }
    case 'reset-2fa': {
      const { revokedSessions } = await client.resetUser2fa(user)
      return `${user} enrols a new authenticator at the next login; ${plural(revokedSessions, 'session')} revoked`
    }
    case 'unlock': {
      const { wasLocked } = await client.unlockUser(user)
      return wasLocked ? `unlocked ${user}` : `${user} was not locked`
    }
    case 'revoke':
      return `revoked ${plural(await client.revokeUserSessions(user), 'session')} of ${user}`
  }
}

/**
 * The accounts (admins): type to filter by name, ↑/↓ to select, Enter for the selected user's
 * actions, each confirmed first. The server decides what this admin may do to whom; a refusal
 * shows its message in place. The table reloads after every action.
 */
export function UserTable({
  client,
  self,
  onBack,
  rows,
  columns,
}: {
  client: TuiClient
  self: string
  onBack: () => void
  rows?: number | undefined
  /** The terminal's width, for tests; otherwise read from the terminal, and again on resize. */
  columns?: number | undefined
}) {
  const size = useTerminalSize(columns, rows)
  const [users, setUsers] = useState<AccountSummary[]>()
  const [filter, setFilter] = useState('')
  const [index, setIndex] = useState(0)
  const [mode, setMode] = useState<Mode>({ name: 'table' })
  const [message, setMessage] = useState<string>()
  const [notice, setNotice] = useState<SecureLoginError>()

  const load = () =>
    client.listUsers().then(
      (list) => setUsers(list),
      (error: unknown) => setNotice(asSecureLoginError(error)),
    )
  useEffect(() => {
    void load()
  }, [])

  const shown = (users ?? []).filter((u) => u.user.includes(filter))
  const at = Math.max(0, Math.min(index, shown.length - 1))
  const selected = shown[at]
  const visible = Math.max(5, size.rows - 12)
  const start = Math.max(0, at - visible + 1)

  useInput(
    (input, key) => {
      if (key.upArrow) return setIndex(Math.max(0, at - 1))
      if (key.downArrow) return setIndex(Math.min(shown.length - 1, at + 1))
      if (key.pageUp) return setIndex(Math.max(0, at - visible))
      if (key.pageDown) return setIndex(Math.min(shown.length - 1, at + visible))
      if (key.return && selected) {
        setMessage(undefined)
        setNotice(undefined)
        return setMode({ name: 'actions', user: selected })
      }
      if (key.escape) return filter ? setFilter('') : onBack()
      if (key.backspace || key.delete) return setFilter(filter.slice(0, -1))
      if (NAME_KEYS.test(input) && !key.ctrl && !key.meta) {
        setFilter(filter + input.toLowerCase())
        setIndex(0)
      }
    },
    { isActive: mode.name === 'table' },
  )

  useInput(
    (input, key) => {
      if (mode.name !== 'actions') return
      const user = mode.user.user
      if (key.escape) setMode({ name: 'table' })
      else if (input === 'd') setMode({ name: 'confirm', action: { kind: 'remove', user } })
      else if (input === 'r') setMode({ name: 'role', user: mode.user })
      else if (input === '2') setMode({ name: 'confirm', action: { kind: 'reset-2fa', user } })
      else if (input === 'u') setMode({ name: 'confirm', action: { kind: 'unlock', user } })
      else if (input === 's') setMode({ name: 'confirm', action: { kind: 'revoke', user } })
    },
    { isActive: mode.name === 'actions' },
  )
  useEscape(() => mode.name === 'role' && setMode({ name: 'actions', user: mode.user }), mode.name === 'role')

  const answer = (action: Action) => (yes: boolean) => {
    if (!yes) return setMode({ name: 'table' })
    setMode({ name: 'working' })
    perform(client, action)
      .then(setMessage, (error: unknown) => setNotice(asSecureLoginError(error)))
      .finally(() => {
        setMode({ name: 'table' })
        void load()
      })
  }

  return (
    <Box flexDirection="column">
      <Text bold>
        users{users ? ` (${shown.length} of ${users.length})` : ''}
        {filter ? <Text color="cyan"> filter: {filter}</Text> : null}
      </Text>
      {users === undefined && !notice && <Working text="loading users" />}
      {users !== undefined && (
        <Box flexDirection="column">
          <Table
            columns={columnsFor(self)}
            rows={shown.slice(start, start + visible)}
            measure={shown}
            rowKey={(u) => u.user}
            width={size.columns}
            marked
            selected={selected}
          />
          {shown.length === 0 && <Text dimColor>no user name contains "{filter}"</Text>}
        </Box>
      )}
      {mode.name === 'actions' && <UserActions user={mode.user} />}
      {mode.name === 'role' && (
        <Box flexDirection="column">
          <Text>
            new role for {mode.user.user} (now {mode.user.role}):
          </Text>
          <Menu
            items={ROLES.map((role) => ({
              id: role,
              label: role,
              ...(role === mode.user.role ? { note: 'current' } : {}),
            }))}
            initial={mode.user.role}
            onSelect={(role) =>
              role === mode.user.role
                ? setMode({ ...mode, same: true })
                : setMode({ name: 'confirm', action: { kind: 'role', user: mode.user.user, role } })
            }
          />
          {mode.same && (
            <Text color="yellow">
              {mode.user.user} is already {mode.user.role}: pick another role, or esc to go back
            </Text>
          )}
          <KeyHints hints={['↑/↓: choose', 'enter: pick', 'esc: back']} />
        </Box>
      )}
      {mode.name === 'confirm' && <Confirm question={question(mode.action)} onAnswer={answer(mode.action)} />}
      {mode.name === 'working' && <Working text="working" />}
      {message && <Text color="green">{message}</Text>}
      {notice && <ErrorView error={notice} />}
      {mode.name === 'table' && (
        <KeyHints
          hints={[
            'type: filter by name',
            '↑/↓: select',
            'enter: actions',
            'backspace: edit filter',
            filter ? 'esc: clear filter' : 'esc: back',
          ]}
        />
      )}
    </Box>
  )
}

function UserActions({ user }: { user: AccountSummary }) {
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text>
        <Text bold>{user.user}</Text> ({user.role}) ·{' '}
        {user.locked && user.lockedUntil
          ? `locked until ${formatTime(user.lockedUntil)}`
          : user.locked
            ? 'locked'
            : 'not locked'}{' '}
        · 2FA {user.twoFactor} · {plural(user.recoveryCodesLeft, 'recovery code')} left
      </Text>
      <KeyHints
        hints={['d: remove', 'r: change role', '2: reset 2FA', 'u: unlock', 's: revoke sessions', 'esc: back']}
      />
    </Box>
  )
}
