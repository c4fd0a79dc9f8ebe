import { useState } from 'react'
import { Box, Text } from 'ink'
import type { SecureLoginError } from '../protocol/errors.js'
import type { Enrolment, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { useEscape } from './use-escape.js'
import { codeCharacters, codeShape, readCode } from './read-code.js'
import { Confirm } from './Confirm.js'
import { Field } from './Field.js'
import { EnrolScreen } from './EnrolScreen.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'

type Step =
  | { name: 'password' }
  | { name: 'code' }
  | { name: 'starting' }
  | { name: 'enrol'; enrolment: Enrolment; checking: boolean; leaving?: boolean }
  | { name: 'done' }

/**
 * The person's own 2FA reset: password and a code (from the old authenticator, or a recovery
 * code when the phone is lost), then the new authenticator's QR code and one code from it.
 * Until that code is confirmed the old authenticator stays the one that counts. A recovery code
 * is spent by the login that shows the QR code, so Esc there asks first and says so.
 */
export function TotpReset({
  client,
  onBack,
  columns,
  rows,
}: {
  client: TuiClient
  onBack: () => void
  columns?: number | undefined
  rows?: number | undefined
}) {
  const [step, setStep] = useState<Step>({ name: 'password' })
  const [password, setPassword] = useState('')
  const [code, setCode] = useState('')
  const [notice, setNotice] = useState<SecureLoginError>()
  // How the reset was proven: a recovery code is spent whether or not the new one is enrolled.
  const [spent, setSpent] = useState<{ left: number | undefined }>()
  const busy = step.name === 'starting' || (step.name === 'enrol' && step.checking)
  const leaving = step.name === 'enrol' && step.leaving === true
  useEscape(() => (step.name === 'enrol' ? setStep({ ...step, leaving: true }) : onBack()), !busy && !leaving)

  const restart = (failure: SecureLoginError) => {
    setPassword('')
    setCode('')
    setNotice(failure)
    setStep({ name: 'password' })
  }
  const submitCode = (value: string) => {
    const proof = readCode(value, true)
    if (proof === undefined) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ name: 'starting' })
    client.startTotpReset(password, 'totp' in proof ? proof.totp : proof.recovery).then(
      ({ recoveryCodesLeft, ...enrolment }) => {
        setPassword('')
        setCode('')
        setSpent('recovery' in proof ? { left: recoveryCodesLeft } : undefined)
        setStep({ name: 'enrol', enrolment, checking: false })
      },
      (error: unknown) => restart(asSecureLoginError(error)),
    )
  }
  const submitNewCode = (value: string) => {
    if (step.name !== 'enrol' || step.checking) return
    if (!/^[0-9]{6}$/.test(value)) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ ...step, checking: true })
    client.confirmTotpReset(value).then(
      () => setStep({ name: 'done' }),
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        if (failure.code === 'ERR_ENROL_CODE' && !failure.message.includes('too many')) {
          setNotice(failure)
          setStep({ ...step, checking: false })
        } else restart(failure)
      },
    )
  }

  return (
    <Box flexDirection="column">
      <Text bold>reset 2FA: enrol a new authenticator</Text>
      {step.name === 'password' && (
        <Field
          label="password"
          value={password}
          onChange={setPassword}
          onSubmit={(v) => v && setStep({ name: 'code' })}
          mask
        />
      )}
      {step.name === 'code' && (
        <Field
          label="6-digit code from your authenticator (or a recovery code)"
          value={code}
          onChange={setCode}
          filter={codeCharacters}
          onSubmit={submitCode}
        />
      )}
      {step.name === 'starting' && <Working text="checking" />}
      {step.name === 'code' && (
        <Text dimColor>a recovery code is spent here, even if you leave before the new one is set up</Text>
      )}
      {step.name === 'enrol' && spent && (
        <Text color="yellow">
          recovery code used
          {spent.left !== undefined ? `: ${spent.left} left` : ''}; it stays spent whether or not you finish here
        </Text>
      )}
      {leaving && (
        <Box flexDirection="column">
          <Text>
            {spent
              ? 'your old authenticator keeps working; the recovery code you used stays spent'
              : "your old authenticator keeps working; this QR code's entry will not"}
          </Text>
          <Confirm
            question="leave without the new authenticator?"
            onAnswer={(yes) => (yes ? onBack() : step.name === 'enrol' && setStep({ ...step, leaving: false }))}
          />
        </Box>
      )}
      {step.name === 'enrol' && !leaving && (
        <EnrolScreen
          enrolment={step.enrolment}
          intro="scan this QR code with your new authenticator app (or type the secret into it):"
          label="6-digit code from the new authenticator"
          checking={step.checking}
          onCode={submitNewCode}
          columns={columns}
          rows={rows}
        />
      )}
      {step.name === 'done' && (
        <Text color="green">new authenticator enrolled: codes from the old one no longer work</Text>
      )}
      {notice && <ErrorView error={notice} />}
      {!busy && !leaving && <KeyHints hints={step.name === 'done' ? ['esc: back'] : ['enter: submit', 'esc: back']} />}
    </Box>
  )
}
