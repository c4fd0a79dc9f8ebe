import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { SecureLoginError } from '../protocol/errors.js'
import type { Role } from '../protocol/messages.js'
import { DEFAULT_KDF, type KdfParams } from './kdf.js'
import { Journal, readHeader, type Report } from './journal.js'


export interface UserRecord {
  username: string
  /** SRP salt, hex. */
  salt: string
  /** SRP verifier, hex. */
  verifier: string
  /** TOTP secret, base32. */
  totpSecret: string
  role: Role
  createdAt: string
}

export interface StoreHeaderInfo {
  formatVersion: number
  kdf: KdfParams
  storeId: string
  fileSize: number
}

export interface OpenOptions {
  /** Only when creating. */
  kdf?: KdfParams
  /** Things worth a log line that are not failures (a torn last record cut off). */
  onReport?: Report
}

/** What a record's plaintext holds (UTF-8 JSON). */
type StoreRecord = { type: 'server_secret'; secret: string } | { type: 'user'; user: UserRecord }

export interface Store {
  readonly path: string
  getUser(username: string): UserRecord | undefined
  hasUser(username: string): boolean
  userCount(): number
  /** Appends the account as one sealed record, fsync'd before this resolves. */
  addUser(user: UserRecord): Promise<void>
  /** 32 random bytes made with the store, for decoy SRP credentials. */
  serverSecret(): Buffer
  close(): Promise<void>
}

export function storeExists(path: string): boolean {
  return existsSync(path)
}

/** Makes a new store (refusing to replace one), with a fresh server secret as its first record. */
export async function createStore(path: string, passphrase: string, opts: OpenOptions = {}): Promise<Store> {
  if (storeExists(path)) throw new SecureLoginError('ERR_STORE_IO', `${path} already exists`, { hint: 'open it instead, or choose another --store' })
  const secret: StoreRecord = { type: 'server_secret', secret: randomBytes(32).toString('hex') }
  const journal = await Journal.create(path, passphrase, opts.kdf ?? DEFAULT_KDF, [encode(secret)])
  return new JournalStore(journal, [secret])
}

export async function openStore(path: string, passphrase: string, opts: OpenOptions = {}): Promise<Store> {
  const { journal, records } = await Journal.open(path, passphrase, opts.onReport ?? (() => {}))
  try {
    return new JournalStore(journal, records.map((plaintext, index) => decode(plaintext, index, path)))
  } catch (error) {
    await journal.close()
    throw error
  }
}

export async function readStoreHeader(path: string): Promise<StoreHeaderInfo> {
  const { header, fileSize } = await readHeader(path)
  return { formatVersion: header.formatVersion, kdf: header.kdf, storeId: header.storeId.toString('hex'), fileSize }
}

class JournalStore implements Store {
  readonly #journal: Journal
  readonly #users = new Map<string, UserRecord>()
  #secret: Buffer | undefined

  constructor(journal: Journal, records: StoreRecord[]) {
    this.#journal = journal
    for (const record of records) this.#apply(record)
    if (!this.#secret) throw new SecureLoginError('ERR_STORE_CORRUPT', `${journal.path} has no server secret record`)
  }

  get path(): string {
    return this.#journal.path
  }

  getUser(username: string): UserRecord | undefined {
    return this.#users.get(username)
  }

  hasUser(username: string): boolean {
    return this.#users.has(username)
  }

  userCount(): number {
    return this.#users.size
  }

  async addUser(user: UserRecord): Promise<void> {
    if (this.#users.has(user.username)) {
      throw new SecureLoginError('ERR_USERNAME_TAKEN', `user name ${user.username} is taken`, { hint: 'choose another user name' })
    }
    const record: StoreRecord = { type: 'user', user: { ...user } }
    await this.#journal.append(encode(record))
    this.#apply(record)
  }

  serverSecret(): Buffer {
    return Buffer.from(this.#secret!)
  }

  close(): Promise<void> {
    this.#secret?.fill(0)
    return this.#journal.close()
  }

  #apply(record: StoreRecord): void {
    if (record.type === 'server_secret') this.#secret = Buffer.from(record.secret, 'hex')
    else this.#users.set(record.user.username, record.user)
  }
}

function encode(record: StoreRecord): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8')
}

function decode(plaintext: Buffer, index: number, path: string): StoreRecord {
  let record: unknown
  try {
    record = JSON.parse(plaintext.toString('utf8'))
  } catch {
    record = undefined
  }
  const type = (record as { type?: unknown } | undefined)?.type
  if (type !== 'server_secret' && type !== 'user') {
    // Authentic but unreadable: written by a newer version, never by an attacker without the key.
    throw new SecureLoginError('ERR_STORE_CORRUPT', `record ${index} of ${path} has an unknown type`, {
      hint: 'was this store written by a newer securelogin?',
    })
  }
  return record as StoreRecord
}
