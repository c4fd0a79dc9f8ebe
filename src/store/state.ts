import { constants } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { SecureLoginError } from '../base/errors.js'
import { HEADER_BYTES, decodeHeader } from './format.js'

// The state file, NAME.state beside the store: how far the store had got (which file generation,
// which last record) when it was last written. A copy of the store file from before that point is
// refused at open (ERR_STORE_ROLLBACK): the store file alone cannot tell, since every older copy
// of it authenticates. docs/store-format.md, "State file", gives the rules and what remains.

/** One generation of the store file up to one record. Only ciphertext: no key is needed to check it. */
export interface FileIdentity {
  /** The header's checksum field (hex): compaction (new data key) and rekey (new wrap) change it. */
  header: string
  /** Whole records in the file at that moment. */
  records: number
  /** Where the last of them starts (its length prefix) and ends. */
  lastAt: number
  end: number
  /** SHA-256 of the last record's bytes, length prefix included (hex). */
  last: string
}

export interface StoreState {
  version: 1
  storeId: string
  writtenAt: string
  current: FileIdentity
  /** Written just before a compaction or rekey renames its new file over the store. */
  next?: FileIdentity
}

/** The key inside the store that says a state file is kept for it, so that deleting that file is noticed. */
export const STATE_MARKER_KEY = 'store/state-file'
/** A counted prefix whose count is 1 when the marker is there (for `store verify`). */
export const STATE_MARKER_PREFIX = 'store/'

const MAX_STATE_BYTES = 64 * 1024

export const statePathOf = (storePath: string): string => `${storePath}.state`

/** A temporary state file: not `.tmp`, which names the store's own temporary files. */
export const stateTempPrefix = (storePath: string): string => `.${basename(storePath)}.state.new.`

/** What a check needs of a store file: its header checksum and its bytes. */
export interface FileBytes {
  storeId: Buffer
  headerChecksum: Buffer
  /** The end of the last whole record (the journal), or the file's size (a fresh read). */
  size: number
  read(at: number, length: number): Promise<Buffer>
  /** Whole records and where record `seq` starts, when the records have been indexed. */
  records?: number
  offsetOf?(seq: number): number
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

export async function identityOf(file: FileBytes, records: number, lastAt: number, end: number): Promise<FileIdentity> {
  return {
    header: file.headerChecksum.toString('hex'),
    records,
    lastAt,
    end,
    last: sha256(records === 0 ? Buffer.alloc(0) : await file.read(lastAt, end - lastAt)),
  }
}

/** Whether the file is that generation and still holds that record where it was. */
async function holds(file: FileBytes, id: FileIdentity): Promise<boolean> {
  if (file.headerChecksum.toString('hex') !== id.header) return false
  if (id.records === 0) return true
  if (id.end > file.size || id.lastAt < HEADER_BYTES || id.lastAt >= id.end) return false
  if (file.records !== undefined && (file.records < id.records || file.offsetOf!(id.records - 1) !== id.lastAt))
    return false
  return sha256(await file.read(id.lastAt, id.end - id.lastAt)) === id.last
}

/** Why the store file is older than its state file says, or undefined when it is not. */
export async function findRollback(storePath: string, state: StoreState, file: FileBytes): Promise<string | undefined> {
  const stateFile = statePathOf(storePath)
  const storeId = file.storeId.toString('hex')
  if (state.storeId !== storeId)
    return `${stateFile} belongs to another store (id ${state.storeId}), not to ${storePath} (id ${storeId})`
  if ((await holds(file, state.current)) || (state.next !== undefined && (await holds(file, state.next))))
    return undefined
  const said = `its state file (written ${state.writtenAt})`
  const { current } = state
  if (file.headerChecksum.toString('hex') !== current.header)
    return `${storePath} is not the file ${said} names: an older copy, from before a compaction or rekey`
  const older = 'it was cut back or replaced by an older copy'
  if (file.records !== undefined && file.records < current.records)
    return `${storePath} holds ${file.records} records, but ${said} says ${current.records} had been written: ${older}`
  if (file.size < current.end)
    return `${storePath} ends at byte ${file.size}, but ${said} names a record ending at byte ${current.end}: ${older}`
  return `record ${current.records - 1} of ${storePath} is not the one ${said} names: it was replaced`
}

export type ReadState =
  { kind: 'absent' } | { kind: 'unreadable'; problem: string } | { kind: 'read'; state: StoreState }

/** Reads NAME.state, never through a symbolic link. */
export async function readState(storePath: string): Promise<ReadState> {
  const path = statePathOf(storePath)
  let text: string
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const { size } = await handle.stat()
      if (size > MAX_STATE_BYTES) return { kind: 'unreadable', problem: `${path} is ${size} bytes, not a state file` }
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { kind: 'absent' }
    return { kind: 'unreadable', problem: `cannot read ${path} (${code})` }
  }
  try {
    const state = JSON.parse(text) as StoreState
    if (
      state.version === 1 &&
      typeof state.storeId === 'string' &&
      typeof state.writtenAt === 'string' &&
      isIdentity(state.current) &&
      (state.next === undefined || isIdentity(state.next))
    )
      return { kind: 'read', state }
  } catch {
    // fall through
  }
  return { kind: 'unreadable', problem: `${path} is not a state file this securelogin wrote` }
}

