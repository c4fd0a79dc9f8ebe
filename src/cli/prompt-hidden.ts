import { SecureLoginError } from '../protocol/errors.js'

/**
 * Reads one line from a terminal without echoing it (for the admin passphrase; the server
 * command must not load Ink). Ctrl-C cancels, backspace edits.
 */
export function promptHidden(
  prompt: string,
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WriteStream = process.stderr,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = ''
    const wasRaw = input.isRaw
    output.write(prompt)
    input.setRawMode(true)
    input.resume()
    const finish = (error?: unknown) => {
      input.off('data', onData)
      input.setRawMode(wasRaw)
      input.pause()
      output.write('\n')
      if (error) reject(error)
      else resolve(value)
    }
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish()
        if (char === '\u0003') return finish(new SecureLoginError('ERR_USAGE', 'cancelled'))
        if (char === '\u0004' && value === '') return finish(new SecureLoginError('ERR_USAGE', 'no passphrase given'))
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('')
        else if (char >= ' ') value += char
      }
    }
    input.on('data', onData)
  })
}
