import { createHmac, timingSafeEqual } from 'node:crypto'
import type { ServerContext } from './context.js'

// A device key (OWASP's "device cookie"): every full login (password and a second factor) is
// answered with one, and the client sends it with its next login_start. A name locked by
// failures from elsewhere still logs in from a device that holds a key issued to it: failures
// that come with a valid key are counted on that device alone, and the name's own count (that
// of every other client) is neither raised nor consulted. So a guesser who cannot log in cannot
// lock a person out of the devices they use, and a stolen key is locked on its own.
//
// The key is stateless: `sld_` and base64url of the issue time (4 bytes, seconds), a random id
// (12 bytes) and a MAC (16 bytes) binding both to the user name under a key derived from the
// store's server secret. Nothing is stored per device; a restart keeps every key valid.

/** A key unused for this long is refused (each login issues a new one). */
export const DEVICE_KEY_TTL_MS = 180 * 24 * 3600_000

const ISSUED_BYTES = 4
const ID_BYTES = 12
const MAC_BYTES = 16

function mac(ctx: ServerContext, username: string, body: Buffer): Buffer {
  const secret = ctx.store.serverSecret()
  try {
    const key = createHmac('sha256', secret).update('securelogin device key v1').digest()
    const tag = createHmac('sha256', key).update(`${username}\0`).update(body).digest().subarray(0, MAC_BYTES)
    key.fill(0)
    return tag
  } finally {
    secret.fill(0)
  }
}

/** A new device key for `username`, issued now. */
export function issueDeviceKey(ctx: ServerContext, username: string, nowMs: number): string {
  const body = Buffer.alloc(ISSUED_BYTES + ID_BYTES)
  body.writeUInt32BE(Math.floor(nowMs / 1000), 0)
  ctx.randomBytes(ID_BYTES).copy(body, ISSUED_BYTES)
  return `sld_${Buffer.concat([body, mac(ctx, username, body)]).toString('base64url')}`
}

/**
 * The device's id (hex) when `key` was issued by this server to `username` and has not expired;
 * otherwise undefined, silently (the login goes on as from a new device). The same work for
 * every name, known or not.
 */
export function deviceOf(ctx: ServerContext, username: string, key: string | undefined, nowMs: number) {
  if (key === undefined) return undefined // the message schema checked its shape
  const raw = Buffer.from(key.slice(4), 'base64url')
  // One spelling per key: base64url's unused low bits of the last character must be zero.
  if (raw.toString('base64url') !== key.slice(4)) return undefined
  const body = raw.subarray(0, ISSUED_BYTES + ID_BYTES)
  const valid = timingSafeEqual(raw.subarray(ISSUED_BYTES + ID_BYTES), mac(ctx, username, body))
  const issuedMs = body.readUInt32BE(0) * 1000
  if (!valid || issuedMs > nowMs + 60_000 || nowMs - issuedMs > DEVICE_KEY_TTL_MS) return undefined
  return body.subarray(ISSUED_BYTES).toString('hex')
}
