import {
  checkStateFile,
  refuseOrphanState,
  DEFAULT_KDF,
  STATE_MARKER_PREFIX,
  type KdfParams,
  type RollbackMode,
  type StateCheck,
  type StoreLock,
  type StoreStats,
} from '../store/index.js'
import type { AuditHead } from '../protocol/calls.js'
import { AuditLog, verifyAuditChain, type AuditVerification } from '../server/audit-log.js'
import { storeLocation, type LocationOpenOptions, type StoreLocation } from './store-location.js'
import { USERS_PREFIX } from '../server/accounts.js'
import { SecureLoginError } from '../protocol/errors.js'
import { checkPassphraseSource, readPassphrase } from './passphrase.js'
import { printJson, usageError } from './output.js'
import { SigningKeys } from '../server/signing-keys.js'

// `securelogin store init|info|verify|compact|rekey|rotate-signing-key|copy`: the store without the
// server. On a store file each command but info takes the store's lock first, so none runs beside
// a server on the same store; a PostgreSQL store has no lock (many servers share it), and each
// command says what it does to servers running meanwhile (docs/scaling.md).

export interface StoreArgs {
  store: string
  passphraseFile?: string | undefined
  json: boolean
}

/** The commands that write: a store older than its state file is refused unless accepted on purpose. */
export interface WritingStoreArgs extends StoreArgs {
  acceptRollback?: boolean | undefined
}

const rollbackMode = (args: WritingStoreArgs): RollbackMode => (args.acceptRollback ? 'accept' : 'refuse')

/** The state file is the file store's: a database keeps none. */
const rollbackOf = (location: StoreLocation, args: WritingStoreArgs): LocationOpenOptions =>
  location.kind === 'file' ? { rollback: rollbackMode(args) } : {}

type Report = (event: string, fields: Record<string, unknown>) => void

const kdfText = (kdf: KdfParams) => `scrypt logN ${kdf.logN} r ${kdf.r} p ${kdf.p}`

export function kdfFromArgs(logN: number | undefined): KdfParams {
  if (logN === undefined) return DEFAULT_KDF
  if (!Number.isInteger(logN) || logN < 10 || logN > 20)
    throw usageError(
      '--kdf-logn is an integer from 10 to 20',
      `the default, ${DEFAULT_KDF.logN}, takes about half a second`,
    )
  return { ...DEFAULT_KDF, logN }
}

export async function runStoreInit(args: StoreArgs & { kdfLogn?: number | undefined }): Promise<void> {
  const kdf = kdfFromArgs(args.kdfLogn)
  checkPassphraseSource(args.passphraseFile)
  const location = storeLocation(args.store)
  await refuseExisting(location)
  await withLock(location, args, async (lock, report) => {
    if (location.path !== undefined) await refuseOrphanState(location.path, 'refuse')
    const passphrase = await readPassphrase({ file: args.passphraseFile, isNew: true, storePath: location.shown })
    const store = await location.create(passphrase, lock, {
      kdf,
      onReport: report,
      ...(location.kind === 'file' ? { rollback: 'refuse' as const } : {}),
    })
    await store.close()
  })
  if (args.json) printJson({ event: 'store_created', path: location.shown, kdf })
  else process.stdout.write(`created store ${location.shown} (${kdfText(kdf)})\n`)
}

async function refuseExisting(location: StoreLocation): Promise<void> {
  if (await location.exists())
    throw new SecureLoginError('ERR_STORE_IO', `${location.shown} already exists`, {
      hint: 'choose another --store; a store is never overwritten',
    })
}

/** The plaintext header: no passphrase, no lock. */
export async function runStoreInfo(args: StoreArgs): Promise<void> {
  const location = storeLocation(args.store)
  const info = await location.header()
  if (args.json) {
    const { formatVersion, kdf, storeId, fileSize } = info
    printJson({ event: 'store_info', path: location.shown, formatVersion, kdf, storeId, fileSize })
  } else {
    process.stdout.write(
      [
        `store ${location.shown}`,
        `format version ${info.formatVersion}`,
        `kdf ${kdfText(info.kdf)}`,
        `store id ${info.storeId}`,
        `file size ${info.fileSize} bytes`,
      ].join('\n') + '\n',
    )
  }
}

