import { randomBytes } from 'node:crypto'
import { Pool, type PoolClient, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg'
import { SecureLoginError } from '../base/errors.js'
import { open, seal } from './barrier.js'
import { DATA_KEY_BYTES, SALT_BYTES, STORE_ID_BYTES } from './format.js'
import { DEFAULT_KDF, checkKdfParams, deriveKek, type KdfParams } from './kdf.js'
import type { Report } from './journal.js'
import {
  PG_FORMAT_VERSION,
  dataKeyAad,
  indexKeyAad,
  nameAad,
  prefixIds,
  prefixQuery,
  rootAad,
  rowId,
  valueAad,
} from './pg-crypto.js'
import { checkUrl, databaseError, isUnreachable, noStore, redactUrl, secretsOf } from './pg-errors.js'
import {
  CREATE_SCHEMA,
  KEYRING_LOCK,
  ROTATION_LOCK,
  SQL,
  SQLSTATE_CONFLICT,
  SQLSTATE_STALE_KEY,
  type Statement,
} from './pg-schema.js'
import {
  StoreConflict,
  type CompactResult,
  type Store,
  type StoreChange,
  type StoreHeaderInfo,
  type StoreStats,
  type StoreView,
  type Version,
} from './store.js'

export { isPostgresUrl, redactUrl } from './pg-errors.js'

// The encrypted store on PostgreSQL (docs/store-format.md, "On PostgreSQL"): the same Store as
// the journal file, for many server processes on one database. The database holds only sealed
// boxes and keyed hashes; every key stays in this process's memory.

export interface PgOptions {
  /** Only when creating. */
  kdf?: KdfParams
  /** Prefixes `stats().counted` reports (a count(*) each: the database keeps no counters). */
  countedPrefixes?: readonly string[]
  /** Things worth a log line that are not failures: a lost idle connection, a rekey, a data-key rotation. */
  onReport?: Report
  /** Connections this process may hold (1 to 100, default 10). */
  poolSize?: number
  /** Rows re-sealed per statement by a data-key rotation (tests lower it). */
  rotateBatch?: number
  /**
   * Puts one data key may seal before a commit starts a rotation by itself: each put seals two
   * random-nonce boxes, and GCM's random nonces allow 2^32 per key (tests lower it).
   */
  maxPutsPerKey?: number
}

export interface RotateResult {
  /** The data key now current. */
  keyVersion: number
  /** Rows re-sealed under it (rows a commit rewrote meanwhile were sealed under it by that commit). */
  resealed: number
  /** Older data keys that no row uses any more, marked retired. */
  retired: number[]
  ms: number
}

/** A Store on PostgreSQL, which can also rotate its data key online. */
export interface PgStore extends Store {
  rotateDataKey(): Promise<RotateResult>
}

const DEFAULT_POOL_SIZE = 10
const MAX_POOL_SIZE = 100
const ROTATE_BATCH = 500
/** 2^30 puts: 2^31 sealed boxes, half of what random 96-bit nonces allow under one key. */
const MAX_PUTS_PER_KEY = 2 ** 30
/** Changes per statement of `commitEach`. */
const EACH_BATCH = 500
const KEY_BYTES = 32
const SECRET_KEY = 'server/secret'
/** A health check's answer is reused this long: /readyz asked every second must not reach the database each time. */
const HEALTH_CACHE_MS = 1_000
/** A database that has not answered a health check within this is reported unreachable. */
const HEALTH_TIMEOUT_MS = 1_000

interface HeaderRow {
  format_version: number
  store_id: Buffer
  kdf: string
  salt: Buffer
  root_box: Buffer
  index_box: Buffer
}

interface Header {
  storeId: Buffer
  kdf: KdfParams
  salt: Buffer
  rootBox: Buffer
  indexBox: Buffer
}

interface KeyringRow {
  key_version: number
  key_box: Buffer
  retired: boolean
  sealed_from: string
}

interface NameRow {
  hkey: Buffer
  key_version: number
  name_box: Buffer
}

/** What the store knows to reach its database and to speak of it. */
interface Db {
  pool: Pool
  /** The URL without its password. */
  where: string
  secrets: string[]
  report: Report
}

function connect(url: string, opts: PgOptions): Db {
  checkUrl(url)
  const poolSize = opts.poolSize ?? DEFAULT_POOL_SIZE
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > MAX_POOL_SIZE)
    throw new SecureLoginError('ERR_CONFIG', `a pool of ${poolSize} connections: 1 to ${MAX_POOL_SIZE}`)
  const where = redactUrl(url)
  const report = opts.onReport ?? (() => {})
  const pool = new Pool({
    connectionString: url,
    max: poolSize,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    application_name: 'securelogin',
  })
  const secrets = secretsOf(url)
  // An idle connection that the server drops (a restart, pg_terminate_backend) is an 'error'
  // event on the pool: unhandled, it would end the process. The pool has already discarded it.
  pool.on('error', (error) => {
    const reason = databaseError(where, error, 'an idle connection', secrets).message
    report('store_connection_lost', { store: where, reason })
  })
  return { pool, where, secrets, report }
}

