import { inspect } from 'node:util'

const REDACTED = '<redacted>'

/**
 * A password, key, verifier or TOTP secret that must not reach a log, an error message or a
 * JSON dump by accident: String(), JSON.stringify(), template literals and util.inspect (which
 * console.log and the test runners use) all print `<redacted>`. Only reveal() gives the value,
 * so every use is visible in the code. wipe() zeroes a Buffer value and drops the reference;
 * a string cannot be zeroed in JavaScript, so for strings it only drops the reference.
 */
export class Secret<T extends string | Buffer = string> {
  #value: T | undefined

  constructor(value: T) {
    this.#value = value
  }

  reveal(): T {
    if (this.#value === undefined) throw new Error('secret used after wipe()')
    return this.#value
  }

  /** Runs `use` with the value, then wipes it, whether `use` succeeds or throws. */
  async use<R>(use: (value: T) => R | Promise<R>): Promise<R> {
    try {
      return await use(this.reveal())
    } finally {
      this.wipe()
    }
  }

  wipe(): void {
    if (Buffer.isBuffer(this.#value)) this.#value.fill(0)
    this.#value = undefined
  }

  get wiped(): boolean {
    return this.#value === undefined
  }

  toString(): string {
    return REDACTED
  }

  toJSON(): string {
    return REDACTED
  }

  [Symbol.toPrimitive](): string {
    return REDACTED
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`
  }
}

/** A value that may come wrapped (from the CLI and TUI) or plain (from a library caller). */
export type SecretInput = Secret<string> | string

export const revealInput = (input: SecretInput): string => (typeof input === 'string' ? input : input.reveal())