function isIdentity(value: unknown): value is FileIdentity {
  const id = value as FileIdentity
  return (
    typeof id === 'object' &&
    id !== null &&
    typeof id.header === 'string' &&
    typeof id.last === 'string' &&
    [id.records, id.lastAt, id.end].every((n) => Number.isSafeInteger(n) && n >= 0)
  )
}

/**
 * Replaces NAME.state whole: a fresh file (O_EXCL, O_NOFOLLOW, mode 0600), fsync'd, renamed over
 * the old one, and the directory fsync'd, so a crash leaves the old state or the new one.
 */
export async function writeState(
  storePath: string,
  storeId: Buffer,
  current: FileIdentity,
  next?: FileIdentity,
): Promise<void> {
  const state: StoreState = {
    version: 1,
    storeId: storeId.toString('hex'),
    writtenAt: new Date().toISOString(),
    current,
    ...(next ? { next } : {}),
  }
  const dir = dirname(storePath)
  const temporary = join(dir, `${stateTempPrefix(storePath)}${process.pid}.${randomBytes(4).toString('hex')}`)
  try {
    const handle = await open(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    )
    try {
      await handle.writeFile(`${JSON.stringify(state)}\n`)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temporary, statePathOf(storePath))
    const directory = await open(dir, 'r')
    try {
      await directory.sync()
    } finally {
      await directory.close()
    }
  } catch (error) {
    await rm(temporary, { force: true })
    const code = (error as NodeJS.ErrnoException).code
    throw new SecureLoginError('ERR_STORE_IO', `cannot write the state file ${statePathOf(storePath)} (${code})`, {
      cause: error,
    })
  }
}

export function rollbackError(message: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_ROLLBACK', message, {
    hint:
      'if you restored this store from a backup on purpose, start once with --accept-rollback; otherwise keep ' +
      'the store and its .state file as evidence: someone may have replaced it with an older copy',
  })
}

/**
 * A store about to be made where a state file names one: the store file was deleted or moved. A
 * server would otherwise make a new, empty store on its own and hand out a new bootstrap token.
 * Refused, or with 'accept' reported (`store_rollback_accepted`) and left to be overwritten.
 */
export async function refuseOrphanState(
  storePath: string,
  mode: 'refuse' | 'accept',
  report?: (event: string, fields: Record<string, unknown>) => void,
): Promise<void> {
  const read = await readState(storePath)
  if (read.kind === 'absent') return
  const since = read.kind === 'read' ? ` (store id ${read.state.storeId}, written ${read.state.writtenAt})` : ''
  const problem = `there is no store at ${storePath}, but its state file ${statePathOf(storePath)} names one${since}`
  if (mode === 'accept') {
    report?.('store_rollback_accepted', { path: storePath, problem })
    return
  }
  throw new SecureLoginError('ERR_STORE_ROLLBACK', problem, {
    hint:
      'restore the store file; to make a new store here anyway, delete the state file or start the server ' +
      'with --accept-rollback',
  })
}

export interface StateCheck {
  path: string
  /** Whether the store keeps a state file (the file exists, or the store says it should). */
  kept: boolean
  ok: boolean
  problem?: string
}

/**
 * `store verify`'s check, on the file as it is (after it has been authenticated): no key needed,
 * since the state names ciphertext. `marked`: the store holds the marker that says it keeps one.
 */
export async function checkStateFile(storePath: string, marked: boolean): Promise<StateCheck> {
  const path = statePathOf(storePath)
  const read = await readState(storePath)
  if (read.kind === 'absent')
    return marked
      ? { path, kept: true, ok: false, problem: missingProblem(storePath) }
      : { path, kept: false, ok: true }
  if (read.kind === 'unreadable') return { path, kept: true, ok: false, problem: read.problem }
  const handle = await open(storePath, 'r')
  try {
    const { size } = await handle.stat()
    const head = Buffer.alloc(Math.min(size, HEADER_BYTES))
    await handle.read(head, 0, head.length, 0)
    const header = decodeHeader(head, storePath)
    const problem = await findRollback(storePath, read.state, {
      storeId: header.storeId,
      headerChecksum: header.checksum,
      size,
      read: (at, length) => readExactly(handle, at, length),
    })
    return problem === undefined ? { path, kept: true, ok: true } : { path, kept: true, ok: false, problem }
  } finally {
    await handle.close()
  }
}

export function missingProblem(storePath: string): string {
  return (
    `the state file ${statePathOf(storePath)} is missing, though ${storePath} says it keeps one: it was deleted, ` +
    'or the store was copied or restored without it'
  )
}

export async function readExactly(
  handle: { read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> },
  at: number,
  length: number,
): Promise<Buffer> {
  const bytes = Buffer.alloc(length)
  const { bytesRead } = await handle.read(bytes, 0, length, at)
  return bytes.subarray(0, bytesRead)
}
