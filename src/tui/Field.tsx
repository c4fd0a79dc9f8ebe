import { useRef, useState } from 'react'
import { Box, Text, useApp, useInput, type Key } from 'ink'

/** What a field holds: its text as code points (a backspace removes one, never half a pair) and the cursor. */
export interface FieldState {
  chars: string[]
  cursor: number
}

/** What one input event did to a field: the new state, and whether it asked to submit or to quit. */
export interface FieldEdit {
  state: FieldState
  submit?: boolean
  quit?: boolean
}

// An escape sequence Ink does not know arrives without its ESC, as `[200~` (a terminal's
// bracketed-paste marker) or `[29~`: a key, not text.
const UNKNOWN_SEQUENCE = /^\[\d+(?:;\d+)*~$/
const CONTROL = /\p{Cc}/u

/**
 * Applies one input event to a field. Ink hands over a single key with its flags, but bytes that
 * arrive together (a held key, a slow SSH link, a paste) come as one string: "abc\x7f\x7f" or
 * "\x7f\x7f\x7f". Such a burst is read a character at a time, in order: DEL and BS delete,
 * CR or LF submits (what follows it is dropped), ^C quits, ^U and ^W delete as in a shell, and
 * any other control character is dropped, never inserted.
 */
export function editField(state: FieldState, input: string, key: Partial<Key>): FieldEdit {
  const { chars, cursor } = state
  const at = (next: number) => ({ state: { chars, cursor: Math.max(0, Math.min(chars.length, next)) } })
  if (key.return) return { state, submit: true }
  if (key.leftArrow) return at(cursor - 1)
  if (key.rightArrow) return at(cursor + 1)
  if (key.home) return at(0)
  if (key.end) return at(chars.length)
  // Ink reports the backspace key (DEL) as `delete`, the same as the forward-delete key.
  if (key.backspace || key.delete) return { state: deleteBack(state, 1) }
  if (key.ctrl) {
    if (input === 'u') return { state: deleteBack(state, cursor) }
    if (input === 'w') return { state: deleteBack(state, cursor - wordStart(chars, cursor)) }
    if (input === 'a') return at(0)
    if (input === 'e') return at(chars.length)
    return { state }
  }
  if (key.meta || key.escape || key.tab || key.upArrow || key.downArrow || key.pageUp || key.pageDown) return { state }
  if (UNKNOWN_SEQUENCE.test(input)) return { state }
  let next = state
  for (const char of input) {
    if (char === '\x7f' || char === '\b') next = deleteBack(next, 1)
    else if (char === '\r' || char === '\n') return { state: next, submit: true }
    else if (char === '\x03') return { state: next, quit: true }
    else if (char === '\x15') next = deleteBack(next, next.cursor)
    else if (char === '\x17') next = deleteBack(next, next.cursor - wordStart(next.chars, next.cursor))
    else if (!CONTROL.test(char)) {
      const chars = [...next.chars.slice(0, next.cursor), char, ...next.chars.slice(next.cursor)]
      next = { chars, cursor: next.cursor + 1 }
    }
  }
  return { state: next }
}

function deleteBack({ chars, cursor }: FieldState, count: number): FieldState {
  const from = Math.max(0, cursor - count)
  return { chars: [...chars.slice(0, from), ...chars.slice(cursor)], cursor: from }
}

/** Where the word before the cursor starts (spaces before it go with it, as in a shell). */
function wordStart(chars: string[], cursor: number): number {
  let i = cursor
  while (i > 0 && chars[i - 1] === ' ') i--
  while (i > 0 && chars[i - 1] !== ' ') i--
  return i
}

/**
 * A labelled one-line input; `mask` hides what is typed (passwords), `filter` cleans the value
 * after each input event. Ink attaches input handlers after a frame is painted, so keys that
 * follow fast (or an Enter after a paste) can reach the previous render's handler: the state lives
 * in a ref that every handler reads and writes, and submit sends the latest value.
 */
export function Field(props: {
  label: string
  value: string
  onChange: (value: string) => void
  onSubmit: (value: string) => void
  mask?: boolean
  placeholder?: string
  filter?: (value: string) => string
}) {
  const { exit } = useApp()
  const state = useRef<FieldState>({ chars: [...props.value], cursor: [...props.value].length })
  const [, redraw] = useState(0)
  // The parent set another value (cleared it after a failure): take it, the cursor at its end.
  if (state.current.chars.join('') !== props.value)
    state.current = { chars: [...props.value], cursor: [...props.value].length }

  useInput((input, key) => {
    const before = state.current
    const edit = editField(before, input, key)
    let next = edit.state
    if (props.filter && next !== before) {
      // The cursor stays after what it followed, as far as the filter kept it.
      const chars = [...props.filter(next.chars.join(''))]
      const cursor = [...props.filter(next.chars.slice(0, next.cursor).join(''))].length
      next = { chars, cursor: Math.min(cursor, chars.length) }
    }
    state.current = next
    const value = next.chars.join('')
    if (value !== before.chars.join('')) props.onChange(value)
    redraw((n) => n + 1)
    if (edit.quit) exit()
    else if (edit.submit) props.onSubmit(value)
  })

  const { chars, cursor } = state.current
  const shown = props.mask ? chars.map(() => '*') : chars
  return (
    <Box>
      <Text bold>{props.label}: </Text>
      {shown.length === 0 && props.placeholder ? (
        <Text>
          <Text inverse>{props.placeholder[0]}</Text>
          <Text dimColor>{props.placeholder.slice(1)}</Text>
        </Text>
      ) : (
        <Text>
          {shown.slice(0, cursor).join('')}
          <Text inverse>{shown[cursor] ?? ' '}</Text>
          {shown.slice(cursor + 1).join('')}
        </Text>
      )}
    </Box>
  )
}

export const digitsOnly = (value: string) => value.replace(/[^0-9]/g, '').slice(0, 6)
