import { Box, Text, useInput, useStdout } from 'ink'
import { KeyHints } from './KeyHints.js'

const INDENT = 2

/**
 * The fingerprint in lines that never break inside a byte: whole when the terminal is wide
 * enough (as the server prints it), else 16 bytes a line (8, 4... on a narrower one), each line
 * but the last ending in the colon that joins it to the next.
 */
export function fingerprintLines(fingerprint: string, columns: number): string[] {
  const bytes = fingerprint.split(':')
  let perLine = bytes.length
  while (perLine > 1 && INDENT + perLine * 3 - 1 > columns) perLine = Math.ceil(perLine / 2)
  const lines: string[] = []
  for (let i = 0; i < bytes.length; i += perLine) lines.push(bytes.slice(i, i + perLine).join(':'))
  return lines.map((line, i) => (i < lines.length - 1 ? `${line}:` : line))
}

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
  const { stdout } = useStdout()
  useInput((input, key) => {
    if (input === 'y' || input === 'Y') onAnswer(true)
    else if (input === 'n' || input === 'N' || key.return || key.escape) onAnswer(false)
  })
  return (
    <Box flexDirection="column">
      <Text>the authenticity of server {server} can't be established.</Text>
      <Text>sha256 fingerprint:</Text>
      {fingerprintLines(fingerprint, stdout.columns || 80).map((line, i) => (
        <Text key={i} bold>
          {' '.repeat(INDENT)}
          {line}
        </Text>
      ))}
      <Text dimColor>compare it with the fingerprint the server printed when it started.</Text>
      <Text>trust it and remember it? (y/N)</Text>
      <KeyHints hints={['y: trust', 'n or enter: refuse', 'ctrl-c: quit']} />
    </Box>
  )
}
