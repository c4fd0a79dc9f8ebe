import type { z } from 'zod'
import { SecureLoginError } from '../protocol/errors.js'
import type { Store } from '../store/index.js'

/**
 * A record read from the store and parsed with its owner's schema: the store holds opaque JSON,
 * and a value that does not match is ERR_STORE_CORRUPT, never trusted and never replaced.
 */
export async function readStored<T>(
  store: Store,
  key: string,
  schema: z.ZodType<T>,
  what: string,
  hint = 'run `securelogin store verify`',
): Promise<T | undefined> {
  const value = await store.get<unknown>(key)
  if (value === undefined) return undefined
  const parsed = schema.safeParse(value)
  if (!parsed.success)
    throw new SecureLoginError('ERR_STORE_CORRUPT', `${store.path}: the ${what} record is malformed`, { hint })
  return parsed.data
}