export async function runStoreVerify(args: StoreArgs & { auditAnchor?: string | undefined }): Promise<void> {
  const auditAnchor = args.auditAnchor === undefined ? undefined : auditAnchorFromArg(args.auditAnchor)
  checkPassphraseSource(args.passphraseFile)
  const location = storeLocation(args.store)
  const { state, ...verified } = await withLock(location, args, async (lock, report) => {
    const passphrase = await readPassphrase({ file: args.passphraseFile, isNew: false, storePath: location.shown })
    const { stats, tornTail, inspected } = await location.verify(passphrase, lock, {
      onReport: report,
      countedPrefixes: [USERS_PREFIX, STATE_MARKER_PREFIX],
      inspect: (view) => verifyAuditChain(view.get, view.keys, auditAnchor),
    })
    const result = { stats, tornTail, audit: inspected! }
    // Every record has authenticated: now whether the file is as far as its state file says.
    const marked = (result.stats.counted[STATE_MARKER_PREFIX] ?? 0) > 0
    const state: StateCheck =
      location.path === undefined
        ? { kept: false, ok: true, path: '(none: a database keeps no state file)' }
        : await checkStateFile(location.path, marked)
    return { ...result, state }
  })
  const { tornTail, audit } = verified
  const stats = withUsers(verified.stats)
  if (args.json)
    printJson({
      event: 'store_verified',
      path: location.shown,
      ok: !tornTail && audit.ok && state.ok,
      formatVersion: stats.formatVersion,
      kdf: stats.kdf,
      storeId: stats.storeId,
      fileSize: stats.fileSize,
      records: stats.records,
      entries: stats.entries,
      live: stats.live,
      dead: stats.dead,
      users: stats.users,
      audit: { ok: audit.ok, entries: audit.entries, head: audit.head, problems: audit.problems },
      state,
      ...(tornTail ? { tornTail } : {}),
    })
  else process.stdout.write(`${statsText(location.shown, stats)}\n${auditText(audit)}\n${stateText(location, state)}\n`)
  if (tornTail) {
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `${location.shown} ends in a torn record at offset ${tornTail.offset} (${tornTail.length} bytes): ` +
        'an append cut ' +
        `short by a crash`,
      {
        hint: 'nothing acknowledged is in it; the next server start or `securelogin store compact` cuts it off',
      },
    )
  }
  if (!state.ok) {
    throw new SecureLoginError('ERR_STORE_ROLLBACK', state.problem ?? `${state.path} does not match the store`, {
      hint:
        'if this store was restored from a backup on purpose, the next `securelogin server --accept-rollback` ' +
        'records it; otherwise keep the store and its .state file as evidence',
    })
  }
  if (!audit.ok) {
    const more = audit.problems.length > 1 ? ` (and ${audit.problems.length - 1} more)` : ''
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `the audit log of ${location.shown} fails its hash chain: ${audit.problems[0]!.problem}${more}`,
      {
        hint:
          'entries were edited, removed, reordered or cut off by someone holding the passphrase; ' +
          'keep this file as evidence',
      },
    )
  }
}

/** `N:HASH`: a head written down earlier (the server logs it), which the chain must still contain. */
function auditAnchorFromArg(text: string): AuditHead {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text)
  if (!match)
    throw usageError(
      '--audit-anchor is N:HASH, an entry number and its 64 hex digit hash',
      'copy it from an earlier `store verify` or the server log',
    )
  return { n: Number(match[1]), hash: match[2]! }
}

export async function runStoreCompact(args: WritingStoreArgs): Promise<void> {
  checkPassphraseSource(args.passphraseFile)
  const location = storeLocation(args.store)
  await withLock(location, args, async (lock, report) => {
    const { store } = await openToWrite(location, args, lock, report)
    try {
      const result = await store.compact()
      if (args.json) {
        const { recordsBefore, recordsAfter, bytesBefore, bytesAfter, ms } = result
        printJson({
          event: 'store_compacted',
          path: location.shown,
          recordsBefore,
          recordsAfter,
          bytesBefore,
          bytesAfter,
          ms,
        })
      } else {
        process.stdout.write(
          `compacted ${location.shown}: ${result.recordsBefore} -> ${result.recordsAfter} records, ` +
            `${result.bytesBefore} -> ${result.bytesAfter} bytes in ${result.ms} ms; new data key\n`,
        )
      }
    } finally {
      await store.close()
    }
  })
}

