import { useEffect, useState } from 'react'
import { Box, Text, useInput, useStdout } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { AuditEntry, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { formatTime } from './format.js'
import { Cell } from './Cell.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'

const LIMIT = 200
const OUTCOME_COLOR = { ok: 'green', failed: 'red', refused: 'yellow' } as const

/** Adds entries by their chain number, so a re-follow that sends some again shows each once. */
function merge(known: AuditEntry[], more: AuditEntry[]): AuditEntry[] {
  const byNumber = new Map(known.map((entry) => [entry.n, entry]))
  for (const entry of more) byNumber.set(entry.n, entry)
  return [...byNumber.values()].sort((a, b) => a.n - b.n)
}

/**
 * The audit log (admins): the last 200 entries, then new ones as the server writes them while
 * following. `f` stops following (closing that connection) or starts again; leaving stops it.
 * The view sticks to the newest entry until the person scrolls up.
 */
export function AuditViewer({
  client,
  onBack,
  rows,
}: {
  client: TuiClient
  onBack: () => void
  rows?: number | undefined
}) {
  const { stdout } = useStdout()
  const [entries, setEntries] = useState<AuditEntry[]>()
  const [following, setFollowing] = useState(true)
  /** The first entry shown; undefined: the newest ones, following the end. */
  const [top, setTop] = useState<number>()
  const [notice, setNotice] = useState<SecureLoginError>()

  useEffect(() => {
    if (!following) return
    let live = true
    let stop: (() => void) | undefined
    const add = (more: AuditEntry[]) => live && setEntries((known) => merge(known ?? [], more))
    client
      .audit({ limit: LIMIT }, (entry) => add([entry]))
      .then(
        (answer) => {
          stop = answer.stop
          if (!live) return stop()
          add(answer.entries)
        },
        (error: unknown) => {
          if (!live) return
          setNotice(asSecureLoginError(error))
          setFollowing(false)
        },
      )
    return () => {
      live = false
      stop?.()
    }
  }, [following])

  const list = entries ?? []
  const height = Math.max(5, (rows ?? stdout.rows ?? 24) - 7)
  const last = Math.max(0, list.length - height)
  const first = top === undefined ? last : Math.min(top, last)
  const scrollTo = (line: number) => setTop(line >= last ? undefined : Math.max(0, line))

  useInput((input, key) => {
    if (key.escape) onBack()
    else if (key.upArrow) scrollTo(first - 1)
    else if (key.downArrow) scrollTo(first + 1)
    else if (key.pageUp) scrollTo(first - height)
    else if (key.pageDown) scrollTo(first + height)
    else if (input === 'f') setFollowing(!following)
  })

  return (
    <Box flexDirection="column">
      <Text bold>
        audit log: {list.length} entries
        {following ? <Text color="green"> · following</Text> : <Text dimColor> · not following</Text>}
        {top !== undefined && list.length > height ? <Text dimColor> · scrolled up</Text> : null}
      </Text>
      {entries === undefined && !notice && <Working text="loading the audit log" />}
      <Box>
        <Cell width={21} head text="time" />
        <Cell width={14} head text="actor" />
        <Cell width={20} head text="action" />
        <Cell width={16} head text="target" />
        <Cell width={9} head text="outcome" />
        <Cell width={18} head text="address" />
      </Box>
      {list.slice(first, first + height).map((entry) => (
        <Box key={entry.n}>
          <Cell width={21} text={formatTime(entry.at, { seconds: true })} />
          <Cell width={14} text={entry.actor ?? '-'} />
          <Cell width={20} text={entry.action} />
          <Cell width={16} text={entry.target ?? '-'} />
          <Cell width={9} text={entry.outcome} color={OUTCOME_COLOR[entry.outcome]} />
          <Cell width={18} text={entry.address ?? '-'} />
        </Box>
      ))}
      {notice && <ErrorView error={notice} />}
      <KeyHints hints={['↑/↓ pgup/pgdn: scroll', `f: ${following ? 'stop following' : 'follow'}`, 'esc: back']} />
    </Box>
  )
}