async function query<R extends QueryResultRow>(
  db: Db,
  statement: Statement,
  values: unknown[],
  doing: string,
  client?: PoolClient,
): Promise<QueryResult<R>> {
  const text = { name: statement.name, text: statement.text, values }
  try {
    return client ? await client.query<R>(text) : await pooled<R>(db, text, doing)
  } catch (error) {
    throw databaseError(db.where, error, doing, db.secrets)
  }
}

/**
 * One statement on a connection from the pool, its error thrown as the driver gave it. Not the
 * pool's own query(): that throws a connection away after any error, and a lost compare-and-set
 * is an error the commit function raises on a good connection. With several processes each lost
 * race cost a new connection (bench/login.mjs: 0.28 a login with two workers, PostgreSQL's CPU a
 * login 0.7 -> 2.7 ms). Only a connection that failed is dropped.
 */
async function pooled<R extends QueryResultRow>(db: Db, text: QueryConfig, doing: string): Promise<QueryResult<R>> {
  const own = await checkOut(db, doing)
  const ignore = () => {}
  own.on('error', ignore)
  let broken = false
  try {
    return await own.query<R>(text)
  } catch (error) {
    broken = isUnreachable(error)
    throw error
  } finally {
    own.off('error', ignore)
    own.release(broken || undefined)
  }
}

/** A checked-out client inside BEGIN ... COMMIT; one that fails to roll back is destroyed, not reused. */
async function inTransaction<T>(db: Db, doing: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await checkOut(db, doing)
  // A checked-out client's socket error surfaces in its next query; without a listener it would end the process.
  const ignore = () => {}
  client.on('error', ignore)
  let broken = false
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true
    })
    throw databaseError(db.where, error, doing, db.secrets)
  } finally {
    client.off('error', ignore)
    client.release(broken || undefined)
  }
}

async function checkOut(db: Db, doing: string): Promise<PoolClient> {
  try {
    return await db.pool.connect()
  } catch (error) {
    throw databaseError(db.where, error, doing, db.secrets)
  }
}

function pgCorrupt(message: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_CORRUPT', message, {
    hint: 'the database may have been damaged or tampered with; nothing was changed. restore it from a backup',
  })
}

function alreadyExists(where: string): SecureLoginError {
  return new SecureLoginError('ERR_STORE_IO', `${where} already exists`, {
    hint: 'open it instead, or choose another --store',
  })
}

function badPassphrase(): SecureLoginError {
  return new SecureLoginError('ERR_STORE_BAD_PASSPHRASE', 'wrong passphrase or damaged store', {
    hint: 'the store is unchanged; type the passphrase again',
  })
}

async function headerPresent(db: Db, client?: PoolClient): Promise<boolean> {
  const { rows } = await query<{ present: boolean }>(db, SQL.headerExists, [], 'looking for a store', client)
  return rows[0]?.present === true
}

/** The header row, checked (format, sizes, KDF floor and cap) before any KDF work. */
async function readHeaderRow(db: Db): Promise<Header> {
  if (!(await headerPresent(db))) throw noStore(db.where)
  const { rows } = await query<HeaderRow>(db, SQL.readHeader, [], 'reading the header')
  const row = rows[0]
  if (!row) throw pgCorrupt(`${db.where} has the securelogin tables but no header row`)
  if (row.format_version !== PG_FORMAT_VERSION)
    throw new SecureLoginError(
      'ERR_STORE_CORRUPT',
      `unsupported store format version ${row.format_version} in ${db.where} ` +
        `(this securelogin reads version ${PG_FORMAT_VERSION})`,
      { hint: 'use the securelogin that wrote it, or a newer one' },
    )
  if (row.store_id.length !== STORE_ID_BYTES || row.salt.length !== SALT_BYTES)
    throw pgCorrupt(`the header of ${db.where} is damaged (store id or salt of the wrong size)`)
  const kdf = parseKdf(row.kdf, db.where)
  checkKdfParams(kdf)
  return { storeId: row.store_id, kdf, salt: row.salt, rootBox: row.root_box, indexBox: row.index_box }
}

function parseKdf(text: string, where: string): KdfParams {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  const kdf = parsed as Partial<KdfParams> | undefined
  if (
    !kdf ||
    kdf.name !== 'scrypt' ||
    typeof kdf.logN !== 'number' ||
    typeof kdf.r !== 'number' ||
    typeof kdf.p !== 'number'
  )
    throw pgCorrupt(`the header of ${where} names no key derivation securelogin knows`)
  return { name: 'scrypt', logN: kdf.logN, r: kdf.r, p: kdf.p }
}

