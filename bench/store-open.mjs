#!/usr/bin/env node
// Child process of bench/store.mjs: opens one store in a fresh heap and prints one JSON line.
//
//   node --expose-gc bench/store-open.mjs PATH            time openStore (lock + KDF + replay), RSS after it
//   node --expose-gc bench/store-open.mjs PATH --phases   time the parts of a replay, outside the store code
//
// The passphrase comes in SECURELOGIN_BENCH_PASSPHRASE. "Excluding the KDF": the KDF is timed
// alone first (deriveKek, the store's own salt and scrypt parameters, twice; the faster run
// counts) and that time is subtracted from the time openStore took.
import { open as openFile } from 'node:fs/promises'
import { openStore } from '../dist/store/index.js'
import { USERS_PREFIX } from '../dist/server/accounts.js'
import { deriveKek } from '../dist/store/kdf.js'
import { open as openBox } from '../dist/store/barrier.js'
import { HEADER_BYTES, LENGTH_PREFIX_BYTES, decodeHeader, forEachEntry, recordAad } from '../dist/store/format.js'

const CHUNK_BYTES = 4 * 1024 * 1024 // as the journal reads

const path = process.argv[2]
const phases = process.argv.includes('--phases')
const passphrase = process.env.SECURELOGIN_BENCH_PASSPHRASE
if (!path || passphrase === undefined) {
  console.error('usage: SECURELOGIN_BENCH_PASSPHRASE=... node --expose-gc bench/store-open.mjs PATH [--phases]')
  process.exit(2)
}

const memory = () => {
  globalThis.gc?.()
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, heapUsed, external, arrayBuffers }
}

async function readHeader() {
  const handle = await openFile(path, 'r')
  try {
    const head = Buffer.alloc(HEADER_BYTES)
    await handle.read(head, 0, HEADER_BYTES, 0)
    return { header: decodeHeader(head, path), size: (await handle.stat()).size }
  } finally {
    await handle.close()
  }
}

async function timeKdf(header) {
  const runs = []
  for (let i = 0; i < 2; i++) {
    const started = performance.now()
    const kek = await deriveKek(passphrase, header.salt, header.kdf)
    runs.push(performance.now() - started)
    if (i === 1) return { kek, kdfMs: Math.min(...runs), kdfRuns: runs }
    kek.fill(0)
  }
}

async function measureOpen() {
  const before = memory()
  const { header } = await readHeader()
  const kdfCpuStart = process.cpuUsage()
  const { kek, kdfMs, kdfRuns } = await timeKdf(header)
  const kdfCpu = process.cpuUsage(kdfCpuStart)
  kek.fill(0)
  const cpuStart = process.cpuUsage()
  const started = performance.now()
  const store = await openStore(path, passphrase, { autoCompact: false, countedPrefixes: [USERS_PREFIX] })
  const openMs = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  const after = memory()
  const stats = await store.stats()
  await store.close()
  return {
    openMs,
    kdfMs,
    kdfRuns,
    openExclKdfMs: openMs - kdfMs,
    // CPU time of the whole process (main thread and thread pool) during openStore, minus half
    // that of the two KDF runs: less sensitive than wall time to other processes on the machine.
    openCpuExclKdfMs: (cpu.user + cpu.system - (kdfCpu.user + kdfCpu.system) / 2) / 1000,
    rssBefore: before.rss,
    ...after,
    maxRss: process.resourceUsage().maxRSS * 1024,
    stats: {
      records: stats.records,
      entries: stats.entries,
      live: stats.live,
      users: stats.counted[USERS_PREFIX],
      fileSize: stats.fileSize,
    },
  }
}

/** Calls each(box, seq) with every record from the header on, reading CHUNK_BYTES at a time. */
async function forEachRecord(handle, size, each) {
  let buffer = Buffer.alloc(CHUNK_BYTES)
  let filled = 0 // bytes of buffer holding file data
  let at = 0 // next record's offset in buffer
  let position = HEADER_BYTES // file offset of buffer[filled]
  let seq = 0
  const refill = async (need) => {
    buffer.copy(buffer, 0, at, filled)
    filled -= at
    at = 0
    if (need > buffer.length) {
      const bigger = Buffer.alloc(need)
      buffer.copy(bigger, 0, 0, filled)
      buffer = bigger
    }
    const { bytesRead } = await handle.read(buffer, filled, Math.min(buffer.length - filled, size - position), position)
    filled += bytesRead
    position += bytesRead
    return filled >= need
  }
  for (;;) {
    if (filled - at < LENGTH_PREFIX_BYTES && !(await refill(LENGTH_PREFIX_BYTES))) break
    const length = buffer.readUInt32BE(at)
    if (filled - at < LENGTH_PREFIX_BYTES + length && !(await refill(LENGTH_PREFIX_BYTES + length))) break
    each(buffer.subarray(at + LENGTH_PREFIX_BYTES, at + LENGTH_PREFIX_BYTES + length), seq)
    at += LENGTH_PREFIX_BYTES + length
    seq += 1
  }
  return seq
}

/** Three passes over the file: read only; read + AES-GCM open; read + open + entry parsing. */
async function measurePhases() {
  const { header, size } = await readHeader()
  const kek = await deriveKek(passphrase, header.salt, header.kdf)
  const dataKey = openBox(kek, header.wrappedKey, header.aad)
  kek.fill(0)
  if (!dataKey) throw new Error('wrong passphrase')
  const handle = await openFile(path, 'r')
  const pass = async (each) => {
    const started = performance.now()
    const records = await forEachRecord(handle, size, each)
    return { ms: performance.now() - started, records }
  }
  const decrypt = (box, seq) => {
    const plaintext = openBox(dataKey, box, recordAad(header.storeId, seq))
    if (!plaintext) throw new Error(`record ${seq} fails to authenticate`)
    return plaintext
  }
  try {
    let entries = 0
    const read = await pass(() => {})
    const opened = await pass(decrypt)
    const parsed = await pass((box, seq) => {
      forEachEntry(decrypt(box, seq), () => {
        entries += 1
      })
    })
    return { readMs: read.ms, decryptMs: opened.ms, parseMs: parsed.ms, records: read.records, entries }
  } finally {
    await handle.close()
    dataKey.fill(0)
  }
}

const result = phases ? await measurePhases() : await measureOpen()
const usage = process.resourceUsage()
result.processCpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000 // this child's whole life
process.stdout.write(`${JSON.stringify(result)}\n`)
