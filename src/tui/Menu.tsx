import { useState } from 'react'
import { Box, Text, useInput } from 'ink'

export interface MenuItem<T extends string> {
  id: T
  label: string
  /** One key that picks the item at once. */
  shortcut?: string
  /** Shown dim after the label, e.g. "current" for the value it has now. */
  note?: string
}

/**
 * A vertical list: ↑/↓ move, Enter picks, or the item's shortcut key picks it directly. Items
 * keep their places, so the same keys reach the same item every time.
 */
export function Menu<T extends string>({
  items,
  onSelect,
  initial,
  isActive = true,
}: {
  items: MenuItem<T>[]
  onSelect: (id: T) => void
  initial?: T | undefined
  isActive?: boolean
}) {
  const [index, setIndex] = useState(() =>
    Math.max(
      0,
      items.findIndex((item) => item.id === initial),
    ),
  )
  const at = Math.min(index, items.length - 1)
  useInput(
    (input, key) => {
      if (key.upArrow) setIndex((at - 1 + items.length) % items.length)
      else if (key.downArrow) setIndex((at + 1) % items.length)
      else if (key.return) onSelect(items[at].id)
      else {
        const picked = items.find((item) => item.shortcut !== undefined && item.shortcut === input)
        if (picked) onSelect(picked.id)
      }
    },
    { isActive },
  )
  return (
    <Box flexDirection="column">
      {items.map((item, i) => (
        <Text key={item.id} color={i === at ? 'cyan' : undefined}>
          {i === at ? '❯ ' : '  '}
          {item.shortcut ? <Text dimColor={i !== at}>[{item.shortcut}] </Text> : null}
          {item.label}
          {item.note ? <Text dimColor> ({item.note})</Text> : null}
        </Text>
      ))}
    </Box>
  )
}
