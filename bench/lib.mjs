// Helpers shared by the benchmarks: child processes that are always reaped, percentiles,
// formatting, a plain-text table, and a description of the machine.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, totalmem, release, platform } from 'node:os'

/** Child processes started and not yet exited: stopped by killChildren() on error or Ctrl-C. */
const live = new Set()

/**
 * Runs `node ...args`, waits for it to exit, and resolves to its stdout. Rejects (after the
 * child has exited) when it exits non-zero, dies of a signal, or outlives `timeoutMs`, in which
 * case it is killed by its pid first.
 */
export function runNode(args, { env = {}, timeoutMs = 10 * 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    live.add(child)
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (text) => (stdout += text))
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text))
    const timer = setTimeout(() => {
      timedOut = true
      killChild(child)
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      live.delete(child)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      if (code === 0) return resolve(stdout)
      const why = timedOut ? `timed out after ${timeoutMs} ms and was killed` : signal ? `died of ${signal}` : `exited with ${code}`
      reject(new Error(`node ${args.join(' ')} ${why}${stderr ? `:\n${stderr.trimEnd()}` : ''}`))
    })
  })
}

function killChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** Kills every child still running and waits until each has exited. */
export async function killChildren() {
  const waiting = [...live].map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('close', resolve)
    killChild(child)
  }))
  await Promise.all(waiting)
}

/** Nearest-rank percentile of numbers (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]
}

export const median = (values) => percentile(values, 50)

/** Milliseconds, with precision suited to their size. */
export function ms(value) {
  if (!Number.isFinite(value)) return '-'
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`
  if (value >= 100) return `${value.toFixed(0)} ms`
  if (value >= 10) return `${value.toFixed(1)} ms`
  return `${value.toFixed(2)} ms`
}

/** Bytes in MB (10^6 bytes), as the goals are stated. */
export function mb(bytes) {
  if (!Number.isFinite(bytes)) return '-'
  const value = bytes / 1e6
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(3)} MB`
}

export function count(n) {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`
  return String(n)
}

/** 1k, 100k, 1M, 1000000, 1e6 -> a number. */
export function parseCount(text) {
  const match = /^(\d+(?:\.\d+)?)(k|m)?$/i.exec(text.trim())
  const value = match ? Number(match[1]) * (match[2] ? (match[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : Number(text)
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`not a positive count: ${text}`)
  return value
}

/** A plain-text table (Markdown-compatible: it can be pasted into docs as is). */
export function table(header, rows) {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => String(row[i]).length)))
  const line = (cells) => `| ${cells.map((cell, i) => String(cell).padEnd(widths[i])).join(' | ')} |`
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

/**
 * CPU time the whole machine has spent busy (user, nice, system, irq, softirq, steal), in ms,
 * from /proc/stat; undefined where there is none. With the CPU time of our own processes it
 * tells how much other work ran meanwhile.
 */
export function machineBusyMs() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = fields
    return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1000) / 100 // USER_HZ is 100 on Linux
  } catch {
    return undefined
  }
}

export function machine() {
  const cores = cpus()
  return `node ${process.version}, ${platform()} ${release()}, ${cores.length} cores (${cores[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`
}

/** Parses `--name value` and `--flag` options against defaults (booleans become flags). */
export class UsageError extends Error {}

export function parseOptions(args, defaults) {
  const options = { ...defaults }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${arg}`)
    const [name, inline] = arg.slice(2).split('=', 2)
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (key.startsWith('no') && typeof defaults[key[2]?.toLowerCase() + key.slice(3)] === 'boolean') {
      options[key[2].toLowerCase() + key.slice(3)] = false
      continue
    }
    if (!(key in defaults)) throw new UsageError(`unknown option --${name} (--help lists them)`)
    if (typeof defaults[key] === 'boolean') options[key] = inline === undefined ? true : inline !== 'false'
    else {
      const value = inline ?? args[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      options[key] = value
    }
  }
  return options
}
