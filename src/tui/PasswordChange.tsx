import { useState } from 'react'
import { Box, Text } from 'ink'
import { checkNewPassword, passwordsDiffer } from '../auth/password-policy.js'
import type { SecureLoginError } from '../protocol/errors.js'
import type { TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { useEscape } from './use-escape.js'
import { plural } from './format.js'
import { Field, digitsOnly } from './Field.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { Working } from './Working.js'
import { codeShape } from './read-code.js'

type Step = 'current' | 'code' | 'new' | 'again' | 'changing' | 'done'

/**
 * Current password and a fresh TOTP code (the server proves both again), then the new password
 * twice. The new one is checked here first (the server never sees it); every other session ends.
 */
export function PasswordChange({ client, user, onBack }: { client: TuiClient; user: string; onBack: () => void }) {
  const [step, setStep] = useState<Step>('current')
  const [current, setCurrent] = useState('')
  const [code, setCode] = useState('')
  const [fresh, setFresh] = useState('')
  const [again, setAgain] = useState('')
  const [notice, setNotice] = useState<SecureLoginError>()
  const [revoked, setRevoked] = useState(0)
  useEscape(onBack, step !== 'changing')

  const forget = () => {
    setCurrent('')
    setCode('')
    setFresh('')
    setAgain('')
  }
  const submitCode = (value: string) => {
    if (!/^[0-9]{6}$/.test(value)) return setNotice(codeShape())
    setNotice(undefined)
    setStep('new')
  }
  const submitNew = (value: string) => {
    try {
      checkNewPassword(value, user)
      setNotice(undefined)
      setStep('again')
    } catch (error) {
      setFresh('')
      setNotice(asSecureLoginError(error))
    }
  }
  const submitAgain = (value: string) => {
    if (value !== fresh) {
      setFresh('')
      setAgain('')
      setNotice(passwordsDiffer('new passwords'))
      return setStep('new')
    }
    setNotice(undefined)
    setStep('changing')
    client.changePassword(current, code, fresh).then(
      ({ revokedSessions }) => {
        forget()
        setRevoked(revokedSessions)
        setStep('done')
      },
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        setNotice(failure)
        // A refused new password is retyped; a failed proof starts again from the current password.
        if (failure.code === 'ERR_WEAK_PASSWORD') {
          setFresh('')
          setAgain('')
          setStep('new')
        } else {
          forget()
          setStep('current')
        }
      },
    )
  }

  return (
    <Box flexDirection="column">
      <Text bold>change password</Text>
      {step === 'current' && (
        <Field
          label="current password"
          value={current}
          onChange={setCurrent}
          onSubmit={(v) => v && setStep('code')}
          mask
        />
      )}
      {step === 'code' && (
        <Field
          label="6-digit code from your authenticator"
          value={code}
          onChange={setCode}
          filter={digitsOnly}
          onSubmit={submitCode}
        />
      )}
      {step === 'new' && <Field label="new password" value={fresh} onChange={setFresh} onSubmit={submitNew} mask />}
      {step === 'again' && (
        <Field label="new password again" value={again} onChange={setAgain} onSubmit={submitAgain} mask />
      )}
      {step === 'changing' && <Working text="changing the password" />}
      {step === 'done' && <Text color="green">password changed; {plural(revoked, 'other session')} revoked</Text>}
      {notice && <ErrorView error={notice} />}
      {step !== 'changing' && <KeyHints hints={step === 'done' ? ['esc: back'] : ['enter: submit', 'esc: back']} />}
    </Box>
  )
}
