// Reading the server's text log (src/server/logger.ts) back, as an operator's script would.

/** Characters that would break a line, hide text on a terminal or pass for a separator. */
export const RAW_DANGER = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u

/**
 * The reader an operator's script would write: parts split at the spaces outside quotes; a part
 * is bare or a JSON string literal; a field is part=part. Throws on anything else.
 */
export function parseTextLine(line: string): { level: string; event: string; fields: Record<string, string> } {
  const atom = /"(?:[^"\\]|\\.)*"|[^\s"=]+/y
  let at = 0
  const read = (): string => {
    atom.lastIndex = at
    const match = atom.exec(line)
    if (!match) throw new Error(`no part at ${at} in ${JSON.stringify(line)}`)
    at = atom.lastIndex
    return match[0].startsWith('"') ? (JSON.parse(match[0]) as string) : match[0]
  }
  const parts: Array<string | [string, string]> = []
  while (at < line.length) {
    const first = read()
    if (line[at] === '=') {
      at++
      parts.push([first, read()])
    } else parts.push(first)
    if (at < line.length && line[at++] !== ' ') throw new Error(`no space at ${at - 1} in ${JSON.stringify(line)}`)
  }
  let level = 'info'
  if (typeof parts[0] === 'string' && /^(warn|error):$/.test(parts[0])) level = (parts.shift() as string).slice(0, -1)
  const event = parts.shift()
  if (typeof event !== 'string') throw new Error(`no event in ${JSON.stringify(line)}`)
  const fields: Record<string, string> = {}
  for (const part of parts) {
    if (typeof part === 'string') throw new Error(`a bare part after the event in ${JSON.stringify(line)}`)
    if (part[0] in fields) throw new Error(`field ${part[0]} twice in ${JSON.stringify(line)}`)
    fields[part[0]] = part[1]
  }
  return { level, event, fields }
}
