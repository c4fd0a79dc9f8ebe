import { describe, expect, it } from 'vitest'
import { KeyDirectory } from '../../src/store/keydir.js'

const bytes = (key: string) => Buffer.from(key, 'utf8')

describe('KeyDirectory', () => {
  it('agrees with a Map over 200,000 random puts and deletes, through growth and tombstones', () => {
    const dir = new KeyDirectory()
    const model = new Map<string, number>()
    let seed = 42
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
    for (let i = 0; i < 200_000; i++) {
      const key = `user/u${next() % 30_000}`
      if (next() % 4 === 0) {
        expect(dir.delete(bytes(key))).toBe(model.delete(key))
      } else {
        expect(dir.set(bytes(key), 0, bytes(key).length, i)).toBe(model.has(key))
        model.set(key, i)
      }
    }
    expect(dir.size).toBe(model.size)
    for (const [key, place] of model) expect(dir.get(bytes(key))).toBe(place)
    expect(dir.get(bytes('user/nobody'))).toBeUndefined()
    expect(new Map(dir.entries())).toEqual(model)
  })

  it('reads keys from inside a larger buffer, and tells keys that share a hash bucket apart', () => {
    const dir = new KeyDirectory()
    const record = Buffer.from('xxuser/alicexxuser/alicexuser/bob')
    expect(dir.set(record, 2, 12, 7)).toBe(false)
    expect(dir.set(record, 14, 24, 8)).toBe(true)
    expect(dir.set(record, 25, 33, 9)).toBe(false)
    expect(dir.get(bytes('user/alice'))).toBe(8)
    expect(dir.get(bytes('user/bob'))).toBe(9)
    expect(dir.has(bytes('user/alic'))).toBe(false)
    expect(dir.size).toBe(2)
  })
})
