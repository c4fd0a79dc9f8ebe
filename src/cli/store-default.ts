// Kept apart from the store's modules: every command's option parsing reads it, and the
// client commands should not load the store to print their help.

export const DEFAULT_STORE = 'data/securelogin.store'

/** `--store`'s default: $SECURELOGIN_STORE, else the file under the working directory. */
export function defaultStore(): string {
  const fromEnv = process.env.SECURELOGIN_STORE
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_STORE
}
