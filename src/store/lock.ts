import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../base/errors.js'
import { refuseSharedDirectory } from './directory.js'

// One writer per store: `STORE.lock` beside the store holds the holder's pid, the pid's start
// time (so a reused pid is not mistaken for the holder) and the host. A lock whose holder is gone
// is stale and is taken over under a second, short-lived file, `STORE.lock.takeover`, so that two
// processes finding the same stale lock cannot both take it. docs/store-format.md, "Lock".

export interface StoreLock {
  readonly path: string
  release(): Promise<void>
}

interface Holder {
  pid: number
  startTicks: number | null
  host: string
  token: string
  since: string
}

/** A takeover file older than this was left by a process killed inside the takeover itself. */
const TAKEOVER_STALE_MS = 10_000

export async function acquireLock(
  storePath: string,
  report: (event: string, fields: Record<string, unknown>) => void = () => {},
): Promise<StoreLock> {
  // Every opener but `store info` starts here, before it writes anything beside the store.
  await refuseSharedDirectory(dirname(storePath), 'store directory')
  const path = `${storePath}.lock`
  const me = holderOfThisProcess()
  const content = `${JSON.stringify(me)}\n`
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await createExclusive(path, content)) return { path, release: () => releaseIfOurs(path, content) }
    const holder = await readHolder(path)
    if (holder === 'gone') continue
    if (holder === 'unreadable') {
      // Created a moment ago and not yet written, or left empty by a crash between the two.
      if (await olderThan(path, 2_000)) await takeOver(path, undefined, report)
      else await sleep(20)
      continue
    }
    if (isAlive(holder)) {
      throw new SecureLoginError(
        'ERR_STORE_LOCKED',
        `${storePath} is in use by process ${holder.pid}${holder.host === me.host ? '' : ` on ${holder.host}`} ` +
          `(since ${holder.since})`,
        {
          hint:
            holder.host === me.host
              ? 'stop that server or command first; a lock left by a killed process is taken over by itself'
              : `the lock was made on another host; if no process there uses the store, delete ${path}`,
        },
      )
    }
    await takeOver(path, holder, report)
  }
  throw new SecureLoginError(
    'ERR_STORE_LOCKED',
    `${storePath} is being locked and unlocked by other processes; gave up`,
    { hint: 'try again' },
  )
}

/** Removes a stale lock if it is still the one judged stale, holding the takeover file meanwhile. */
async function takeOver(
  path: string,
  stale: Holder | undefined,
  report: (event: string, fields: Record<string, unknown>) => void,
): Promise<void> {
  const takeover = `${path}.takeover`
  if (!(await createExclusive(takeover, `${JSON.stringify(holderOfThisProcess())}\n`))) {
    // Another process is taking over right now, or was killed while doing so.
    const other = await readHolder(takeover)
    if (
      (typeof other === 'object' && !isAlive(other)) ||
      (other === 'unreadable' && (await olderThan(takeover, TAKEOVER_STALE_MS)))
    )
      await unlink(takeover).catch(() => {})
    else await sleep(20)
    return
  }
  try {
    const now = await readHolder(path)
    const same = stale === undefined ? now === 'unreadable' : typeof now === 'object' && now.token === stale.token
    if (same) {
      await unlink(path)
      report('store_lock_taken_over', { path, pid: stale?.pid ?? null })
    }
  } finally {
    await unlink(takeover).catch(() => {})
  }
}

/**
 * Creates `path` holding `content`, or returns false if it exists. The content is written to a
 * file of our own first and then hard-linked into place, so nobody ever sees an empty lock.
 */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const mine = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`
  try {
    await writeFile(mine, content, { mode: 0o600, flag: 'wx' })
    await link(mine, path)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code === 'ENOENT')
      throw new SecureLoginError(
        'ERR_STORE_IO',
        `no store at ${path.replace(/\.lock(\.takeover)?$/, '')} (its directory does not exist)`,
        { cause: error, hint: 'check the --store path' },
      )
    throw new SecureLoginError('ERR_STORE_IO', `cannot create the lock ${path} (${code})`, { cause: error })
  } finally {
    await unlink(mine).catch(() => {})
  }
}

function holderOfThisProcess(): Holder {
  return {
    pid: process.pid,
    startTicks: startTicksOf(process.pid),
    host: hostname(),
    token: randomBytes(8).toString('hex'),
    since: new Date().toISOString(),
  }
}

async function readHolder(path: string): Promise<Holder | 'gone' | 'unreadable'> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone'
    throw new SecureLoginError(
      'ERR_STORE_IO',
      `cannot read the lock ${path} (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    )
  }
  try {
    const holder = JSON.parse(text) as Holder
    if (
      Number.isInteger(holder.pid) &&
      holder.pid > 0 &&
      typeof holder.token === 'string' &&
      typeof holder.host === 'string'
    )
      return holder
  } catch {
    // fall through
  }
  return 'unreadable'
}

async function releaseIfOurs(path: string, content: string): Promise<void> {
  try {
    if ((await readFile(path, 'utf8')) === content) await unlink(path)
  } catch {
    // Already gone: nothing to release.
  }
}

function isAlive(holder: Holder): boolean {
  if (holder.host !== hostname()) return true // cannot tell: assume it runs
  try {
    process.kill(holder.pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
  }
  // The pid exists; is it still the process that took the lock, or a new one with its number?
  const ticks = startTicksOf(holder.pid)
  return ticks === null || holder.startTicks === null || ticks === holder.startTicks
}

/** Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot (Linux). */
function startTicksOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[19])
    return Number.isFinite(ticks) ? ticks : null
  } catch {
    return null
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms
  } catch {
    return false
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
