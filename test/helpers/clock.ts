import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The server's clock for tests, in a file its hidden --clock-file option reads on every call.
 * TOTP codes may be used once each (RFC 6238 5.2), so tests that log one user in many times
 * move time forward instead of waiting for it.
 */
export class FileClock {
  readonly file: string
  #ms: number

  constructor(dir: string, startMs = Date.now()) {
    this.file = join(dir, 'clock')
    this.#ms = startMs
    this.#write()
  }

  get ms(): number {
    return this.#ms
  }

  get seconds(): number {
    return Math.floor(this.#ms / 1000)
  }

  advance(ms: number): number {
    this.#ms += ms
    this.#write()
    return this.#ms
  }

  /** Moves to the next TOTP step and returns the time in seconds, for a fresh code. */
  nextStep(): number {
    this.advance(30_000)
    return this.seconds
  }

  /**
   * Written whole and renamed over: the server reads the file on every call, and a write in
   * place let it read an empty file, time 0, in the middle of one.
   */
  #write(): void {
    writeFileSync(`${this.file}.tmp`, `${this.#ms}\n`)
    renameSync(`${this.file}.tmp`, this.file)
  }
}
