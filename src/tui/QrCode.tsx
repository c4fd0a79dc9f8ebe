import { useEffect, useState } from 'react'
import { Box, Text, useStdout } from 'ink'
import QRCode from 'qrcode'
import { groupSecret, stripAnsi } from './group-secret.js'

/** Lines the enrolment screen needs besides the QR code itself (secret, URI, code field, hints). */
const OTHER_ROWS = 8

/**
 * The enrolment QR code, drawn by the qrcode package's terminal renderer, which sets explicit
 * black-on-white colours so it scans on dark and light palettes alike. When the terminal is too
 * small the code would wrap and no longer scan, so it says how big it must be instead; the
 * secret and URI below always show, so the person can still enrol. Redraws on resize.
 */
export function QrCode({
  uri,
  secret,
  columns,
  rows,
}: {
  uri: string
  secret: string
  columns?: number
  rows?: number
}) {
  const [qr, setQr] = useState<string>()
  const size = useTerminalSize(columns, rows)

  useEffect(() => {
    let live = true
    void QRCode.toString(uri, { type: 'terminal', small: true }).then((text) => live && setQr(text.replace(/\n+$/, '')))
    return () => {
      live = false
    }
  }, [uri])

  let drawing
  if (qr === undefined) {
    drawing = <Text dimColor>drawing the QR code…</Text>
  } else {
    const lines = stripAnsi(qr).split('\n')
    const width = Math.max(...lines.map((line) => [...line].length))
    const height = lines.length
    if (width > size.columns) {
      drawing = (
        <Text color="yellow">
          terminal too narrow for the QR code: need {width} columns, have {size.columns}; enlarge it, or type the secret
          below
        </Text>
      )
    } else if (height + OTHER_ROWS > size.rows) {
      drawing = (
        <Text color="yellow">
          terminal too short for the QR code: need {height + OTHER_ROWS} rows, have {size.rows}; enlarge it, or type the
          secret below
        </Text>
      )
    } else {
      drawing = <Text>{qr}</Text>
    }
  }

  return (
    <Box flexDirection="column">
      {drawing}
      <Text>
        secret: <Text bold>{groupSecret(secret)}</Text>
      </Text>
      <Text>{uri}</Text>
    </Box>
  )
}

function useTerminalSize(columns?: number, rows?: number): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = () => ({ columns: columns ?? stdout.columns ?? 80, rows: rows ?? stdout.rows ?? 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    // Ink lays out again on resize but does not re-render: keep the size in state.
    const onResize = () => setSize(read())
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout, columns, rows])
  return size
}
