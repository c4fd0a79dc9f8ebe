import { useEffect, useState } from 'react'
import { Box, Text, useInput } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { SessionInfo, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { formatTime, plural } from './format.js'
import { Table, useTerminalSize, type Column } from './Cell.js'
import { Confirm } from './Confirm.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'

type Mode =
  | { name: 'list' }
  | { name: 'confirm-one'; session: SessionInfo }
  | { name: 'confirm-others'; count: number }
  | { name: 'working' }

/** Too wide: "signed in" goes first, then "last seen"; a long address is cut, never left out. */
const COLUMNS: Column<SessionInfo>[] = [
  { head: 'id', max: 8, text: (session) => session.id.slice(0, 8) },
  { head: 'address', max: 39, min: 9, text: (session) => session.address },
  { head: 'signed in', max: 16, drop: 1, text: (session) => formatTime(session.createdAt) },
  { head: 'last seen', max: 16, drop: 2, text: (session) => formatTime(session.lastSeenAt) },
  { head: 'ends', max: 16, text: (session) => formatTime(session.expiresAt) },
  { head: '', max: 12, text: (session) => (session.current ? 'this session' : ''), color: () => 'green' },
]

/** The person's own sessions, this one marked; revoke one, or every other one. */
export function SessionsView({
  client,
  onBack,
  columns: columnsProp,
}: {
  client: TuiClient
  onBack: () => void
  /** The terminal's width, for tests; otherwise read from the terminal, and again on resize. */
  columns?: number | undefined
}) {
  const { columns } = useTerminalSize(columnsProp)
  const [sessions, setSessions] = useState<SessionInfo[]>()
  const [index, setIndex] = useState(0)
  const [mode, setMode] = useState<Mode>({ name: 'list' })
  const [message, setMessage] = useState<{ text: string; ok: boolean }>()
  const [notice, setNotice] = useState<SecureLoginError>()

  const load = () =>
    client.listSessions().then(
      (list) => {
        setSessions(list)
        setIndex((i) => Math.max(0, Math.min(i, list.length - 1)))
      },
      (error: unknown) => setNotice(asSecureLoginError(error)),
    )
  useEffect(() => {
    void load()
  }, [])

  const list = sessions ?? []
  const selected = list[Math.min(index, list.length - 1)]
  useInput(
    (input, key) => {
      if (key.escape) return onBack()
      if (key.upArrow) return setIndex(Math.max(0, index - 1))
      if (key.downArrow) return setIndex(Math.min(list.length - 1, index + 1))
      setMessage(undefined)
      setNotice(undefined)
      if (input === 'r' && selected) {
        if (selected.current) setMessage({ text: 'that is this session: log out from the menu to end it', ok: false })
        else setMode({ name: 'confirm-one', session: selected })
      }
      if (input === 'o') {
        const count = list.filter((s) => !s.current).length
        if (count === 0) setMessage({ text: 'there are no other sessions', ok: false })
        else setMode({ name: 'confirm-others', count })
      }
    },
    { isActive: mode.name === 'list' },
  )

  const run = (work: Promise<number>) => {
    setMode({ name: 'working' })
    work
      .then(
        (revoked) => setMessage({ text: `revoked ${plural(revoked, 'session')}`, ok: true }),
        (error: unknown) => setNotice(asSecureLoginError(error)),
      )
      .finally(() => {
        setMode({ name: 'list' })
        void load()
      })
  }
  const answerOne = (session: SessionInfo) => (yes: boolean) =>
    yes ? run(client.revokeSession(session.id)) : setMode({ name: 'list' })
  const answerOthers = (yes: boolean) => (yes ? run(client.revokeOtherSessions()) : setMode({ name: 'list' }))

  return (
    <Box flexDirection="column">
      <Text bold>your sessions</Text>
      {sessions === undefined && !notice && <Working text="loading sessions" />}
      {sessions !== undefined && (
        <Table
          columns={COLUMNS}
          rows={list}
          rowKey={(session) => session.id}
          width={columns}
          marked
          selected={selected}
        />
      )}
      {mode.name === 'confirm-one' && (
        <Confirm
          question={`revoke session ${mode.session.id.slice(0, 8)} from ${mode.session.address}?`}
          onAnswer={answerOne(mode.session)}
        />
      )}
      {mode.name === 'confirm-others' && (
        <Confirm question={`revoke your ${plural(mode.count, 'other session')}?`} onAnswer={answerOthers} />
      )}
      {mode.name === 'working' && <Working text="revoking" />}
      {message && <Text color={message.ok ? 'green' : 'yellow'}>{message.text}</Text>}
      {notice && <ErrorView error={notice} />}
      {mode.name === 'list' && (
        <KeyHints hints={['↑/↓: select', 'r: revoke selected', 'o: revoke all others', 'esc: back']} />
      )}
    </Box>
  )
}
