import { useEffect, useState } from 'react'
import { Box, Text, useInput } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { LoginResult, TuiClient } from './types.js'
import { useConnection, asSecureLoginError } from './use-connection.js'
import { Field, digitsOnly } from './Field.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { TrustPrompt } from './TrustPrompt.js'
import { Working } from './Working.js'
import { codeShape } from './RegisterApp.js'
import { RecoveryCodes } from './RecoveryCodes.js'
import { normalizeRecoveryCode } from '../auth/recovery-codes.js'

/** What a code field keeps: digits for TOTP, letters, digits and dashes for a recovery code. */
/** The canonical recovery code, or undefined when `value` is not one. */
function asRecoveryCode(value: string): string | undefined {
  try {
    return normalizeRecoveryCode(value)
  } catch {
    return undefined
  }
}

const codeCharacters = (value: string) => value.replace(/[^0-9A-Za-z-]/g, '').slice(0, 11)

export type LoginOutcome = LoginResult | { error: SecureLoginError }

type Step =
  | { name: 'username' }
  | { name: 'password' }
  | { name: 'signing-in' }
  | { name: 'code' }
  | { name: 'checking' }
  | { name: 'welcome'; result: LoginResult }
  | { name: 'renewing'; result: LoginResult }
  | { name: 'renewed'; result: LoginResult; codes: string[] }
  | { name: 'retry'; error: SecureLoginError }
  | { name: 'failed'; error: SecureLoginError }

/**
 * Name, password (SRP, server proof checked), then the TOTP code or a recovery code. With
 * `renewRecoveryCodes` (`securelogin recovery-codes`), a login with a TOTP code goes on to
 * replace every recovery code and shows the new ones.
 */
export function LoginApp({ client, onDone, renewRecoveryCodes = false }: { client: TuiClient; onDone: (result: LoginOutcome) => void; renewRecoveryCodes?: boolean }) {
  const connection = useConnection(client)
  const [step, setStep] = useState<Step>({ name: 'username' })
  const [notice, setNotice] = useState<SecureLoginError>()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [code, setCode] = useState('')

  useEffect(() => {
    if (connection.stage === 'failed') onDone({ error: connection.error })
  }, [connection])
  useEffect(() => {
    if (step.name === 'welcome' && !renewRecoveryCodes) onDone(step.result)
    if (step.name === 'welcome' && renewRecoveryCodes) {
      const { result } = step
      setStep({ name: 'renewing', result })
      client.renewRecoveryCodes().then((codes) => setStep({ name: 'renewed', result, codes }), (error: unknown) => setStep({ name: 'failed', error: asSecureLoginError(error) }))
    }
    if (step.name === 'renewed') onDone(step.result)
    if (step.name === 'failed') onDone({ error: step.error })
  }, [step])

  useInput(
    (_input, key) => {
      if (step.name !== 'retry') return
      if (key.return) setStep({ name: 'username' })
      else if (key.escape) setStep({ name: 'failed', error: step.error })
    },
    { isActive: step.name === 'retry' },
  )

  if (connection.stage === 'connecting') return <Working text={`connecting to ${client.server}`} />
  if (connection.stage === 'trust') return <TrustPrompt server={client.server} fingerprint={connection.fingerprint} onAnswer={connection.answer} />
  if (connection.stage === 'failed') return <ErrorView error={connection.error} />

  // An authentication failure may be a typo: offer another try. Anything else ends the run.
  const fail = (error: unknown) => {
    const failure = asSecureLoginError(error)
    setPassword('')
    setCode('')
    setStep(failure.code === 'ERR_AUTH_FAILED' ? { name: 'retry', error: failure } : { name: 'failed', error: failure })
  }
  const submitPassword = (value: string) => {
    setStep({ name: 'signing-in' })
    client.startLogin(username, value).then(() => setStep({ name: 'code' }), fail)
    setPassword('')
  }
  // Six digits are a TOTP code; anything else must be a recovery code (not when renewing them).
  const submitCode = (value: string) => {
    const totp = /^[0-9]{6}$/.test(value)
    const recovery = totp || renewRecoveryCodes ? undefined : asRecoveryCode(value)
    if (!totp && recovery === undefined) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ name: 'checking' })
    const answer = recovery === undefined ? client.submitOtp(value) : client.submitRecoveryCode(recovery)
    answer.then((result) => setStep({ name: 'welcome', result }), fail)
  }

  return (
    <Box flexDirection="column">
      {step.name === 'username' && (
        <Field label="user name" value={username} onChange={setUsername} onSubmit={(v) => v.trim() && setStep({ name: 'password' })} />
      )}
      {step.name === 'password' && <Field label="password" value={password} onChange={setPassword} onSubmit={submitPassword} mask />}
      {step.name === 'signing-in' && <Working text="signing in" />}
      {step.name === 'code' && (
        <Field
          label={renewRecoveryCodes ? '6-digit code from your authenticator' : '6-digit code from your authenticator (or a recovery code)'}
          value={code}
          onChange={setCode}
          filter={renewRecoveryCodes ? digitsOnly : codeCharacters}
          onSubmit={submitCode}
        />
      )}
      {step.name === 'checking' && <Working text="checking the code" />}
      {(step.name === 'welcome' || step.name === 'renewing' || step.name === 'renewed') && (
        <Box flexDirection="column">
          <Text color="green">
            welcome {step.result.user} ({step.result.role})
          </Text>
          <Text>session expires at {step.result.expiresAt}</Text>
          {step.result.recoveryCodesLeft !== undefined && (
            <Text color={step.result.recoveryCodesLeft <= 3 ? 'yellow' : undefined}>
              recovery code used: {step.result.recoveryCodesLeft} left (securelogin recovery-codes makes ten new ones)
            </Text>
          )}
        </Box>
      )}
      {step.name === 'renewing' && <Working text="making new recovery codes" />}
      {step.name === 'renewed' && <RecoveryCodes codes={step.codes} />}
      {(step.name === 'retry' || step.name === 'failed') && <ErrorView error={step.error} />}
      {notice && <ErrorView error={notice} />}
      {step.name === 'retry' && <KeyHints hints={['enter: try again', 'esc: quit']} />}
      {['username', 'password', 'code'].includes(step.name) && <KeyHints hints={['enter: submit', 'ctrl-c: quit']} />}
    </Box>
  )
}
