import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { getPriority } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { createKdfSlot, type KdfSlot } from '../../src/server/kdf-slot.js'
import { generateRecoveryCodes, hashRecoveryCodes } from '../../src/auth/recovery-codes.js'
import { scryptAsync } from '../../src/base/scrypt.js'

// The server's KDF slot (src/server/kdf-slot.ts): its scrypt calls, one at a time, on one thread
// of their own at nice 19, so its key derivation cannot take a core from the logins.

const cheap = { logN: 10, r: 8, p: 1 }
const dear = { logN: 14, r: 8, p: 1 }

/** This process's threads and their nice values, from /proc (Linux). */
function niceValues(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      // Fields after "(comm) ": state is the 3rd field of stat, nice the 19th.
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])]
    } catch {
      return [] // the thread ended while we looked
    }
  })
}

/**
 * Threads at nice 19 once the count is `expected` (or after 5 s, whatever it is then): terminate()
 * resolves at a worker's exit, and the OS thread may leave /proc a moment later.
 */
async function nice19Threads(expected: number): Promise<number> {
  const deadline = Date.now() + 5_000
  const count = () => niceValues().filter((nice) => nice === 19).length
  while (count() !== expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  return count()
}

let slot: KdfSlot | undefined
afterEach(async () => {
  await slot?.close()
  slot = undefined
})

describe('createKdfSlot', () => {
  it("gives scryptAsync's answer and leaves the caller's buffers as they were", async () => {
    slot = createKdfSlot()
    const input = Buffer.from('abcde12345')
    const salt = Buffer.alloc(16, 7)
    const key = await slot.run(input, salt, cheap)
    expect(key).toEqual(await scryptAsync(input, salt, cheap))
    expect(key).toHaveLength(32)
    expect(input.toString()).toBe('abcde12345')
    expect(salt).toEqual(Buffer.alloc(16, 7))
  })

  it('answers one call at a time in arrival order: a cheap call waits behind a dear one (the thread pool would finish it first)', async () => {
    slot = createKdfSlot()
    const order: string[] = []
    const calls = [
      slot.run(Buffer.from('first'), Buffer.alloc(16, 1), dear).then(() => order.push('dear')),
      slot.run(Buffer.from('second'), Buffer.alloc(16, 2), cheap).then(() => order.push('cheap 1')),
      slot.run(Buffer.from('third'), Buffer.alloc(16, 3), cheap).then(() => order.push('cheap 2')),
    ]
    await Promise.all(calls)
    expect(order).toEqual(['dear', 'cheap 1', 'cheap 2'])
  })

  it("an urgent call (a login's recovery code) goes before every waiting background call (new codes' hashes)", async () => {
    slot = createKdfSlot()
    const order: string[] = []
    const run = (name: string, urgent: boolean) =>
      slot!.run(Buffer.from(name), Buffer.alloc(16, 1), cheap, { urgent }).then(() => order.push(name))
    // Three registrations' hashes queued, then a login: it waits for the one on the thread only.
    const calls = [run('hash 1', false), run('hash 2', false), run('hash 3', false), run('login', true)]
    await Promise.all(calls)
    expect(order).toEqual(['hash 1', 'login', 'hash 2', 'hash 3'])
  })

  it.runIf(process.platform === 'linux')(
    'runs on one thread at nice 19 while the event loop keeps its priority',
    async () => {
      // The other tests' slots are closed: none of their threads is left.
      const before = await nice19Threads(0)
      expect(before).toBe(0)
      const mine = getPriority()
      slot = createKdfSlot()
      expect(slot.niced).toBeUndefined()
      const pending = [
        slot.run(Buffer.from('a'), Buffer.alloc(16), dear),
        slot.run(Buffer.from('b'), Buffer.alloc(16), dear),
      ]
      await pending[0]
      expect(slot.niced).toBe(true)
      // Two calls, one thread: exactly one thread at nice 19.
      expect(niceValues().filter((nice) => nice === 19).length).toBe(1)
      expect(getPriority()).toBe(mine)
      await pending[1]
      await slot.close()
      expect(await nice19Threads(0)).toBe(0)
    },
  )

  it('refuses a bad call alone and goes on', async () => {
    slot = createKdfSlot()
    const bad = slot.run(Buffer.from('x'), Buffer.alloc(16), { logN: 1.5, r: 8, p: 1 })
    const good = slot.run(Buffer.from('x'), Buffer.alloc(16), cheap)
    await expect(bad).rejects.toThrow(/^scrypt failed/)
    expect(await good).toEqual(await scryptAsync(Buffer.from('x'), Buffer.alloc(16), cheap))
  })

  it('refuses the calls still waiting when it closes, and starts again on the next call', async () => {
    slot = createKdfSlot()
    const refused = expect(slot.run(Buffer.from('x'), Buffer.alloc(16), dear)).rejects.toThrow('the server is closing')
    await slot.close()
    await refused
    expect(await slot.run(Buffer.from('y'), Buffer.alloc(16), cheap)).toHaveLength(32)
  })

  it('hashes the ten recovery codes as ten calls, with the same hashes as without the slot', async () => {
    slot = createKdfSlot()
    const run = slot.run
    let calls = 0
    const counted: typeof run = (input, salt, cost) => {
      calls++
      return run(input, salt, cost)
    }
    const codes = generateRecoveryCodes(randomBytes)
    const cheapKdf = { name: 'scrypt', ...cheap } as const
    const hashed = await hashRecoveryCodes(codes, Buffer.alloc(16, 7), cheapKdf, counted)
    expect(calls).toBe(10)
    expect(await hashRecoveryCodes(codes, Buffer.alloc(16, 7), cheapKdf)).toEqual(hashed)
  })
})
