import { useMemo } from 'react'
import { Box, Text } from 'ink'
import QRCode from 'qrcode'
import { groupSecret, stripAnsi } from './group-secret.js'
import { useTerminalSize } from './Cell.js'

/** Lines the enrolment screen needs besides the QR code itself (secret, URI, code field, hints). */
const OTHER_ROWS = 8
/** ISO/IEC 18004 asks for four light modules around the symbol; scanners and capture tools count on them. */
const QUIET_ZONE = 4

const DARK_FG = 30
const LIGHT_FG = 97
const DARK_BG = 40
const LIGHT_BG = 107

/**
 * The QR code as lines of text, two modules a character: `▀` in the top module's colour on the
 * bottom one's. Every cell sets both colours (black, bright white), so it scans on dark and light
 * palettes alike, and every cell is a glyph, not a space: tools that trim trailing blank cells
 * (tmux capture-pane without -N, a copy from the terminal) keep the right quiet zone.
 */
export function drawQrCode(uri: string): string[] {
  const { modules } = QRCode.create(uri, { errorCorrectionLevel: 'L' })
  const size = modules.size
  const dark = (x: number, y: number) => x >= 0 && y >= 0 && x < size && y < size && modules.get(y, x) === 1
  const lines: string[] = []
  for (let y = -QUIET_ZONE; y < size + QUIET_ZONE; y += 2) {
    let line = ''
    let colours = ''
    for (let x = -QUIET_ZONE; x < size + QUIET_ZONE; x++) {
      // A bottom half past the last quiet row (an odd height) is light: more quiet zone.
      const next = `\x1b[${dark(x, y) ? DARK_FG : LIGHT_FG};${dark(x, y + 1) ? DARK_BG : LIGHT_BG}m`
      if (next !== colours) line += next
      colours = next
      line += '▀'
    }
    lines.push(`${line}\x1b[0m`)
  }
  return lines
}

/**
 * The enrolment QR code, with a four-module quiet zone. When the terminal is too small the code
 * would wrap and no longer scan, so it says how big it must be instead; the secret and URI below
 * always show, so the person can still enrol. Redraws on resize.
 */
export function QrCode({
  uri,
  secret,
  columns,
  rows,
}: {
  uri: string
  secret: string
  columns?: number | undefined
  rows?: number | undefined
}) {
  const qr = useMemo(() => drawQrCode(uri), [uri])
  const size = useTerminalSize(columns, rows)
  // Every line is as wide as the symbol and its quiet zones, one column a module.
  const width = stripAnsi(qr[0]!).length
  const height = qr.length

  let drawing
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
    drawing = <Text>{qr.join('\n')}</Text>
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
