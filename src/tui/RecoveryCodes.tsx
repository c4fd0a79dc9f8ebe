import { Box, Text } from 'ink'

/** Ten single-use codes, shown once: the words say so, as the person will not see them again. */
export function RecoveryCodes({ codes }: { codes: string[] }) {
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text bold>recovery codes: each works once in place of a code from your phone</Text>
      <Text>write them down or print them now; they are not shown again</Text>
      <Box flexDirection="column" marginLeft={2}>
        {codes.map((code) => (
          <Text key={code}>{code}</Text>
        ))}
      </Box>
    </Box>
  )
}
