import { Box, Text } from 'ink'
import { asInvoked } from '../base/invoked.js'
import type { SecureLoginError } from '../protocol/errors.js'

/** An error in place: what happened and its code, then what to do about it. */
export function ErrorView({ error }: { error: SecureLoginError }) {
  return (
    <Box flexDirection="column">
      <Text color="red">
        error: {error.message} ({error.code})
      </Text>
      {error.hint ? <Text dimColor>hint: {asInvoked(error.hint)}</Text> : null}
    </Box>
  )
}
