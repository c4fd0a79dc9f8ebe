import { randomBytes } from 'node:crypto'
import { Client, type QueryResultRow } from 'pg'

// PostgreSQL for the tests: the machine's server at 127.0.0.1:5432 (trust authentication,
// database `test`), or $SECURELOGIN_TEST_PG. Each test makes its own database and drops it.
// Unreachable, the PostgreSQL tests skip with one line, except under CI, where they fail.

export const ADMIN_URL = process.env.SECURELOGIN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test'

function hostOf(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || '5432'}`
  } catch {
    return '(an unreadable $SECURELOGIN_TEST_PG)'
  }
}

async function connected(url: string): Promise<Client> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  client.on('error', () => {})
  await client.connect()
  return client
}

export async function postgresAvailable(): Promise<boolean> {
  try {
    const client = await connected(ADMIN_URL)
    await client.end()
    return true
  } catch {
    return false
  }
}

let probe: Promise<boolean> | undefined
let told = false

/**
 * Whether the PostgreSQL tests run: probed once per worker. Under CI an unreachable server
 * throws, so the test file fails instead of skipping.
 */
export async function havePostgres(): Promise<boolean> {
  const ok = await (probe ??= postgresAvailable())
  if (ok) return true
  const line = `PostgreSQL at ${hostOf(ADMIN_URL)} is not reachable`
  if (process.env.CI) throw new Error(`${line}, and CI runs every PostgreSQL test: start it (pg_ctlcluster ... start)`)
  if (!told) console.log(`skipping the PostgreSQL tests: ${line}`)
  told = true
  return false
}

export interface TestDatabase {
  /** postgres://postgres@127.0.0.1:5432/securelogin_t_... */
  url: string
  name: string
  /** The URL with a user and password (which trust authentication ignores). */
  urlWithPassword(password: string): string
  /** One statement as the admin, on this database (to tamper, or to look). */
  sql<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>
  drop(): Promise<void>
}

export async function makeDatabase(): Promise<TestDatabase> {
  const name = `securelogin_t_${randomBytes(6).toString('hex')}`
  const admin = await connected(ADMIN_URL)
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const at = new URL(ADMIN_URL)
  at.pathname = `/${name}`
  const url = at.toString()
  return {
    url,
    name,
    urlWithPassword(password) {
      const withPassword = new URL(url)
      withPassword.password = password
      return withPassword.toString()
    },
    async sql(text, values = []) {
      const client = await connected(url)
      try {
        return (await client.query(text, values)).rows
      } finally {
        await client.end()
      }
    },
    async drop() {
      const client = await connected(ADMIN_URL)
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}
