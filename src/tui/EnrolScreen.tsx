import { useState } from 'react'
import { Box, Text } from 'ink'
import type { Enrolment } from './types.js'
import { Field, digitsOnly } from './Field.js'
import { QrCode } from './QrCode.js'
import { Working } from './Working.js'

/**
 * The QR code (or the secret, when the terminal is too small) and a field for the first code
 * from the authenticator. Used by registration, by a login after an admin reset the user's 2FA,
 * and by the person's own 2FA reset. The field empties when a whole code goes off to be checked,
 * so a wrong one can be retyped at once.
 */
export function EnrolScreen(props: {
  enrolment: Enrolment
  intro: string
  label?: string
  checking: boolean
  onCode: (code: string) => void
  columns?: number | undefined
  rows?: number | undefined
}) {
  const [code, setCode] = useState('')
  const submit = (value: string) => {
    if (/^[0-9]{6}$/.test(value)) setCode('')
    props.onCode(value)
  }
  return (
    <Box flexDirection="column">
      <Text>{props.intro}</Text>
      <QrCode
        uri={props.enrolment.otpauthUri}
        secret={props.enrolment.secret}
        columns={props.columns}
        rows={props.rows}
      />
      {props.checking ? (
        <Working text="checking the code" />
      ) : (
        <Field
          label={props.label ?? 'enter the 6-digit code'}
          value={code}
          onChange={setCode}
          filter={digitsOnly}
          onSubmit={submit}
        />
      )}
    </Box>
  )
}
