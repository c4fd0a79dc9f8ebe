import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createKdfSlot } from '../../src/server/kdf-slot.js'
import { generateRecoveryCodes, hashRecoveryCodes } from '../../src/auth/recovery-codes.js'

// The server's KDF slot (src/server/kdf-slot.ts): one scrypt call at a time, so its own key
// derivation cannot take every core from the event loop.

describe('createKdfSlot', () => {
  it('runs the work one at a time, in arrival order, and goes on after a failure', async () => {
    const slot = createKdfSlot()
    let running = 0
    let most = 0
    const order: number[] = []
    const job = (i: number, fail = false) => slot(async () => {
      running++
      most = Math.max(most, running)
      await new Promise((resolve) => setTimeout(resolve, 5))
      order.push(i)
      running--
      if (fail) throw new Error(`job ${i}`)
      return i
    })
    const results = await Promise.allSettled([job(1), job(2, true), job(3), job(4)])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
    expect(order).toEqual([1, 2, 3, 4])
    expect(most).toBe(1)
  })

  it('takes each of the ten recovery-code hashes as its own turn, so a recovery login can go between them', async () => {
    let turns = 0
    const slot = createKdfSlot()
    const counted = <T>(work: () => Promise<T>) => {
      turns++
      return slot(work)
    }
    const codes = generateRecoveryCodes(randomBytes)
    const cheap = { name: 'scrypt', logN: 10, r: 8, p: 1 } as const
    const hashed = await hashRecoveryCodes(codes, Buffer.alloc(16, 7), cheap, counted)
    expect(turns).toBe(10)
    // The same hashes as without a slot.
    expect(await hashRecoveryCodes(codes, Buffer.alloc(16, 7), cheap)).toEqual(hashed)
  })
})
