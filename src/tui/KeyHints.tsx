import { Text } from 'ink'

export function KeyHints({ hints }: { hints: string[] }) {
  return <Text dimColor>{hints.join(' · ')}</Text>
}
