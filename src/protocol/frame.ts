import { SecureLoginError } from './errors.js'

/** A frame is a 4-byte big-endian length, then that many bytes of one UTF-8 JSON message. */
export const MAX_FRAME_BYTES = 64 * 1024
const HEADER_BYTES = 4

export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8')
  if (body.length > MAX_FRAME_BYTES) {
    throw new SecureLoginError('ERR_FRAME_TOO_LARGE', `frame of ${body.length} bytes exceeds ${MAX_FRAME_BYTES}`)
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length)
  frame.writeUInt32BE(body.length, 0)
  body.copy(frame, HEADER_BYTES)
  return frame
}

/**
 * Reassembles frames from a byte stream that may split or join them arbitrarily. append() keeps
 * bytes; next() takes one whole message (undefined until one is whole), so a reader can take
 * messages one at a time and stop reading while it is behind; push() is both, for a reader that
 * takes everything. An oversize length or bad JSON throws, and the caller ends the connection
 * (the decoder is unusable afterwards).
 */
export class FrameDecoder {
  #chunks: Buffer[] = []
  #buffered = 0

  append(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
  }

  next(): unknown {
    if (this.#buffered < HEADER_BYTES) return undefined
    const length = this.#peek(HEADER_BYTES).readUInt32BE(0)
    // Refuse before buffering the body: an attacker must not make us hold 4 GiB.
    if (length > MAX_FRAME_BYTES) {
      throw new SecureLoginError('ERR_FRAME_TOO_LARGE', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`)
    }
    if (this.#buffered < HEADER_BYTES + length) return undefined
    return parseJson(this.#take(HEADER_BYTES + length).subarray(HEADER_BYTES))
  }

  push(chunk: Buffer): unknown[] {
    this.append(chunk)
    const messages: unknown[] = []
    for (let message = this.next(); message !== undefined; message = this.next()) messages.push(message)
    return messages
  }

  /** Bytes received and not yet taken as a message (whole frames and part of one). */
  get pending(): number {
    return this.#buffered
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0]!.length < n) this.#chunks = [Buffer.concat(this.#chunks)]
    return this.#chunks[0]!.subarray(0, n)
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
    const rest = all.subarray(n)
    this.#chunks = rest.length > 0 ? [rest] : []
    this.#buffered = rest.length
    return all.subarray(0, n)
  }
}

function parseJson(body: Buffer): unknown {
  try {
    // ignoreBOM keeps a leading U+FEFF in the text, where JSON.parse refuses it: RFC 8259 8.1
    // says a sender must not add one, and one spelling of a frame is all the spec allows.
    return JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body))
  } catch (cause) {
    throw new SecureLoginError('ERR_PROTOCOL', `frame of ${body.length} bytes is not UTF-8 JSON`, { cause })
  }
}