const kdfText = (kdf: KdfParams) => JSON.stringify({ name: kdf.name, logN: kdf.logN, r: kdf.r, p: kdf.p })

/** The keys a store holds in memory once open; the database holds each only sealed. */
interface KeyMaterial {
  storeId: Buffer
  kdf: KdfParams
  salt: Buffer
  root: Buffer
  index: Buffer
}

function wipe(...buffers: (Buffer | undefined)[]): void {
  for (const buffer of buffers) buffer?.fill(0)
}

/** The row a put writes: its id, prefix ids and two boxes sealed under data key `keyVersion`. */
function sealRow(keys: KeyMaterial, dataKey: Buffer, keyVersion: number, name: string, value: unknown, hkey: Buffer) {
  const { p1, p2 } = prefixIds(keys.index, name)
  const plaintext = Buffer.from(JSON.stringify(value), 'utf8')
  return {
    hkey,
    p1,
    p2,
    nameBox: seal(dataKey, Buffer.from(name, 'utf8'), nameAad(keys.storeId, keyVersion, hkey)),
    box: seal(dataKey, plaintext, valueAad(keys.storeId, keyVersion, hkey)),
  }
}

/** The arguments of one call of securelogin_commit: the changes in `order`, `rowIds` their row ids. */
function commitArgs(
  keys: KeyMaterial,
  dataKey: Buffer,
  keyVersion: number,
  changes: StoreChange[],
  rowIds: Buffer[],
  order: number[],
): unknown[] {
  const hkeys: Buffer[] = []
  const p1s: Buffer[] = []
  const p2s: (Buffer | null)[] = []
  const nameBoxes: (Buffer | null)[] = []
  const boxes: (Buffer | null)[] = []
  const expects: (string | null)[] = []
  const expectAbsent: boolean[] = []
  for (const i of order) {
    const change = changes[i]!
    if ('delete' in change) {
      hkeys.push(rowIds[i]!)
      p1s.push(Buffer.alloc(0))
      p2s.push(null)
      nameBoxes.push(null)
      boxes.push(null)
    } else {
      const row = sealRow(keys, dataKey, keyVersion, change.key, change.value, rowIds[i]!)
      hkeys.push(row.hkey)
      p1s.push(row.p1)
      p2s.push(row.p2)
      nameBoxes.push(row.nameBox)
      boxes.push(row.box)
    }
    expects.push(typeof change.expect === 'string' ? change.expect : null)
    expectAbsent.push(change.expect === null)
  }
  return [hkeys, p1s, p2s, nameBoxes, boxes, expects, expectAbsent, keyVersion]
}

/** Versions are the decimal numbers of one bigint sequence; anything else can never match. */
const isVersion = (v: string) => /^[1-9][0-9]{0,18}$/.test(v) && BigInt(v) < 2n ** 63n
/** After an automatic rotation could not start (another process holds it, the database is away), wait this long. */
const AUTO_ROTATE_PAUSE_MS = 10_000

/** Makes the tables in one transaction (refusing a database that has them), with a fresh server secret. */
export async function createPgStore(url: string, passphrase: string, opts: PgOptions = {}): Promise<PgStore> {
  const kdf = opts.kdf ?? DEFAULT_KDF
  checkKdfParams(kdf)
  const db = connect(url, opts)
  let keys: KeyMaterial | undefined
  let dataKey: Buffer | undefined
  try {
    // Refused before the KDF's half second, and again inside the transaction.
    if (await headerPresent(db)) throw alreadyExists(db.where)
    const salt = randomBytes(SALT_BYTES)
    const storeId = randomBytes(STORE_ID_BYTES)
    keys = { storeId, kdf, salt, root: randomBytes(KEY_BYTES), index: randomBytes(KEY_BYTES) }
    dataKey = randomBytes(DATA_KEY_BYTES)
    const kek = await deriveKek(passphrase, salt, kdf)
    const rootBox = seal(kek, keys.root, rootAad(storeId, kdf, salt))
    wipe(kek)
    const made = keys
    const key = dataKey
    const secret = [{ key: SECRET_KEY, value: { secret: randomBytes(32).toString('hex') }, expect: null }]
    await inTransaction(db, 'making the store', async (client) => {
      if (await headerPresent(db, client)) throw alreadyExists(db.where)
      await client.query(CREATE_SCHEMA)
      const indexBox = seal(made.root, made.index, indexKeyAad(storeId))
      await query(
        db,
        SQL.insertHeader,
        [PG_FORMAT_VERSION, storeId, kdfText(kdf), salt, rootBox, indexBox],
        'making the store',
        client,
      )
      await query(db, SQL.insertKey, [1, seal(made.root, key, dataKeyAad(storeId, 1))], 'making the store', client)
      const args = commitArgs(made, key, 1, secret, [rowId(made.index, SECRET_KEY)], [0])
      await query(db, SQL.commit, args, 'making the store', client)
    }).catch((error: SecureLoginError) => {
      // Two makers at once: the loser's CREATE TABLE meets the winner's (42P07, or 23505 in the catalog).
      throw error.code === 'ERR_STORE_IO' && /42P07|23505/.test(error.message) ? alreadyExists(db.where) : error
    })
    wipe(dataKey)
    return await PgStoreImpl.start(db, keys, opts)
  } catch (error) {
    wipe(keys?.root, keys?.index, dataKey)
    await db.pool.end().catch(() => {})
    throw error
  }
}

