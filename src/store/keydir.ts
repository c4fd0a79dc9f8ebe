// Where each key's latest entry is: an open-addressing hash table over typed arrays, keys kept as
// bytes in one arena. A Map of a million string keys costs about 1.4 s to build on this machine
// and a few hundred bytes per key; this costs tens of milliseconds and about 40 bytes per key
// (docs/architecture.md, "A key directory").

const EMPTY = 0
const TOMBSTONE = -1

export class KeyDirectory {
  #capacity = 1024
  /** FNV-1a of the key, with the low bit set so that 0 means an empty slot. */
  #hashes = new Uint32Array(this.#capacity)
  /** The entry's place, or TOMBSTONE for a deleted key. */
  #places = new Float64Array(this.#capacity)
  #keyStart = new Uint32Array(this.#capacity)
  #keyLength = new Uint16Array(this.#capacity)
  #arena = new Uint8Array(64 * 1024)
  #arenaUsed = 0
  #size = 0
  /** Live slots and tombstones: what the load factor counts. */
  #occupied = 0

  get size(): number {
    return this.#size
  }

  get(bytes: Uint8Array, start = 0, end = bytes.length): number | undefined {
    const slot = this.#find(bytes, start, end, hashOf(bytes, start, end))
    return slot >= 0 && this.#places[slot] !== TOMBSTONE ? this.#places[slot] : undefined
  }

  has(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    return this.get(bytes, start, end) !== undefined
  }

  /** Sets the key's place; returns whether the key was there before. */
  set(bytes: Uint8Array, start: number, end: number, place: number): boolean {
    if ((this.#occupied + 1) * 2 > this.#capacity) this.#grow()
    const hash = hashOf(bytes, start, end)
    const mask = this.#capacity - 1
    let reuse = -1
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = this.#hashes[slot]!
      if (stored === EMPTY) {
        const target = reuse >= 0 ? reuse : slot
        if (reuse < 0) this.#occupied += 1
        this.#hashes[target] = hash
        this.#places[target] = place
        this.#keyStart[target] = this.#store(bytes, start, end)
        this.#keyLength[target] = end - start
        this.#size += 1
        return false
      }
      if (stored === hash && this.#sameKey(slot, bytes, start, end)) {
        const had = this.#places[slot] !== TOMBSTONE
        if (!had) this.#size += 1
        this.#places[slot] = place
        return had
      }
      if (reuse < 0 && this.#places[slot] === TOMBSTONE && stored !== EMPTY) reuse = slot
    }
  }

  /** Removes the key; returns whether it was there. */
  delete(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    const slot = this.#find(bytes, start, end, hashOf(bytes, start, end))
    if (slot < 0 || this.#places[slot] === TOMBSTONE) return false
    this.#places[slot] = TOMBSTONE
    this.#size -= 1
    return true
  }

  /** Every live key, as a string, with its place. */
  *entries(): Generator<[string, number]> {
    const decoder = new TextDecoder()
    for (let slot = 0; slot < this.#capacity; slot++) {
      if (this.#hashes[slot] !== EMPTY && this.#places[slot] !== TOMBSTONE) {
        const start = this.#keyStart[slot]!
        yield [decoder.decode(this.#arena.subarray(start, start + this.#keyLength[slot]!)), this.#places[slot]!]
      }
    }
  }

  /** Every live key that starts with `prefix`, as a string (bytes compared first: cheap at a million keys). */
  keysWithPrefix(prefix: Uint8Array): string[] {
    const decoder = new TextDecoder()
    const keys: string[] = []
    const arena = this.#arena
    outer: for (let slot = 0; slot < this.#capacity; slot++) {
      if (this.#hashes[slot] === EMPTY || this.#places[slot] === TOMBSTONE || this.#keyLength[slot]! < prefix.length)
        continue
      const start = this.#keyStart[slot]!
      for (let i = 0; i < prefix.length; i++) if (arena[start + i] !== prefix[i]) continue outer
      keys.push(decoder.decode(arena.subarray(start, start + this.#keyLength[slot]!)))
    }
    return keys
  }

  #find(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const mask = this.#capacity - 1
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = this.#hashes[slot]!
      if (stored === EMPTY) return -1
      if (stored === hash && this.#sameKey(slot, bytes, start, end)) return slot
    }
  }

  #sameKey(slot: number, bytes: Uint8Array, start: number, end: number): boolean {
    const length = end - start
    if (this.#keyLength[slot] !== length) return false
    const at = this.#keyStart[slot]!
    for (let i = 0; i < length; i++) if (this.#arena[at + i] !== bytes[start + i]) return false
    return true
  }

  #store(bytes: Uint8Array, start: number, end: number): number {
    const length = end - start
    if (this.#arenaUsed + length > this.#arena.length) {
      const arena = new Uint8Array(Math.max(this.#arena.length * 2, this.#arenaUsed + length))
      arena.set(this.#arena.subarray(0, this.#arenaUsed))
      this.#arena = arena
    }
    const at = this.#arenaUsed
    const arena = this.#arena
    for (let i = 0; i < length; i++) arena[at + i] = bytes[start + i]! // keys are short: cheaper than a subarray
    this.#arenaUsed += length
    return at
  }

  /** Doubles the table (or rehashes in place when tombstones fill it), dropping tombstones. */
  #grow(): void {
    const old = {
      hashes: this.#hashes,
      places: this.#places,
      keyStart: this.#keyStart,
      keyLength: this.#keyLength,
      capacity: this.#capacity,
    }
    while (this.#size * 4 >= this.#capacity) this.#capacity *= 2
    this.#hashes = new Uint32Array(this.#capacity)
    this.#places = new Float64Array(this.#capacity)
    this.#keyStart = new Uint32Array(this.#capacity)
    this.#keyLength = new Uint16Array(this.#capacity)
    this.#occupied = this.#size
    const mask = this.#capacity - 1
    for (let from = 0; from < old.capacity; from++) {
      const hash = old.hashes[from]!
      if (hash === EMPTY || old.places[from] === TOMBSTONE) continue
      let slot = hash & mask
      while (this.#hashes[slot] !== EMPTY) slot = (slot + 1) & mask
      this.#hashes[slot] = hash
      this.#places[slot] = old.places[from]!
      this.#keyStart[slot] = old.keyStart[from]!
      this.#keyLength[slot] = old.keyLength[from]!
    }
  }
}

function hashOf(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  return (hash | 1) >>> 0
}
