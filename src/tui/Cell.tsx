import { Box, Text } from 'ink'

/** One table cell of fixed width; text that does not fit is cut, so columns stay aligned. */
export function Cell({
  width,
  text = '',
  head = false,
  chosen = false,
  color,
}: {
  width: number
  text?: string
  head?: boolean
  chosen?: boolean
  color?: string | undefined
}) {
  return (
    <Box width={width} flexShrink={0}>
      <Text wrap="truncate" bold={head} dimColor={head} color={chosen ? 'cyan' : color}>
        {text}
      </Text>
    </Box>
  )
}