export async function openPgStore(url: string, passphrase: string, opts: PgOptions = {}): Promise<PgStore> {
  const db = connect(url, opts)
  let keys: KeyMaterial | undefined
  try {
    const header = await readHeaderRow(db)
    const kek = await deriveKek(passphrase, header.salt, header.kdf)
    const root = open(kek, header.rootBox, rootAad(header.storeId, header.kdf, header.salt))
    wipe(kek)
    if (!root) throw badPassphrase()
    const index = open(root, header.indexBox, indexKeyAad(header.storeId))
    if (!index || index.length !== KEY_BYTES) {
      wipe(root)
      throw pgCorrupt(`the index key of ${db.where} fails to authenticate`)
    }
    keys = { storeId: header.storeId, kdf: header.kdf, salt: header.salt, root, index }
    return await PgStoreImpl.start(db, keys, opts)
  } catch (error) {
    wipe(keys?.root, keys?.index)
    await db.pool.end().catch(() => {})
    throw error
  }
}

/**
 * Opens, reads and authenticates every row, then runs `inspect` (the audit chain's check) on the
 * state; changes nothing in the database.
 */
export async function verifyPgStore<T = undefined>(
  url: string,
  passphrase: string,
  opts: {
    onReport?: Report
    countedPrefixes?: readonly string[]
    inspect?: (view: StoreView) => Promise<T>
  } = {},
): Promise<{ stats: StoreStats; tornTail: undefined; inspected: T | undefined }> {
  const store = await openPgStore(url, passphrase, {
    poolSize: 2,
    ...(opts.onReport ? { onReport: opts.onReport } : {}),
    ...(opts.countedPrefixes ? { countedPrefixes: opts.countedPrefixes } : {}),
  })
  try {
    const stats = await store.verify()
    const view: StoreView = { get: (key) => store.get(key), keys: (prefix) => store.keys(prefix) }
    const inspected = opts.inspect ? await opts.inspect(view) : undefined
    return { stats, tornTail: undefined, inspected }
  } finally {
    await store.close()
  }
}

/** The header without the passphrase (`store info`): KDF parameters are checked as an opener would. */
export async function readPgStoreHeader(url: string): Promise<StoreHeaderInfo> {
  const db = connect(url, { poolSize: 1 })
  try {
    const header = await readHeaderRow(db)
    const { rows } = await query<{ bytes: string }>(db, SQL.size, [], 'measuring the store')
    return {
      formatVersion: PG_FORMAT_VERSION,
      kdf: header.kdf,
      storeId: header.storeId.toString('hex'),
      fileSize: Number(rows[0]!.bytes),
    }
  } finally {
    await db.pool.end().catch(() => {})
  }
}

export async function pgStoreExists(url: string): Promise<boolean> {
  const db = connect(url, { poolSize: 1 })
  try {
    return await headerPresent(db)
  } finally {
    await db.pool.end().catch(() => {})
  }
}

class PgStoreImpl implements PgStore {
  readonly #db: Db
  readonly #keys: KeyMaterial
  /** Every data key of the keyring, by version; a reload adds, never replaces (a seal may be using one). */
  readonly #dataKeys = new Map<number, Buffer>()
  #current = 0
  /** The sequence's value when the current data key became current: puts since then were sealed under it. */
  #sealedFrom = 0n
  #secret: Buffer = Buffer.alloc(0)
  readonly #countedPrefixes: readonly string[]
  readonly #rotateBatch: number
  readonly #maxPutsPerKey: bigint
  #reloading: Promise<void> | undefined
  #rotating: Promise<RotateResult> | undefined
  #autoRotatePausedUntil = 0
  #closed = false
  /** The last health check: when it was asked, and its answer once it has one. */
  #ping: { at: number; done: boolean; answer: string | undefined; settled: Promise<void> } | undefined

