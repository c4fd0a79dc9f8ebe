import type { z } from 'zod'
import { SecureLoginError } from '../protocol/errors.js'
import type { Store, Version } from '../store/index.js'

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
  return parsed(store, await store.get<unknown>(key), schema, what, hint)
}

/** A record and the version it was read at (for a later commit's `expect`), parsed as readStored does. */
export interface Versioned<T> {
  value: T
  version: Version
}

/**
 * readStored, with the version of the very write it read: a commit that names it as `expect`
 * goes through only if nothing changed the key since, in this process or any other.
 */
export async function readStoredVersioned<T>(
  store: Store,
  key: string,
  schema: z.ZodType<T>,
  what: string,
  hint = 'run `securelogin store verify`',
): Promise<Versioned<T> | undefined> {
  const read = await store.getVersioned<unknown>(key)
  if (read === undefined) return undefined
  return { value: parsed(store, read.value, schema, what, hint)!, version: read.version }
}

function parsed<T>(store: Store, value: unknown, schema: z.ZodType<T>, what: string, hint: string): T | undefined {
  if (value === undefined) return undefined
  const result = schema.safeParse(value)
  if (!result.success)
    throw new SecureLoginError('ERR_STORE_CORRUPT', `${store.path}: the ${what} record is malformed`, { hint })
  return result.data
}
