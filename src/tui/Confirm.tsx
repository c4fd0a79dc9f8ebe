import { Box, Text, useInput } from 'ink'
import { KeyHints } from './KeyHints.js'

/** A yes/no question before anything that cannot be undone: only "y" says yes. */
export function Confirm({ question, onAnswer }: { question: string; onAnswer: (yes: boolean) => void }) {
  useInput((input, key) => {
    if (input === 'y' || input === 'Y') onAnswer(true)
    else if (input === 'n' || input === 'N' || key.escape) onAnswer(false)
  })
  return (
    <Box flexDirection="column">
      <Text color="yellow">{question} (y/n)</Text>
      <KeyHints hints={['y: yes', 'n or esc: no']} />
    </Box>
  )
}
