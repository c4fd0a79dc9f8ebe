/** "ABCDEFGHIJ" -> "ABCD EFGH IJ": easier to read off a screen and type into a phone. */
export function groupSecret(secret: string): string {
  return secret.match(/.{1,4}/g)?.join(' ') ?? ''
}

/** Removes ANSI escape sequences, to measure what a terminal will show. */
export function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
}