export async function runStoreRekey(
  args: WritingStoreArgs & { newPassphraseFile?: string | undefined; kdfLogn?: number | undefined },
): Promise<void> {
  const kdf = kdfFromArgs(args.kdfLogn)
  checkPassphraseSource(args.passphraseFile)
  checkPassphraseSource(args.newPassphraseFile)
  if (args.passphraseFile !== undefined && args.newPassphraseFile === undefined) {
    throw usageError(
      '--passphrase-file needs --new-passphrase-file too',
      'rekey reads the old passphrase from one file and the new from the other',
    )
  }
  const location = storeLocation(args.store)
  await withLock(location, args, async (lock, report) => {
    const { store, passphrase } = await openToWrite(location, args, lock, report)
    try {
      const next = await readPassphrase({ file: args.newPassphraseFile, isNew: true, storePath: location.shown })
      if (next === passphrase) throw usageError('the new passphrase is the old one')
      await store.rekey(next, kdf)
    } finally {
      await store.close()
    }
  })
  if (args.json) printJson({ event: 'store_rekeyed', path: location.shown, kdf })
  else process.stdout.write(`rekeyed ${location.shown} (${kdfText(kdf)}): the old passphrase no longer opens it\n`)
}

/**
 * A new token-signing key; the old one stays in the JWKS (public half only) until every token it
 * signed has expired. Recorded in the audit log. The server writes the new certs/jwks.json when
 * it next starts: applications that cache the JWKS must fetch it again.
 */
export async function runStoreRotateSigningKey(args: WritingStoreArgs): Promise<void> {
  checkPassphraseSource(args.passphraseFile)
  const location = storeLocation(args.store)
  const rotated = await withLock(location, args, async (lock, report) => {
    const { store } = await openToWrite(location, args, lock, report)
    try {
      const nowMs = Date.now()
      const rotation = await SigningKeys.rotate(store, nowMs)
      const log = await AuditLog.open(store, () => nowMs)
      await log.append(
        {
          actor: null,
          action: 'signing_key.rotated',
          target: rotation.kid,
          address: null,
          outcome: 'ok',
          details: { retired: rotation.retired ?? null, keys: rotation.jwks.keys.length },
        },
        [rotation.change],
      )
      return rotation
    } finally {
      await store.close()
    }
  })
  if (args.json)
    printJson({
      event: 'signing_key_rotated',
      path: location.shown,
      kid: rotated.kid,
      retired: rotated.retired ?? null,
      keys: rotated.jwks.keys.length,
    })
  else {
    const retired = rotated.retired
      ? `; ${rotated.retired} now only verifies, for the tokens it signed (at most an hour)`
      : ''
    process.stdout.write(
      `new signing key ${rotated.kid}${retired}\n` +
        'restart the server: it writes the new certs/jwks.json; applications that keep a copy of the JWKS must ' +
        'fetch it again\n',
    )
  }
}

/** The passphrase, then the store opened for a command that writes (no compaction of its own). */
async function openToWrite(location: StoreLocation, args: WritingStoreArgs, lock: StoreLock, report: Report) {
  const passphrase = await readPassphrase({ file: args.passphraseFile, isNew: false, storePath: location.shown })
  const store = await location.open(passphrase, lock, {
    onReport: report,
    autoCompact: false,
    ...rollbackOf(location, args),
  })
  return { store, passphrase }
}

