import { useState } from 'react'
import { invokedAs } from '../base/invoked.js'
import { Box, Text } from 'ink'
import { ROLES } from '../auth/roles.js'
import { foldedName, normalizeUsername } from '../auth/username.js'
import type { SecureLoginError } from '../protocol/errors.js'
import type { Role, TuiClient } from './types.js'
import { asSecureLoginError } from './use-connection.js'
import { useEscape } from './use-escape.js'
import { formatTime } from './format.js'
import { ErrorView } from './ErrorView.js'
import { Field } from './Field.js'
import { KeyHints } from './KeyHints.js'
import { Menu } from './Menu.js'
import { Working } from './Working.js'

type Step =
  | { name: 'role' }
  | { name: 'user'; role: Role }
  | { name: 'inviting' }
  | { name: 'done'; role: Role; user: string | undefined; token: string; expiresAt: string }

/**
 * A single-use registration token (admins): pick the role, optionally bind it to one user name,
 * and show the token once. The server refuses a role this admin may not give, with its reason.
 */
export function InviteScreen({ client, onBack }: { client: TuiClient; onBack: () => void }) {
  const [step, setStep] = useState<Step>({ name: 'role' })
  const [name, setName] = useState('')
  const [notice, setNotice] = useState<SecureLoginError>()
  const [folded, setFolded] = useState<string>()
  useEscape(onBack, step.name !== 'inviting')

  const submitUser = (role: Role) => (value: string) => {
    let user: string | undefined
    try {
      user = value.trim() ? normalizeUsername(value) : undefined
    } catch (error) {
      return setNotice(asSecureLoginError(error))
    }
    setNotice(undefined)
    setFolded(user && foldedName(value, user, 'inviting'))
    setStep({ name: 'inviting' })
    client.invite(role, user ? { user } : {}).then(
      ({ token, expiresAt }) => setStep({ name: 'done', role, user, token, expiresAt }),
      (error: unknown) => {
        setNotice(asSecureLoginError(error))
        setStep({ name: 'role' })
      },
    )
  }

  return (
    <Box flexDirection="column">
      <Text bold>invite someone to register</Text>
      {step.name === 'role' && (
        <Box flexDirection="column">
          <Text>role of the new account:</Text>
          <Menu
            items={ROLES.map((role) => ({ id: role, label: role }))}
            onSelect={(role) => setStep({ name: 'user', role })}
          />
        </Box>
      )}
      {step.name === 'user' && (
        <Field
          label={`user name for the ${step.role} (optional)`}
          value={name}
          onChange={setName}
          onSubmit={submitUser(step.role)}
          placeholder="enter: anyone may use it"
        />
      )}
      {step.name === 'inviting' && <Working text="making the invite" />}
      {step.name === 'done' && (
        <Box flexDirection="column">
          <Text color="green">
            invite for a {step.role}
            {step.user ? ` named ${step.user}` : ', any new user name'}, valid once until {formatTime(step.expiresAt)};
            it is not shown again
          </Text>
          <Text>give this to the person:</Text>
          {/* One argument a line, joined by the shell's backslash: no line is wider than a
              narrow terminal, so the terminal never breaks the token, and the lines paste whole. */}
          <Box flexDirection="column">
            <Text bold wrap="truncate">
              {invokedAs()} register \
            </Text>
            {step.user && (
              <Text bold wrap="truncate">
                {'  '}--user {step.user} \
              </Text>
            )}
            <Text bold wrap="truncate">
              {'  '}--invite {step.token}
            </Text>
          </Box>
          {step.user && <Text>it registers {step.user} and no other name</Text>}
        </Box>
      )}
      {folded && step.name === 'done' && <Text color="yellow">{folded}</Text>}
      {notice && <ErrorView error={notice} />}
      {step.name !== 'inviting' && (
        <KeyHints
          hints={
            step.name === 'role'
              ? ['↑/↓: choose', 'enter: pick', 'esc: back']
              : step.name === 'user'
                ? ['enter: make the invite', 'esc: back']
                : ['esc: back']
          }
        />
      )}
    </Box>
  )
}
