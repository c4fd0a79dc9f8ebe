import { connect as netConnect } from 'node:net'
import { connect, type TLSSocket } from 'node:tls'
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js'

/** A bare framed TLS client: sends whatever it is given, collects every frame it receives. */
export class RawClient {
  readonly socket: TLSSocket
  readonly received: unknown[] = []
  readonly closed: Promise<void>
  readonly #decoder = new FrameDecoder()
  #waiters: Array<() => void> = []

  private constructor(socket: TLSSocket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.received.push(...this.#decoder.push(chunk))
      this.#wake()
    })
    this.closed = new Promise((resolve) => socket.on('close', () => (this.#wake(), resolve())))
    socket.on('error', () => {})
  }

  /** `localAddress`: connect from another loopback address (127.0.0.N), as another peer would. */
  static open(port: number, host = '127.0.0.1', opts: { localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      // tls.connect has no localAddress: it runs over a TCP socket made from that address.
      const tcp = opts.localAddress ? { socket: netConnect({ host, port, localAddress: opts.localAddress }) } : {}
      const socket = connect({ host, port, rejectUnauthorized: false, minVersion: 'TLSv1.3', ...tcp })
      socket.once('secureConnect', () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  send(message: unknown): void {
    this.socket.write(encodeFrame(message))
  }

  /** Waits for the n-th frame (1-based) or the close, whichever is first. */
  async frame(n: number, timeoutMs = 10_000): Promise<any> {
    const deadline = Date.now() + timeoutMs
    while (this.received.length < n) {
      if (this.socket.destroyed || this.socket.readableEnded) break
      if (Date.now() > deadline) throw new Error(`no frame ${n} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
    return this.received[n - 1]
  }

  async request(message: unknown): Promise<any> {
    const n = this.received.length + 1
    this.send(message)
    return this.frame(n)
  }

  close(): void {
    this.socket.destroy()
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}
