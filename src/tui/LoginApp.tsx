import { useEffect, useState } from 'react'
import { invokedAs } from '../base/invoked.js'
import { Box, Text, useInput } from 'ink'
import { SecureLoginError } from '../protocol/errors.js'
import { normalizeUsername } from '../auth/username.js'
import type { Enrolment, LoginResult, TuiClient } from './types.js'
import { useConnection, asSecureLoginError } from './use-connection.js'
import { Field, digitsOnly } from './Field.js'
import { ErrorView } from './ErrorView.js'
import { KeyHints } from './KeyHints.js'
import { TrustPrompt } from './TrustPrompt.js'
import { Working } from './Working.js'
import { RecoveryCodes } from './RecoveryCodes.js'
import { EnrolScreen } from './EnrolScreen.js'
import { HomeApp } from './HomeApp.js'
import { codeCharacters, codeShape, readCode } from './read-code.js'

export type LoginOutcome = LoginResult | { error: SecureLoginError }

type Step =
  | { name: 'username' }
  | { name: 'password' }
  | { name: 'signing-in'; again?: boolean }
  | { name: 'code' }
  | { name: 'enrol'; enrolment: Enrolment; checking: boolean }
  | { name: 'checking' }
  | { name: 'welcome'; result: LoginResult }
  | { name: 'home'; result: LoginResult }
  | { name: 'renewing'; result: LoginResult }
  | { name: 'renewed'; result: LoginResult; codes: string[] }
  | { name: 'retry'; error: SecureLoginError }
  | { name: 'failed'; error: SecureLoginError }

/**
 * Name, password (SRP, server proof checked), then the TOTP code or a recovery code; when an
 * admin reset the person's 2FA, the QR code of a new authenticator and a code from it instead.
 * Then the home screen, until the person quits or logs out. With `renewRecoveryCodes`
 * (`securelogin recovery-codes`), a login with a TOTP code goes on to replace every recovery
 * code, shows the new ones and ends.
 */
export function LoginApp({
  client,
  onDone,
  renewRecoveryCodes = false,
  columns,
  rows,
}: {
  client: TuiClient
  onDone: (result: LoginOutcome) => void
  renewRecoveryCodes?: boolean
  columns?: number
  rows?: number
}) {
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
    if (step.name === 'welcome' && renewRecoveryCodes) {
      const { result } = step
      setStep({ name: 'renewing', result })
      client.renewRecoveryCodes().then(
        (codes) => setStep({ name: 'renewed', result, codes }),
        (error: unknown) => setStep({ name: 'failed', error: asSecureLoginError(error) }),
      )
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
  if (connection.stage === 'trust')
    return <TrustPrompt server={client.server} fingerprint={connection.fingerprint} onAnswer={connection.answer} />
  if (connection.stage === 'failed') return <ErrorView error={connection.error} />
  if (step.name === 'home') {
    const { result } = step
    return (
      <HomeApp
        client={client}
        result={result}
        columns={columns}
        rows={rows}
        onDone={(outcome) => onDone('error' in outcome ? outcome : result)}
      />
    )
  }

  // An authentication failure may be a typo: offer another try. Anything else ends the run.
  const fail = (error: unknown) => {
    const failure = asSecureLoginError(error)
    setPassword('')
    setCode('')
    setNotice(undefined)
    setStep(failure.code === 'ERR_AUTH_FAILED' ? { name: 'retry', error: failure } : { name: 'failed', error: failure })
  }
  // A refused code: the password was proven, so only the code is asked again. The server has
  // ended the connection; the client proves the password anew from what it kept.
  const codeFailed = (error: unknown) => {
    const failure = asSecureLoginError(error)
    if (failure.code !== 'ERR_AUTH_FAILED') return fail(failure)
    setCode('')
    setNotice(failure)
    setStep({ name: 'signing-in', again: true })
    client.startLoginAgain().then(({ enrol }) => {
      if (!enrol) return setStep({ name: 'code' })
      // After an admin's reset every try enrols a new secret: the one scanned is no use now.
      setNotice(
        new SecureLoginError(failure.code, failure.message, {
          hint:
            'the code did not match the new authenticator, and each try makes a new secret: ' +
            'delete the entry you added and scan this QR code instead',
        }),
      )
      setStep({ name: 'enrol', enrolment: enrol, checking: false })
    }, fail)
  }
  const submitUsername = (value: string) => {
    try {
      normalizeUsername(value)
    } catch (error) {
      return setNotice(asSecureLoginError(error))
    }
    setNotice(undefined)
    setStep({ name: 'password' })
  }
  const loggedIn = (result: LoginResult) =>
    setStep(renewRecoveryCodes ? { name: 'welcome', result } : { name: 'home', result })
  const submitPassword = (value: string) => {
    setStep({ name: 'signing-in' })
    client
      .startLogin(username, value)
      .then(
        ({ enrol }) => setStep(enrol ? { name: 'enrol', enrolment: enrol, checking: false } : { name: 'code' }),
        fail,
      )
    setPassword('')
  }
  // A recovery code is no use when renewing them: that needs the authenticator.
  const submitCode = (value: string) => {
    const code = readCode(value, !renewRecoveryCodes)
    if (code === undefined) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ name: 'checking' })
    const answer = 'totp' in code ? client.submitOtp(code.totp) : client.submitRecoveryCode(code.recovery)
    answer.then(loggedIn, codeFailed)
  }
  // After an admin's 2FA reset the login's code comes from the new authenticator.
  const submitEnrolCode = (value: string) => {
    if (step.name !== 'enrol' || step.checking) return
    if (!/^[0-9]{6}$/.test(value)) return setNotice(codeShape())
    setNotice(undefined)
    setStep({ ...step, checking: true })
    client.submitOtp(value).then(loggedIn, (error: unknown) => {
      const failure = asSecureLoginError(error)
      if (failure.code !== 'ERR_ENROL_CODE') return codeFailed(failure)
      setNotice(failure)
      setStep({ ...step, checking: false })
    })
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
      {step.name === 'signing-in' && <Working text={step.again ? 'signing in again for another code' : 'signing in'} />}
      {step.name === 'code' && (
        <Field
          label={
            renewRecoveryCodes
              ? '6-digit code from your authenticator'
              : '6-digit code from your authenticator (or a recovery code)'
          }
          value={code}
          onChange={setCode}
          filter={renewRecoveryCodes ? digitsOnly : codeCharacters}
          onSubmit={submitCode}
        />
      )}
      {step.name === 'enrol' && (
        <EnrolScreen
          enrolment={step.enrolment}
          intro={
            'an administrator reset your 2FA: scan this QR code with your authenticator app ' +
            '(or type the secret into it)'
          }
          label="6-digit code from the new authenticator"
          checking={step.checking}
          onCode={submitEnrolCode}
          columns={columns}
          rows={rows}
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
              recovery code used: {step.result.recoveryCodesLeft} left ({invokedAs()} recovery-codes makes ten new ones)
            </Text>
          )}
        </Box>
      )}
      {step.name === 'renewing' && <Working text="making new recovery codes" />}
      {step.name === 'renewed' && <RecoveryCodes codes={step.codes} />}
      {(step.name === 'retry' || step.name === 'failed') && <ErrorView error={step.error} />}
      {notice && <ErrorView error={notice} />}
      {step.name === 'retry' && <KeyHints hints={['enter: try again', 'esc: quit']} />}
      {['username', 'password', 'code', 'enrol'].includes(step.name) && (
        <KeyHints hints={['enter: submit', 'ctrl-c: quit']} />
      )}
    </Box>
  )
}
