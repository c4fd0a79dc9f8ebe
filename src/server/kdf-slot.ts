import type { KdfRunner } from '../auth/recovery-codes.js'
import { KeyedQueue } from './keyed-queue.js'

// The server's own key derivation (recovery-code hashes: scrypt, 16 MiB a call) runs on the libuv
// thread pool, off the event loop, but not off the CPU: ten hashes at once took both cores of a
// two-core machine and a login's p99 rose fourteen times (bench/login.mjs, "half+recovery").
// One call at a time leaves the event loop a core; a renewal then takes about ten times one call.

export function createKdfSlot(): KdfRunner {
  const queue = new KeyedQueue()
  return (work) => queue.run('scrypt', work)
}
