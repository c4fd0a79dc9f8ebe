import { Text } from 'ink'
import Spinner from 'ink-spinner'

/** A spinner and what is being waited for. */
export function Working({ text }: { text: string }) {
  return (
    <Text>
      <Text color="cyan">
        <Spinner type="dots" />
      </Text>{' '}
      {text}
    </Text>
  )
}
