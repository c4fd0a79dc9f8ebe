import { useEffect, useRef, useState } from 'react'
import { invokedAs } from '../base/invoked.js'
import { Box, Text } from 'ink'
import { foldedName, normalizeUsername } from '../auth/username.js'
import { checkNewPassword, passwordsDiffer } from '../auth/password-policy.js'
import { Secret } from '../auth/secret.js'
import { describeNextCode, invitedName, nextCodeAt } from '../client/register.js'
import type { SecureLoginError } from '../protocol/errors.js'
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
  | { name: 'done'; user: string; recoveryCodes: string[]; nextCodeAt: number | undefined }
  | { name: 'failed'; error: SecureLoginError }

const SUBMIT_HINTS = ['enter: submit', 'ctrl-c: quit']

/**
 * Name, password twice, then the QR code and one code from the authenticator. When the server
 * refuses the name (taken, or an invite made for another name, which it then names), only the
 * name is asked again: the password typed is kept, wrapped, until the registration goes on.
 * `user`: a name given on the command line (an invite's printed command has it), filled in.
 */
export function RegisterApp({
  client,
  columns,
  rows,
  user = '',
  onDone,
}: {
  client: TuiClient
  columns?: number
  rows?: number
  user?: string
  onDone: (result: RegisterResult) => void
}) {
  const connection = useConnection(client)
  const [step, setStep] = useState<Step>({ name: 'username' })
  const [notice, setNotice] = useState<SecureLoginError>()
  const [folded, setFolded] = useState<string>()
  const [username, setUsername] = useState(user)
  const [password, setPassword] = useState('')
  const [repeat, setRepeat] = useState('')
  const kept = useRef<Secret>(undefined)
  const forgetPassword = () => {
    kept.current?.wipe()
    kept.current = undefined
  }
  useEffect(() => forgetPassword, [])

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
    let name: string
    try {
      name = normalizeUsername(value)
    } catch (error) {
      return setNotice(asSecureLoginError(error))
    }
    setUsername(name)
    setFolded(foldedName(value, name, 'registering as'))
    const typed = kept.current
    if (!typed) {
      setNotice(undefined)
      return setStep({ name: 'password' })
    }
    // The kept password must pass the rules for this name too (it may contain it).
    try {
      checkNewPassword(typed.reveal(), name)
    } catch (error) {
      forgetPassword()
      setNotice(asSecureLoginError(error))
      return setStep({ name: 'password' })
    }
    register(name, typed.reveal())
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
      setNotice(passwordsDiffer())
      return setStep({ name: 'password' })
    }
    setPassword('')
    setRepeat('')
    forgetPassword()
    kept.current = new Secret(value)
    register(username, value)
  }
  const register = (name: string, value: string) => {
    setNotice(undefined)
    setStep({ name: 'registering' })
    client.startRegistration(name, value).then(
      (enrolment) => {
        forgetPassword()
        setStep({ name: 'enrol', enrolment, checking: false })
      },
      (error: unknown) => {
        const failure = asSecureLoginError(error)
        const invited = invitedName(failure)
        if (failure.code === 'ERR_USERNAME_TAKEN' || invited !== undefined) {
          setNotice(failure)
          setUsername(invited ?? '')
          setFolded(undefined)
          setStep({ name: 'username' })
        } else {
          forgetPassword()
          setStep({ name: 'failed', error: failure })
        }
      },
    )
  }
  const submitCode = (value: string) => {
    if (step.name !== 'enrol' || step.checking) return
    if (!/^[0-9]{6}$/.test(value)) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ ...step, checking: true })
    const { secret } = step.enrolment
    client.confirmEnrolment(value).then(
      ({ user, recoveryCodes }) =>
        // A login needs the next code: the server took this one, and takes each once.
        nextCodeAt(secret, value, Date.now()).then(
          (at) => setStep({ name: 'done', user, recoveryCodes, nextCodeAt: at }),
          () => setStep({ name: 'done', user, recoveryCodes, nextCodeAt: undefined }),
        ),
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
      {step.name === 'username' && kept.current && (
        <Text dimColor>the password you typed is kept: registration goes on once the name is accepted</Text>
      )}
      {folded && !['username', 'done', 'failed'].includes(step.name) && <Text color="yellow">{folded}</Text>}
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
          <Text color="green">
            registered {step.user}: you can now log in with {invokedAs()} login
          </Text>
          {step.nextCodeAt !== undefined && <Text color="yellow">{describeNextCode(step.nextCodeAt, Date.now())}</Text>}
          <RecoveryCodes codes={step.recoveryCodes} />
        </Box>
      )}
      {step.name === 'failed' && <ErrorView error={step.error} />}
      {notice && step.name !== 'failed' && <ErrorView error={notice} />}
      {step.name !== 'done' && step.name !== 'failed' && <KeyHints hints={SUBMIT_HINTS} />}
    </Box>
  )
}
