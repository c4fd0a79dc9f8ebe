import { Box, Text, useInput } from 'ink'
import { KeyHints } from './KeyHints.js'

/** ssh's first-contact question: show the fingerprint, trust only on an explicit "y". */
export function TrustPrompt({
  server,
  fingerprint,
  onAnswer,
}: {
  server: string
  fingerprint: string
  onAnswer: (trust: boolean) => void
}) {
  useInput((input, key) => {
    if (input === 'y' || input === 'Y') onAnswer(true)
    else if (input === 'n' || input === 'N' || key.return || key.escape) onAnswer(false)
  })
  return (
    <Box flexDirection="column">
      <Text>the authenticity of server {server} can't be established.</Text>
      <Text>
        sha256 fingerprint: <Text bold>{fingerprint}</Text>
      </Text>
      <Text dimColor>compare it with the fingerprint the server printed when it started.</Text>
      <Text>trust it and remember it? (y/N)</Text>
      <KeyHints hints={['y: trust', 'n or enter: refuse', 'ctrl-c: quit']} />
    </Box>
  )
}
