import { useRef } from 'react'
import { Box, Text } from 'ink'
import TextInput from 'ink-text-input'

/**
 * A labelled one-line input; `mask` hides what is typed (passwords), `filter` cleans each edit.
 * Ink attaches input handlers after a frame is painted, so an Enter that follows fast typing
 * (or a paste) can reach the previous render's handler: submit the latest value from a ref.
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
  const latest = useRef(props.value)
  latest.current = props.value
  const change = (raw: string) => {
    const value = props.filter ? props.filter(raw) : raw
    latest.current = value
    props.onChange(value)
  }
  return (
    <Box>
      <Text bold>{props.label}: </Text>
      <TextInput
        value={props.value}
        onChange={change}
        onSubmit={() => props.onSubmit(latest.current)}
        {...(props.mask ? { mask: '*' } : {})}
        {...(props.placeholder ? { placeholder: props.placeholder } : {})}
      />
    </Box>
  )
}

export const digitsOnly = (value: string) => value.replace(/[^0-9]/g, '').slice(0, 6)
