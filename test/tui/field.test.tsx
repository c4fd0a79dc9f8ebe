import { useState } from 'react'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, render } from 'ink-testing-library'
import type { Key } from 'ink'
import { until } from './typing.js'
import { Field, digitsOnly, editField, type FieldState } from '../../src/tui/Field.js'
import { codeCharacters } from '../../src/tui/read-code.js'

afterEach(cleanup)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const typed = (text: string): FieldState => ({ chars: [...text], cursor: [...text].length })
const DEL = '\u007f'

// What Ink hands a field for bytes that arrive together: one string, no key flags.
describe('editField, one input event at a time', () => {
  const bursts: Array<[string, string, string, string]> = [
    ['three backspaces in one chunk', 'abcdef', DEL.repeat(3), 'abc'],
    ['BS (^H) as backspace', 'abcdef', '\b\b', 'abcd'],
    ['typing and deleting in one chunk, in order', 'a', `bc${DEL}${DEL}d`, 'ad'],
    ['more backspaces than characters', 'ab', DEL.repeat(5), ''],
    ['a backspace removes a whole code point', 'a😀', DEL, 'a'],
    ['control characters are dropped, never inserted', '', 'p\u0000a\u0007s\u009bs\t', 'pass'],
    ['^U deletes to the start', 'secret', '\u0015', ''],
    ['^W deletes the word before the cursor', 'two words ', '\u0017', 'two '],
    ['a bracketed-paste marker is not text', 'x', '[200~', 'x'],
  ]
  it.each(bursts)('%s', (_name, before, input, after) => {
    const edit = editField(typed(before), input, {})
    expect(edit.state.chars.join('')).toBe(after)
    expect(edit.submit).toBeUndefined()
  })

  it('submits at CR or LF with what came before it; what follows is dropped', () => {
    expect(editField(typed(''), 'pw\r', {})).toMatchObject({ submit: true, state: typed('pw') })
    expect(editField(typed('a'), `b${DEL}c\nmore`, {})).toMatchObject({ submit: true, state: typed('ac') })
  })

  it('quits at ^C inside a burst, where Ink does not see it', () => {
    expect(editField(typed(''), 'ab\u0003', {}).quit).toBe(true)
  })

  it('moves with the arrows and inserts at the cursor; a lone key with flags inserts nothing', () => {
    const key = (flags: Partial<Key>) => flags
    let state = typed('ac')
    state = editField(state, '', key({ leftArrow: true })).state
    state = editField(state, 'b', {}).state
    expect(state).toEqual({ chars: ['a', 'b', 'c'], cursor: 2 })
    state = editField(state, '', key({ delete: true })).state
    expect(state.chars.join('')).toBe('ac')
    expect(editField(state, 'u', key({ ctrl: true })).state).toEqual({ chars: ['c'], cursor: 0 })
    expect(editField(state, 'x', key({ ctrl: true })).state).toBe(state)
    expect(editField(state, 'b', key({ meta: true })).state).toBe(state)
    expect(editField(state, '', key({ return: true })).submit).toBe(true)
  })
})

/** A field as the screens hold one: the parent keeps the value. */
function Harness(props: { label: string; mask?: boolean; filter?: (v: string) => string; submitted: string[] }) {
  const [value, setValue] = useState('')
  return (
    <Field
      label={props.label}
      value={value}
      onChange={setValue}
      onSubmit={(v) => props.submitted.push(v)}
      {...(props.mask ? { mask: true } : {})}
      {...(props.filter ? { filter: props.filter } : {})}
    />
  )
}

async function field(props: { label: string; mask?: boolean; filter?: (v: string) => string }) {
  const submitted: string[] = []
  const app = render(<Harness {...props} submitted={submitted} />)
  await until(() => expect(app.lastFrame()).toContain(`${props.label}:`))
  // Ink attaches the input handler after the first frame is painted.
  await sleep(100)
  const write = async (chunk: string, shown?: string | RegExp) => {
    app.stdin.write(chunk)
    if (shown === undefined) await sleep(50)
    else await until(() => expect(app.lastFrame()).toMatch(shown))
  }
  return { app, submitted, write }
}

// The issue as reported: a held backspace (or a slow link) delivers several DEL bytes at once.
describe('Field, bytes that arrive together', () => {
  it('deletes three characters for three backspaces in one chunk, and submits what is shown', async () => {
    const { submitted, write } = await field({ label: 'user name' })
    await write('abcdef', 'user name: abcdef')
    await write(DEL.repeat(3), /user name: abc(?!d)/)
    await write('\r')
    await until(() => expect(submitted).toEqual(['abc']))
  })

  it('keeps a password mask in step: 25 typed, 2 deleted in one chunk, 23 left', async () => {
    const { app, submitted, write } = await field({ label: 'password', mask: true })
    const password = 'correct horse battery 123'
    await write(password, '*'.repeat(25))
    await write(DEL + DEL, /password: \*{23}(?!\*)/)
    expect(app.lastFrame()).not.toContain('correct')
    await write('\r')
    await until(() => expect(submitted).toEqual([password.slice(0, 23)]))
  })

  it('leaves no stale digits in a code field: a burst of backspaces empties it for the right code', async () => {
    const { submitted, write } = await field({ label: 'code', filter: digitsOnly })
    await write('12', 'code: 12')
    await write(DEL + DEL, /code:\s*$/)
    await write('654321', 'code: 654321')
    await write('\r')
    await until(() => expect(submitted).toEqual(['654321']))
  })

  it('takes a paste with control characters in it as its text, and a pasted line end as Enter', async () => {
    const { submitted, write } = await field({ label: 'code', filter: codeCharacters })
    await write('fake0\u0000-\u0007cafe0\r')
    await until(() => expect(submitted).toEqual(['fake0-cafe0']))
  })
})
