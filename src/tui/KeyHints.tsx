import { Box, Text } from 'ink'

/**
 * The keys a screen takes, `a · b · c`. Hints that do not fit on one line go on to the next
 * whole, never split inside a hint (a flex row that wraps); a hint wider than the terminal is
 * cut with an ellipsis. No line is wider than the terminal, so none wraps on its own.
 */
export function KeyHints({ hints }: { hints: string[] }) {
  return (
    <Box flexWrap="wrap">
      {hints.map((hint, i) => (
        <Text key={i} dimColor wrap="truncate">
          {hint}
          {i < hints.length - 1 ? ' · ' : ''}
        </Text>
      ))}
    </Box>
  )
}