  private constructor(db: Db, keys: KeyMaterial, opts: PgOptions) {
    this.#db = db
    this.#keys = keys
    this.#countedPrefixes = opts.countedPrefixes ?? []
    this.#rotateBatch = opts.rotateBatch ?? ROTATE_BATCH
    this.#maxPutsPerKey = BigInt(opts.maxPutsPerKey ?? MAX_PUTS_PER_KEY)
  }

  static async start(db: Db, keys: KeyMaterial, opts: PgOptions): Promise<PgStoreImpl> {
    const store = new PgStoreImpl(db, keys, opts)
    try {
      await store.#loadKeyring()
      const secret = await store.get<{ secret?: unknown }>(SECRET_KEY)
      if (typeof secret?.secret !== 'string' || !/^[0-9a-f]{64}$/.test(secret.secret))
        throw pgCorrupt(`${db.where} has no server secret`)
      store.#secret = Buffer.from(secret.secret, 'hex')
      return store
    } catch (error) {
      wipe(...store.#dataKeys.values())
      throw error
    }
  }

  get path(): string {
    return this.#db.where
  }

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.getVersioned<T>(key))?.value
  }

  async getVersioned<T>(key: string): Promise<{ value: T; version: Version } | undefined> {
    this.#open()
    const hkey = rowId(this.#keys.index, key)
    const { rows } = await this.#query<{ version: string; key_version: number; box: Buffer }>(SQL.get, [hkey], 'a read')
    const row = rows[0]
    if (!row) return undefined
    const dataKey = await this.#dataKey(row.key_version, `${key} in ${this.path}`)
    const plaintext = open(dataKey, row.box, valueAad(this.#keys.storeId, row.key_version, hkey))
    if (!plaintext) throw pgCorrupt(`${key} in ${this.path} fails to authenticate`)
    return { value: parseValue<T>(plaintext, () => `${key} in ${this.path} is not JSON`), version: row.version }
  }

  async version(key: string): Promise<Version | null> {
    this.#open()
    const { rows } = await this.#query<{ version: string }>(SQL.version, [rowId(this.#keys.index, key)], 'a read')
    return rows[0]?.version ?? null
  }

  async has(key: string): Promise<boolean> {
    return (await this.version(key)) !== null
  }

  async keys(prefix: string): Promise<string[]> {
    this.#open()
    const q = prefixQuery(this.#keys.index, prefix)
    const statement = q.by === 'all' ? SQL.namesAll : q.by === 'p1' ? SQL.namesP1 : SQL.namesP2
    const { rows } = await this.#query<NameRow>(statement, q.by === 'all' ? [] : [q.id], 'a listing')
    const names: string[] = []
    for (const row of rows) {
      const name = await this.#openName(row, () => `a key under "${prefix}" in ${this.path} fails to authenticate`)
      // Names are compared even when the prefix id matched: the prefix columns are not authenticated.
      if (name.startsWith(prefix)) names.push(name)
    }
    return names
  }

  async count(prefix: string): Promise<number> {
    this.#open()
    const q = prefixQuery(this.#keys.index, prefix)
    if (!q.exact) return (await this.keys(prefix)).length
    const statement = q.by === 'all' ? SQL.countAll : q.by === 'p1' ? SQL.countP1 : SQL.countP2
    const { rows } = await this.#query<{ n: string }>(statement, q.by === 'all' ? [] : [q.id], 'a count')
    return Number(rows[0]!.n)
  }

  async commit(changes: StoreChange[]): Promise<void> {
    this.#open()
    if (changes.length === 0) return
    for (const change of changes)
      if (typeof change.expect === 'string' && !isVersion(change.expect)) throw new StoreConflict(change.key)
    await this.#commit(changes, true)
  }

  async commitEach(changes: StoreChange[]): Promise<void> {
    if (changes.some((change) => change.expect !== undefined)) {
      throw new SecureLoginError('ERR_INTERNAL', 'commitEach cannot compare-and-set: use commit')
    }
    this.#open()
    for (let at = 0; at < changes.length; at += EACH_BATCH) await this.#commit(changes.slice(at, at + EACH_BATCH), true)
  }

  serverSecret(): Buffer {
    return Buffer.from(this.#secret)
  }

  async stats(): Promise<StoreStats> {
    this.#open()
    const [size, rows] = await Promise.all([
      this.#query<{ bytes: string }>(SQL.size, [], 'measuring the store'),
      this.#query<{ n: string }>(SQL.countAll, [], 'a count'),
    ])
    const n = Number(rows.rows[0]!.n)
    const counted: Record<string, number> = {}
    for (const prefix of this.#countedPrefixes) counted[prefix] = await this.count(prefix)
    return {
      formatVersion: PG_FORMAT_VERSION,
      kdf: { ...this.#keys.kdf },
      storeId: this.#keys.storeId.toString('hex'),
      fileSize: Number(size.rows[0]!.bytes),
      records: n,
      entries: n,
      live: n,
      dead: 0,
      counted,
    }
  }

  /**
   * Reads the header, the keyring and every row again, and authenticates each: the index key and
   * every data key under the root key; each row's name and value, its id against its name, its
   * prefix ids. The first failure is ERR_STORE_CORRUPT, naming the row by its version.
   */
  async verify(): Promise<StoreStats> {
    this.#open()
    const header = await readHeaderRow(this.#db)
    const index = open(this.#keys.root, header.indexBox, indexKeyAad(this.#keys.storeId))
    if (!header.storeId.equals(this.#keys.storeId) || !index?.equals(this.#keys.index))
      throw pgCorrupt(`the index key of ${this.path} fails to authenticate`)
    wipe(index)
    await this.#loadKeyring()
    let after: Buffer = Buffer.alloc(0)
    for (;;) {
      const { rows } = await this.#query<NameRow & { p1: Buffer; p2: Buffer | null; version: string; box: Buffer }>(
        SQL.rowsAfter,
        [after, 1000],
        'a verification',
      )
      for (const row of rows) {
        const at = `the row at version ${row.version} of ${this.path}`
        const name = await this.#openName(row, () => `${at}: its name fails to authenticate`)
        if (!rowId(this.#keys.index, name).equals(row.hkey)) throw pgCorrupt(`${at} is filed under another id`)
        const ids = prefixIds(this.#keys.index, name)
        if (!ids.p1.equals(row.p1) || !(ids.p2 === null ? row.p2 === null : row.p2?.equals(ids.p2)))
          throw pgCorrupt(`${at} has prefix ids that are not its name's`)
        const plaintext = open(
          await this.#dataKey(row.key_version, at),
          row.box,
          valueAad(this.#keys.storeId, row.key_version, row.hkey),
        )
        if (!plaintext) throw pgCorrupt(`${at}: its value fails to authenticate`)
        parseValue(plaintext, () => `${at}: its value is not JSON`)
      }
      if (rows.length < 1000) break
      after = rows[rows.length - 1]!.hkey
    }
    if (!(await this.has(SECRET_KEY))) throw pgCorrupt(`${this.path} has no server secret`)
    return this.stats()
  }

  /** On PostgreSQL there is no file to rewrite: compacting rotates the data key (`rotateDataKey`). */
  async compact(): Promise<CompactResult> {
    this.#open()
    const before = await this.stats()
    const { ms } = await this.rotateDataKey()
    const after = await this.stats()
    return {
      recordsBefore: before.records,
      recordsAfter: after.records,
      bytesBefore: before.fileSize,
      bytesAfter: after.fileSize,
      ms,
    }
  }

  /**
   * Wraps the root key under a new passphrase in one UPDATE; other processes hold the root key
   * already and go on. Refused when another process changed the passphrase since this one opened.
   */
  async rekey(passphrase: string, kdf: KdfParams = DEFAULT_KDF): Promise<void> {
    this.#open()
    checkKdfParams(kdf)
    const salt = randomBytes(SALT_BYTES)
    const kek = await deriveKek(passphrase, salt, kdf)
    const rootBox = seal(kek, this.#keys.root, rootAad(this.#keys.storeId, kdf, salt))
    wipe(kek)
    const result = await this.#query(SQL.rewrapRoot, [kdfText(kdf), salt, rootBox, this.#keys.salt], 'a rekey')
    if (result.rowCount !== 1)
      throw new SecureLoginError(
        'ERR_STORE_CONFLICT',
        `the passphrase of ${this.path} was changed by another process`,
        {
          hint: 'open the store again and retry',
        },
      )
    this.#keys.kdf = kdf
    this.#keys.salt = salt
    this.#db.report('store_rekeyed', { path: this.path })
  }

  rotateDataKey(): Promise<RotateResult> {
    this.#open()
    this.#rotating ??= this.#rotate().finally(() => {
      this.#rotating = undefined
    })
    return this.#rotating
  }

  /**
   * `SELECT 1` on a pooled connection, at most once a second. A check the database leaves
   * unanswered for a second says "unreachable" at once to whoever asks after that, without
   * starting another: a database that is down must not collect a queue of checks.
   */
  async health(): Promise<string | undefined> {
    if (this.#closed) return 'store closed'
    const now = Date.now()
    let ping = this.#ping
    if (!ping || (ping.done && now - ping.at >= HEALTH_CACHE_MS)) {
      const fresh = { at: now, done: false, answer: undefined as string | undefined, settled: Promise.resolve() }
      fresh.settled = this.#query(SQL.ping, [], 'a health check').then(
        () => {
          fresh.answer = undefined
          fresh.done = true
        },
        () => {
          fresh.answer = 'database unreachable'
          fresh.done = true
        },
      )
      this.#ping = ping = fresh
    }
    if (!ping.done) {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ping!.at + HEALTH_TIMEOUT_MS - now)))
      await Promise.race([ping.settled, late])
      clearTimeout(timer)
    }
    return ping.done ? ping.answer : 'database unreachable'
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#rotating?.catch(() => {})
    await this.#reloading?.catch(() => {})
    await this.#db.pool.end().catch(() => {})
    wipe(this.#keys.root, this.#keys.index, this.#secret, ...this.#dataKeys.values())
  }

  #open(): void {
    if (this.#closed) throw new SecureLoginError('ERR_STORE_IO', `${this.path} is closed`)
  }

  #query<R extends QueryResultRow>(statement: Statement, values: unknown[], doing: string): Promise<QueryResult<R>> {
    return query<R>(this.#db, statement, values, doing)
  }

  /**
   * One round trip: securelogin_commit applies the changes in one statement. Changes go in row-id
   * order (stable), so two commits lock shared rows in the same order and do not deadlock. A
   * commit sealed under a data key that another process has since replaced is refused by the
   * function; the keyring is read again and the commit sealed and sent once more.
   */
  async #commit(changes: StoreChange[], retry: boolean): Promise<void> {
    const hkeys = changes.map((change) => rowId(this.#keys.index, change.key))
    const order = changes.map((_, i) => i).sort((a, b) => Buffer.compare(hkeys[a]!, hkeys[b]!) || a - b)
    const keyVersion = this.#current
    const args = commitArgs(this.#keys, this.#dataKeys.get(keyVersion)!, keyVersion, changes, hkeys, order)
    let last: string | null
    try {
      const { rows } = await pooled<{ last: string | null }>(
        this.#db,
        { name: SQL.commit.name, text: SQL.commit.text, values: args },
        'a commit',
      )
      last = rows[0]?.last ?? null
    } catch (error) {
      const { code, detail } = error as { code?: string; detail?: string }
      if (code === SQLSTATE_CONFLICT) throw new StoreConflict(changes[order[Number(detail)] ?? 0]!.key)
      // A deadlock or a duplicate the function did not expect still means another commit won.
      if (code === '40P01' || code === '40001' || code === '23505')
        throw new StoreConflict((changes.find((change) => change.expect !== undefined) ?? changes[0]!).key)
      if (code === SQLSTATE_STALE_KEY && retry) {
        await this.#reloadKeyring()
        return this.#commit(changes, false)
      }
      throw databaseError(this.path, error, 'a commit', this.#db.secrets)
    }
    if (last !== null && BigInt(last) - this.#sealedFrom > this.#maxPutsPerKey) this.#autoRotate()
  }

  #autoRotate(): void {
    if (this.#rotating || this.#closed || Date.now() < this.#autoRotatePausedUntil) return
    this.rotateDataKey().then(
      (result) =>
        this.#db.report('store_data_key_rotated', { path: this.path, reason: 'data key nearing its limit', ...result }),
      (error: SecureLoginError) => {
        // A rotation that added its key resets the count; one that could not start would be tried at every commit.
        this.#autoRotatePausedUntil = Date.now() + AUTO_ROTATE_PAUSE_MS
        // Another process rotating at the same moment is the expected loser here.
        if (!this.#closed && error.code !== 'ERR_STORE_LOCKED')
          this.#db.report('store_rotation_failed', { path: this.path, code: error.code, message: error.message })
      },
    )
  }

  /** Data key `keyVersion`, reading the keyring again once if this process lacks it; `what` names the row. */
  async #dataKey(keyVersion: number, what: string): Promise<Buffer> {
    if (!this.#dataKeys.has(keyVersion)) await this.#reloadKeyring()
    const key = this.#dataKeys.get(keyVersion)
    if (!key) throw pgCorrupt(`${what} names data key ${keyVersion}, which the keyring does not hold`)
    return key
  }

  async #openName(row: NameRow, problem: () => string): Promise<string> {
    const dataKey =
      this.#dataKeys.get(row.key_version) ?? (await this.#dataKey(row.key_version, `a key name in ${this.path}`))
    const name = open(dataKey, row.name_box, nameAad(this.#keys.storeId, row.key_version, row.hkey))
    if (!name) throw pgCorrupt(problem())
    return name.toString('utf8')
  }

  #reloadKeyring(): Promise<void> {
    this.#reloading ??= this.#loadKeyring().finally(() => {
      this.#reloading = undefined
    })
    return this.#reloading
  }

  async #loadKeyring(): Promise<void> {
    const { rows } = await this.#query<KeyringRow>(SQL.readKeyring, [], 'reading the keyring')
    if (rows.length === 0) throw pgCorrupt(`${this.path} has an empty keyring`)
    for (const row of rows) {
      const key = open(this.#keys.root, row.key_box, dataKeyAad(this.#keys.storeId, row.key_version))
      if (!key || key.length !== DATA_KEY_BYTES)
        throw pgCorrupt(`data key ${row.key_version} of ${this.path} fails to authenticate`)
      if (this.#dataKeys.has(row.key_version)) wipe(key)
      else this.#dataKeys.set(row.key_version, key)
    }
    const last = rows[rows.length - 1]!
    this.#current = last.key_version
    this.#sealedFrom = BigInt(last.sealed_from)
  }

  /**
   * Adds a fresh data key as current (under the keyring lock taken exclusively, so no commit is
   * in flight across the switch and none after it can use an older key), re-seals the rows still
   * under older keys in batches with compare-and-set on their version, then marks retired the
   * older keys that no row uses. One process at a time (a session advisory lock).
   */
  async #rotate(): Promise<RotateResult> {
    const started = performance.now()
    const db = this.#db
    const client = await checkOut(db, 'a data-key rotation')
    const ignore = () => {}
    client.on('error', ignore)
    let broken = false
    let locked = false
    try {
      const got = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [ROTATION_LOCK])
      if (!got.rows[0]?.got)
        throw new SecureLoginError('ERR_STORE_LOCKED', `another process is rotating the data key of ${this.path}`, {
          hint: 'wait for it to finish',
        })
      locked = true
      const fresh = randomBytes(DATA_KEY_BYTES)
      let keyVersion: number
      await client.query('BEGIN')
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [KEYRING_LOCK])
        const { rows } = await query<{ last: number }>(db, SQL.lastKeyVersion, [], 'a data-key rotation', client)
        keyVersion = rows[0]!.last + 1
        await query(
          db,
          SQL.insertKey,
          [keyVersion, seal(this.#keys.root, fresh, dataKeyAad(this.#keys.storeId, keyVersion))],
          'a data-key rotation',
          client,
        )
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true
        })
        wipe(fresh)
        throw error
      }
      wipe(fresh)
      await this.#reloadKeyring()
      const dataKey = this.#dataKeys.get(keyVersion)!
      let resealed = 0
      for (;;) {
        if (this.#closed) throw new SecureLoginError('ERR_SHUTTING_DOWN', 'the store is closing; rotation abandoned')
        const { rows } = await query<NameRow & { version: string; box: Buffer }>(
          db,
          SQL.underOldKeys,
          [keyVersion, this.#rotateBatch],
          'a data-key rotation',
          client,
        )
        if (rows.length === 0) break
        const hkeys: Buffer[] = []
        const versions: string[] = []
        const nameBoxes: Buffer[] = []
        const boxes: Buffer[] = []
        for (const row of rows) {
          const at = `the row at version ${row.version} of ${this.path}`
          const old = await this.#dataKey(row.key_version, at)
          const name = open(old, row.name_box, nameAad(this.#keys.storeId, row.key_version, row.hkey))
          const value = open(old, row.box, valueAad(this.#keys.storeId, row.key_version, row.hkey))
          if (!name || !value) throw pgCorrupt(`${at} fails to authenticate`)
          hkeys.push(row.hkey)
          versions.push(row.version)
          nameBoxes.push(seal(dataKey, name, nameAad(this.#keys.storeId, keyVersion, row.hkey)))
          boxes.push(seal(dataKey, value, valueAad(this.#keys.storeId, keyVersion, row.hkey)))
        }
        const result = await query(
          db,
          SQL.reseal,
          [keyVersion, hkeys, versions, nameBoxes, boxes],
          'a data-key rotation',
          client,
        )
        resealed += result.rowCount ?? 0
      }
      const { rows } = await query<{ key_version: number }>(
        db,
        SQL.retireUnused,
        [keyVersion],
        'a data-key rotation',
        client,
      )
      const retired = rows.map((row) => row.key_version).sort((a, b) => a - b)
      return { keyVersion, resealed, retired, ms: Math.round(performance.now() - started) }
    } catch (error) {
      throw databaseError(this.path, error, 'a data-key rotation', db.secrets)
    } finally {
      if (locked)
        await client.query('SELECT pg_advisory_unlock($1)', [ROTATION_LOCK]).catch(() => {
          broken = true
        })
      client.off('error', ignore)
      client.release(broken || undefined)
    }
  }
}

function parseValue<T>(plaintext: Buffer, problem: () => string): T {
  try {
    return JSON.parse(plaintext.toString('utf8')) as T
  } catch {
    throw pgCorrupt(problem())
  }
}
