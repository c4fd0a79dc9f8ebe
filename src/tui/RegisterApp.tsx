import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { normalizeUsername } from '../auth/username.js'
import { checkNewPassword } from '../auth/password-policy.js'
import { SecureLoginError } from '../protocol/errors.js'
import type { Enrolment, TuiClient } from './types.js'
import { useConnection, asSecureLoginError } from './use-connection.js'
import { Field } from './Field.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { EnrolScreen } from './EnrolScreen.js'
import { TrustPrompt } from './TrustPrompt.js'
import { Working } from './Working.js'
import { RecoveryCodes } from './RecoveryCodes.js'
import { codeShape } from './read-code.js'

export type RegisterResult = { user: string } | { error: SecureLoginError }

type Step =
  | { name: 'username' }
  | { name: 'password' }
  | { name: 'repeat' }
  | { name: 'registering' }
  | { name: 'enrol'; enrolment: Enrolment; checking: boolean }
  | { name: 'done'; user: string; recoveryCodes: string[] }
  | { name: 'failed'; error: SecureLoginError }

const SUBMIT_HINTS = ['enter: submit', 'ctrl-c: quit']

/** Name, password twice, then the QR code and one code from the authenticator. */
export function RegisterApp({
  client,
  columns,
  rows,
  onDone,
}: {
  client: TuiClient
  columns?: number
  rows?: number
  onDone: (result: RegisterResult) => void
}) {
  const connection = useConnection(client)
  const [step, setStep] = useState<Step>({ name: 'username' })
  const [notice, setNotice] = useState<SecureLoginError>()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [repeat, setRepeat] = useState('')

  useEffect(() => {
    if (connection.stage === 'failed') onDone({ error: connection.error })
  }, [connection])
  useEffect(() => {
    if (step.name === 'done') onDone({ user: step.user })
    if (step.name === 'failed') onDone({ error: step.error })
  }, [step])

  if (connection.stage === 'connecting') return <Working text={`connecting to ${client.server}`} />
  if (connection.stage === 'trust')
    return <TrustPrompt server={client.server} fingerprint={connection.fingerprint} onAnswer={connection.answer} />
  if (connection.stage === 'failed') return <ErrorView error={connection.error} />

  const submitUsername = (value: string) => {
    try {
      setUsername(normalizeUsername(value))
      setNotice(undefined)
      setStep({ name: 'password' })
    } catch (error) {
      setNotice(asSecureLoginError(error))
    }
  }
  const submitPassword = (value: string) => {
    try {
      checkNewPassword(value, username)
      setNotice(undefined)
      setStep({ name: 'repeat' })
    } catch (error) {
      setPassword('')
      setNotice(asSecureLoginError(error))
    }
  }
  const submitRepeat = (value: string) => {
    if (value !== password) {
      setPassword('')
      setRepeat('')
      setNotice(mismatch())
      return setStep({ name: 'password' })
    }
    setNotice(undefined)
    setStep({ name: 'registering' })
    client.startRegistration(username, password).then(
      (enrolment) => {
        setPassword('')
        setRepeat('')
        setStep({ name: 'enrol', enrolment, checking: false })
      },
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        setPassword('')
        setRepeat('')
        if (failure.code === 'ERR_USERNAME_TAKEN') {
          setNotice(failure)
          setStep({ name: 'username' })
        } else setStep({ name: 'failed', error: failure })
      },
    )
  }
  const submitCode = (value: string) => {
    if (step.name !== 'enrol' || step.checking) return
    if (!/^[0-9]{6}$/.test(value)) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ ...step, checking: true })
    client.confirmEnrolment(value).then(
      ({ user, recoveryCodes }) => setStep({ name: 'done', user, recoveryCodes }),
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        if (failure.code === 'ERR_ENROL_CODE' && !failure.message.includes('too many')) {
          setNotice(failure)
          setStep({ ...step, checking: false })
        } else setStep({ name: 'failed', error: failure })
      },
    )
  }

  return (
    <Box flexDirection="column">
      {step.name === 'username' && (
        <Field
          label="user name"
          value={username}
          onChange={setUsername}
          onSubmit={submitUsername}
          placeholder="a-z 0-9 . _ -"
        />
      )}
      {step.name === 'password' && (
        <Field label="password" value={password} onChange={setPassword} onSubmit={submitPassword} mask />
      )}
      {step.name === 'repeat' && (
        <Field label="repeat password" value={repeat} onChange={setRepeat} onSubmit={submitRepeat} mask />
      )}
      {step.name === 'registering' && <Working text="registering" />}
      {step.name === 'enrol' && (
        <EnrolScreen
          enrolment={step.enrolment}
          intro="scan this QR code with your authenticator app (or type the secret into it):"
          checking={step.checking}
          onCode={submitCode}
          columns={columns}
          rows={rows}
        />
      )}
      {step.name === 'done' && (
        <Box flexDirection="column">
          <Text color="green">registered {step.user}: you can now log in with securelogin login</Text>
          <RecoveryCodes codes={step.recoveryCodes} />
        </Box>
      )}
      {step.name === 'failed' && <ErrorView error={step.error} />}
      {notice && step.name !== 'failed' && <ErrorView error={notice} />}
      {step.name !== 'done' && step.name !== 'failed' && <KeyHints hints={SUBMIT_HINTS} />}
    </Box>
  )
}

function mismatch(): SecureLoginError {
  return new SecureLoginError('ERR_WEAK_PASSWORD', 'the passwords do not match', {
    hint: 'type the same password twice',
  })
}
