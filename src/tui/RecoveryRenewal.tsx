import { useState } from 'react'
import { Box, Text } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { useEscape } from './use-escape.js'
import { Confirm } from './Confirm.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { RecoveryCodes } from './RecoveryCodes.js'
import { Working } from './Working.js'

type Step =
  | { name: 'confirm' }
  | { name: 'renewing' }
  | { name: 'renewed'; codes: string[] }
  | { name: 'failed'; error: SecureLoginError }

/**
 * Ten new recovery codes in place of all the old ones. The server allows it only in a session
 * that began with a TOTP code (not a recovery code), and says so when it refuses.
 */
export function RecoveryRenewal({ client, onBack }: { client: TuiClient; onBack: () => void }) {
  const [step, setStep] = useState<Step>({ name: 'confirm' })
  useEscape(onBack, step.name === 'renewed' || step.name === 'failed')

  const answer = (yes: boolean) => {
    if (!yes) return onBack()
    setStep({ name: 'renewing' })
    client.renewRecoveryCodes().then(
      (codes) => setStep({ name: 'renewed', codes }),
      (error: unknown) => setStep({ name: 'failed', error: asSecureLoginError(error) }),
    )
  }

  return (
    <Box flexDirection="column">
      <Text bold>recovery codes</Text>
      {step.name === 'confirm' && (
        <Confirm question="replace all your recovery codes with ten new ones?" onAnswer={answer} />
      )}
      {step.name === 'renewing' && <Working text="making new recovery codes" />}
      {step.name === 'renewed' && <RecoveryCodes codes={step.codes} />}
      {step.name === 'failed' && <ErrorView error={step.error} />}
      {(step.name === 'renewed' || step.name === 'failed') && <KeyHints hints={['esc: back']} />}
    </Box>
  )
}
