import { useEffect, useReducer, useRef, useState } from 'react'
import { Box, Text, useInput } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { AuditEntry, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { formatTime } from './format.js'
import { Table, useTerminalSize, type Column } from './Cell.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'

const LIMIT = 200
const OUTCOME_COLOR = { ok: 'green', failed: 'red', refused: 'yellow' } as const

/** Too wide: the address goes; names, actions and targets are cut, never the time or the outcome. */
const COLUMNS: Column<AuditEntry>[] = [
  { head: 'time', max: 19, text: (entry) => formatTime(entry.at, { seconds: true }) },
  { head: 'actor', max: 20, min: 8, text: (entry) => entry.actor ?? '-' },
  { head: 'action', max: 24, min: 12, text: (entry) => entry.action },
  { head: 'target', max: 24, min: 8, text: (entry) => entry.target ?? '-' },
  { head: 'outcome', max: 7, text: (entry) => entry.outcome, color: (entry) => OUTCOME_COLOR[entry.outcome] },
  { head: 'address', max: 39, min: 9, drop: 1, text: (entry) => entry.address ?? '-' },
]

/** What has been read of the log, and where the view is in it. */
interface Log {
  /** Oldest first, each entry once; undefined until the first answer. */
  entries: AuditEntry[] | undefined
  /** The `before` that asks for the next older page; undefined once the start of the log is loaded. */
  older: number | undefined
  /** The number of the newest entry the server has told of: entries are numbered from 1, so the log's length. */
  total: number
  /** The number of the first entry shown; undefined: the newest ones, following the end. */
  top: number | undefined
}

type LogEvent =
  | { type: 'followed'; entries: AuditEntry[]; headN: number }
  | { type: 'pushed'; entry: AuditEntry }
  | { type: 'page'; before: number; entries: AuditEntry[]; next: number | undefined }
  | { type: 'scroll'; by: number; height: number }

const count = (n: number) => n.toLocaleString('en-US')
const ascending = (entries: AuditEntry[]) => entries.every((entry, i) => i === 0 || entries[i - 1]!.n < entry.n)
/** The first entries of the log are numbered from 1: a list that starts later has older ones to ask for. */
const olderThan = (entries: AuditEntry[]) => (entries[0] !== undefined && entries[0].n > 1 ? entries[0].n : undefined)

/**
 * Adds entries by their chain number, so a re-follow that sends some again shows each once. A
 * page that goes wholly before or after the known ones is a cheap concatenation: that is every
 * older page and every followed entry.
 */
function merge(known: AuditEntry[], more: AuditEntry[]): AuditEntry[] {
  if (more.length === 0) return known
  if (known.length === 0 && ascending(more)) return more
  if (ascending(more) && known.length > 0) {
    if (more[0]!.n > known.at(-1)!.n) return [...known, ...more]
    if (more.at(-1)!.n < known[0]!.n) return [...more, ...known]
  }
  const byNumber = new Map(known.map((entry) => [entry.n, entry]))
  for (const entry of more) byNumber.set(entry.n, entry)
  return [...byNumber.values()].sort((a, b) => a.n - b.n)
}

/** The index of the first entry numbered `n` or later (entries are sorted by number). */
function indexOf(entries: AuditEntry[], n: number): number {
  let low = 0
  let high = entries.length
  while (low < high) {
    const mid = (low + high) >> 1
    if (entries[mid]!.n < n) low = mid + 1
    else high = mid
  }
  return low
}

/** The index of the first entry shown in `height` rows. */
function firstShown({ entries = [], top }: Log, height: number): number {
  const last = Math.max(0, entries.length - height)
  return top === undefined ? last : Math.min(indexOf(entries, top), last)
}

function update(log: Log, event: LogEvent): Log {
  const known = log.entries ?? []
  switch (event.type) {
    case 'followed': {
      const fresh = event.entries
      const total = Math.max(log.total, event.headN, fresh.at(-1)?.n ?? 0)
      if (known.length > 0 && fresh.length > 0 && fresh[0]!.n > known.at(-1)!.n + 1) {
        // More was written while not following than one answer holds: keeping the old entries
        // would leave a hole that no older page fills, so the view starts again at the newest.
        return { entries: fresh, older: olderThan(fresh), total, top: undefined }
      }
      const entries = merge(known, fresh)
      // Known entries still at the front keep their cursor; otherwise the answer sets it.
      const older = known.length > 0 && entries[0]!.n === known[0]!.n ? log.older : olderThan(entries)
      return { ...log, entries, older, total }
    }
    case 'pushed':
      return { ...log, entries: merge(known, [event.entry]), total: Math.max(log.total, event.entry.n) }
    case 'page': {
      // An answer to a page the log no longer asks for (a re-follow started over) is dropped.
      if (event.before !== log.older) return log
      const entries = merge(known, event.entries)
      // A next that does not go back would ask for the same page for ever.
      const next = event.next !== undefined && event.next < event.before ? event.next : undefined
      return { ...log, entries, older: event.entries.length > 0 ? next : undefined }
    }
    case 'scroll': {
      // Scrolls by entry number, so an older page put in front leaves the view where it is.
      const last = Math.max(0, known.length - event.height)
      const line = firstShown(log, event.height) + event.by
      return { ...log, top: line >= last ? undefined : known[Math.max(0, line)]?.n }
    }
  }
}

/**
 * The audit log (admins): the last 200 entries, then new ones as the server writes them while
 * following. `f` stops following (closing that connection) or starts again; leaving stops it.
 * The view sticks to the newest entry until the person scrolls up; reaching the oldest entry
 * loaded asks the server for the page before it, one page at a time, until the start of the log.
 */
export function AuditViewer({
  client,
  onBack,
  rows,
  columns,
}: {
  client: TuiClient
  onBack: () => void
  rows?: number | undefined
  /** The terminal's width, for tests; otherwise read from the terminal, and again on resize. */
  columns?: number | undefined
}) {
  const size = useTerminalSize(columns, rows)
  const [log, dispatch] = useReducer(update, { entries: undefined, older: undefined, total: 0, top: undefined })
  const [following, setFollowing] = useState(true)
  const [notice, setNotice] = useState<SecureLoginError>()
  /** The `before` of the older page being read: one at a time, so no page is asked for twice at once. */
  const reading = useRef<number | undefined>(undefined)
  const [loadingOlder, setLoadingOlder] = useState(false)
  /** The `before` whose page failed: not asked again until the person scrolls up again. */
  const [failed, setFailed] = useState<number>()
  const pageError = useRef<SecureLoginError | undefined>(undefined)
  const mounted = useRef(true)
  useEffect(
    () => () => {
      mounted.current = false
    },
    [],
  )

  useEffect(() => {
    if (!following) return
    let live = true
    let stop: (() => void) | undefined
    client
      .audit({ limit: LIMIT }, (entry) => live && dispatch({ type: 'pushed', entry }))
      .then(
        (answer) => {
          stop = answer.stop
          if (!live) return stop()
          dispatch({ type: 'followed', entries: answer.entries, headN: answer.head.n })
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

  const list = log.entries ?? []
  // Title, column heads, the line above the entries, key hints, and room for an error.
  const height = Math.max(5, size.rows - 8)
  const first = firstShown(log, height)
  const atOldest = log.entries !== undefined && first === 0

  useEffect(() => {
    const before = log.older
    if (!atOldest || before === undefined || before === failed || reading.current !== undefined) return
    reading.current = before
    setLoadingOlder(true)
    client.auditPage({ before, limit: LIMIT }).then(
      (page) => {
        if (!mounted.current) return
        reading.current = undefined
        setLoadingOlder(false)
        setNotice((shown) => (shown !== undefined && shown === pageError.current ? undefined : shown))
        dispatch({ type: 'page', before, entries: page.entries, next: page.next })
      },
      (error: unknown) => {
        if (!mounted.current) return
        reading.current = undefined
        setLoadingOlder(false)
        pageError.current = asSecureLoginError(error)
        setNotice(pageError.current)
        setFailed(before)
      },
    )
    // loadingOlder: a page that ended after the cursor moved on (a re-follow) lets the next one go.
  }, [atOldest, log.older, failed, loadingOlder])

  useInput((input, key) => {
    const scroll = (by: number) => dispatch({ type: 'scroll', by, height })
    if (key.escape) onBack()
    else if (key.upArrow || key.pageUp) {
      // Scrolling up again is how a person retries a page that failed.
      setFailed(undefined)
      scroll(key.upArrow ? -1 : -height)
    } else if (key.downArrow) scroll(1)
    else if (key.pageDown) scroll(height)
    else if (input === 'f') setFollowing((now) => !now)
  })

  const loaded = list.length
  const total = Math.max(log.total, loaded)
  const shown = list.slice(first, first + height)
  return (
    <Box flexDirection="column">
      <Text bold>
        audit log: {loaded < total ? `${count(loaded)} of ${count(total)} entries loaded` : `${count(total)} entries`}
        {following ? <Text color="green"> · following</Text> : <Text dimColor> · not following</Text>}
        {log.top !== undefined && list.length > height ? <Text dimColor> · scrolled up</Text> : null}
      </Text>
      {log.entries === undefined && !notice && <Working text="loading the audit log" />}
      <Table
        columns={COLUMNS}
        rows={shown}
        measure={list}
        rowKey={(entry) => entry.n}
        width={size.columns}
        beforeRows={
          loadingOlder ? (
            <Working text="loading older entries" />
          ) : log.entries === undefined ? (
            <Text> </Text>
          ) : atOldest && log.older === undefined ? (
            <Text dimColor>── start of the log ──</Text>
          ) : atOldest && log.older === failed ? (
            <Text dimColor>↑ older entries did not load: scroll up to try again</Text>
          ) : (
            <Text dimColor>↑ {count(Math.max(first, (shown[0]?.n ?? 1) - 1))} older entries</Text>
          )
        }
      />
      {notice && <ErrorView error={notice} />}
      <KeyHints hints={['↑/↓ pgup/pgdn: scroll', `f: ${following ? 'stop following' : 'follow'}`, 'esc: back']} />
    </Box>
  )
}
