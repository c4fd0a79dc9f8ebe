import { useEffect, useState } from 'react'
import { Box, Text, useInput } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { SessionInfo, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { formatTime, plural } from './format.js'
import { Cell } from './Cell.js'
import { Confirm } from './Confirm.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'

type Mode =
  | { name: 'list' }
  | { name: 'confirm-one'; session: SessionInfo }
  | { name: 'confirm-others'; count: number }
  | { name: 'working' }

/** The person's own sessions, this one marked; revoke one, or every other one. */
export function SessionsView({ client, onBack }: { client: TuiClient; onBack: () => void }) {
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
        <Box flexDirection="column">
          <Box>
            <Cell width={2} />
            <Cell width={10} head text="id" />
            <Cell width={17} head text="address" />
            <Cell width={18} head text="signed in" />
            <Cell width={18} head text="last seen" />
            <Cell width={18} head text="ends" />
          </Box>
          {list.map((session) => {
            const chosen = session === selected
            return (
              <Box key={session.id}>
                <Cell width={2} text={chosen ? '❯' : ''} chosen={chosen} />
                <Cell width={10} text={session.id.slice(0, 8)} chosen={chosen} />
                <Cell width={17} text={session.address} chosen={chosen} />
                <Cell width={18} text={formatTime(session.createdAt)} chosen={chosen} />
                <Cell width={18} text={formatTime(session.lastSeenAt)} chosen={chosen} />
                <Cell width={18} text={formatTime(session.expiresAt)} chosen={chosen} />
                {session.current && <Text color="green">this session</Text>}
              </Box>
            )
          })}
        </Box>
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