/** Takes the lock before asking for a passphrase, so that a store in use is refused at once. */
async function withLock<T>(
  location: StoreLocation,
  args: StoreArgs,
  work: (lock: StoreLock, report: Report) => Promise<T>,
): Promise<T> {
  const report: Report = (event, fields) => {
    // With --json, one of docs/cli-json.md's store reports (StoreReportEvents in json-events.ts).
    if (args.json) process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`)
    else
      process.stderr.write(
        `securelogin: ${event.replace(/_/g, ' ')} ${Object.entries(fields)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' ')}\n`,
      )
  }
  const lock = await location.lock(report)
  try {
    return await work(lock, report)
  } finally {
    await lock.release() // the store released it already when it was handed over; this is a no-op then
  }
}

function stateText(location: StoreLocation, state: StateCheck): string {
  if (location.kind === 'postgres') return 'state file: none (a database keeps none: see docs/scaling.md on restores)'
  if (!state.kept) return `state file: none kept yet (the next server start makes ${state.path})`
  return state.ok ? `state file: ${state.path}, the store is as far as it says` : `state file: ${state.problem}`
}

function auditText(audit: AuditVerification): string {
  if (audit.ok) return `audit log: ${audit.entries} entries, head ${audit.head.hash.slice(0, 16)}…, ok`
  return audit.problems.map(({ problem }) => `audit log: ${problem}`).join('\n')
}

/** The stats as `store verify` shows them: the count of accounts in place of the counted prefixes. */
function withUsers(stats: StoreStats): Omit<StoreStats, 'counted'> & { users: number } {
  const { counted, ...rest } = stats
  return { ...rest, users: counted[USERS_PREFIX] ?? 0 }
}

function statsText(path: string, stats: ReturnType<typeof withUsers>): string {
  return [
    `store ${path}: verified, every record authentic`,
    `users ${stats.users}`,
    `records ${stats.records} (entries ${stats.entries}: ${stats.live} live, ${stats.dead} dead)`,
    `file size ${stats.fileSize} bytes`,
    `format version ${stats.formatVersion}`,
    `kdf ${kdfText(stats.kdf)}`,
    `store id ${stats.storeId}`,
  ].join('\n')
}

/** Store keys that are each store's own bookkeeping (the state-file marker): not copied. */
const OWN_PREFIX = 'store/'
const COPY_BATCH = 500

/**
 * `store copy --from SRC --to DST`: every key of SRC into a new store DST (a file or a
 * database, either way), under the same passphrase and KDF cost. Values are opened under SRC's
 * data key and sealed under DST's own; the server secret and the audit log's chain go across
 * as they are, so sessions, device keys and `audit verify` carry on.
 */
export async function runStoreCopy(
  args: { from: string; to: string; passphraseFile?: string | undefined; json: boolean } & Pick<
    WritingStoreArgs,
    'acceptRollback'
  >,
): Promise<void> {
  checkPassphraseSource(args.passphraseFile)
  const from = storeLocation(args.from)
  const to = storeLocation(args.to)
  if (from.shown === to.shown) throw usageError('--from and --to name the same store')
  await refuseExisting(to)
  const copied = await withLock(from, { ...args, store: args.from }, async (fromLock, report) =>
    withLock(to, { ...args, store: args.to }, async (toLock) => {
      const passphrase = await readPassphrase({ file: args.passphraseFile, isNew: false, storePath: from.shown })
      const source = await from.open(passphrase, fromLock, {
        onReport: report,
        autoCompact: false,
        ...rollbackOf(from, { ...args, store: args.from }),
      })
      try {
        const { kdf } = await source.stats()
        const target = await to.create(passphrase, toLock, {
          kdf,
          onReport: report,
          ...(to.kind === 'file' ? { rollback: 'refuse' as const } : {}),
        })
        try {
          const keys = (await source.keys('')).filter((key) => !key.startsWith(OWN_PREFIX)).sort()
          for (let i = 0; i < keys.length; i += COPY_BATCH) {
            const batch = keys.slice(i, i + COPY_BATCH)
            const values = await Promise.all(batch.map((key) => source.get<unknown>(key)))
            await target.commitEach(batch.map((key, j) => ({ key, value: values[j] })))
          }
          return { keys: keys.length, kdf }
        } finally {
          await target.close()
        }
      } finally {
        await source.close()
      }
    }),
  )
  if (args.json) printJson({ event: 'store_copied', from: from.shown, to: to.shown, keys: copied.keys })
  else
    process.stdout.write(
      `copied ${copied.keys} keys from ${from.shown} to ${to.shown} (${kdfText(copied.kdf)}); ` +
        `check both with \`store verify\`\n`,
    )
}
