import { useEffect, useRef, useState, type Key, type ReactNode } from 'react'
import { Box, Text, useStdout } from 'ink'
import { COLUMN_GAP, fitColumns, truncate, type ColumnFit } from './format.js'

/**
 * One table cell: its text cut to `width` with an ellipsis, then `gap` blank columns, so a long
 * value never runs into the next column and never wraps.
 */
export function Cell({
  width,
  text = '',
  gap = 0,
  head = false,
  chosen = false,
  color,
}: {
  width: number
  text?: string
  gap?: number
  head?: boolean
  chosen?: boolean
  color?: string | undefined
}) {
  return (
    <Box width={width + gap} flexShrink={0}>
      <Text wrap="truncate" bold={head} dimColor={head} color={chosen ? 'cyan' : color}>
        {truncate(text, width)}
      </Text>
    </Box>
  )
}

/** A column of a Table: how it fits (format.ts, fitColumns) and what it shows of a row. */
export interface Column<T> extends ColumnFit {
  text: (row: T) => string
  color?: (row: T) => string | undefined
}

/** The marker in front of the selected row, and the blank after it. */
const MARKER_WIDTH = 2

/**
 * A table that fits `width` terminal columns: column widths come from the text of `measure`
 * (default: the rows shown; pass every row that can be scrolled to, so the columns stay put
 * while scrolling), and fitColumns leaves out or cuts what does not fit. With `marked`, a `❯`
 * marks the `selected` row.
 */
export function Table<T>({
  columns,
  rows,
  measure = rows,
  rowKey,
  width,
  marked = false,
  selected,
  beforeRows,
}: {
  columns: readonly Column<T>[]
  rows: readonly T[]
  measure?: readonly T[]
  rowKey: (row: T) => Key
  width: number
  marked?: boolean
  selected?: T | undefined
  /** A line between the column heads and the rows (where the rows start in a longer list). */
  beforeRows?: ReactNode
}) {
  useRedrawOnShrink(width)
  const room = marked ? width - MARKER_WIDTH : width
  const widths = fitColumns(
    columns,
    measure.map((row) => columns.map((column) => column.text(row))),
    Math.max(0, room),
  )
  const shown = columns.flatMap((column, i) => (widths[i]! > 0 ? [{ column, width: widths[i]! }] : []))
  const gap = (i: number) => (i < shown.length - 1 ? COLUMN_GAP : 0)
  return (
    <Box flexDirection="column">
      <Box>
        {marked && <Cell width={MARKER_WIDTH} />}
        {shown.map(({ column, width }, i) => (
          <Cell key={i} width={width} gap={gap(i)} head text={column.head} />
        ))}
      </Box>
      {beforeRows}
      {rows.map((row) => {
        const chosen = marked && row === selected
        return (
          <Box key={rowKey(row)}>
            {marked && <Cell width={MARKER_WIDTH} text={chosen ? '❯' : ''} chosen={chosen} />}
            {shown.map(({ column, width }, i) => (
              <Cell
                key={i}
                width={width}
                gap={gap(i)}
                text={column.text(row)}
                chosen={chosen}
                color={column.color?.(row)}
              />
            ))}
          </Box>
        )
      })}
    </Box>
  )
}

/** Clears the screen and puts the cursor at its top left; Ink draws its last frame after it. */
const CLEAR_SCREEN = '\u001B[2J\u001B[H'
/** Ink draws at most one frame each 32 ms: the clear comes after the frame for the new width. */
const AFTER_NEXT_FRAME_MS = 50

/**
 * A terminal that gets narrower rewraps the lines already on it (tmux does, and most terminals
 * do), so the frame before takes more rows than Ink counts, and Ink's erase before the next
 * frame leaves its top rows behind. The tables live on home's full screen: once the narrower
 * frame is drawn, clear the screen, and Ink draws that frame again from the top, where its count
 * is right. Only at a terminal (ink-testing-library's stdout is not one).
 */
function useRedrawOnShrink(width: number): void {
  const { stdout, write } = useStdout()
  const was = useRef(width)
  useEffect(() => {
    const shrank = width < was.current
    was.current = width
    if (!shrank || !stdout.isTTY) return
    const timer = setTimeout(() => write(CLEAR_SCREEN), AFTER_NEXT_FRAME_MS)
    return () => clearTimeout(timer)
  }, [width])
}

/**
 * The terminal's size, kept in state: Ink lays out again on resize but does not render again,
 * so a screen that sizes itself to the terminal listens for `resize`. `columns` and `rows` are
 * a test seam (ink-testing-library's terminal is always 100 columns wide).
 */
export function useTerminalSize(columns?: number, rows?: number): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = () => ({ columns: columns ?? (stdout.columns || 80), rows: rows ?? (stdout.rows || 24) })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => {
      const now = read()
      setSize((was) => (was.columns === now.columns && was.rows === now.rows ? was : now))
    }
    onResize()
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout, columns, rows])
  return size
}
