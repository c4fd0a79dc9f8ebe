import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import srp from 'secure-remote-password/client.js'
import { ServerConnection } from '../../src/client/connection.js'
import { confirmEnrolment, startRegistration } from '../../src/client/register.js'
import { generateTotp } from '../../src/auth/totp.js'
import { DEFAULT_PASSWORD_KDF } from '../../src/auth/password-stretch.js'
import { RFC5054_2048 } from '../../src/auth/srp-group.js'
import { DEFAULT_BUDGETS } from '../../src/server/budget.js'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { RawClient } from '../helpers/raw-client.js'
import { newPassword } from '../helpers/accounts.js'
import { noteSecret } from '../helpers/secrets.js'

// What a prober learns from the answers (issue 17, items 1, 3 and 11), against the real server on
// a real TLS socket with the server's own budgets: a registration's answer under invite does not
// depend on whether the name is taken; logins left without a proof are counted per address; a
// verifier or an A outside the group is refused. The timing of the challenge itself is measured by
// bench/enumeration.mjs (docs/performance.md).

let server: InProcessServer
let bootstrap = ''
const N = RFC5054_2048.N
const hex512 = (n: bigint) => n.toString(16).padStart(512, '0')

beforeAll(async () => {
  server = await startInProcessServer({
    server: {
      budgets: {},
      // Wrong proofs below: the guard counts them, without its waits or a lock in this file.
      sleep: async () => {},
      guard: { lockAfter: 100 },
      onBootstrapToken: (token) => {
        bootstrap = token
        noteSecret('bootstrap token', token)
      },
    },
  })
  // A system_admin: the default policy becomes invite.
  const conn = await connect()
  const password = newPassword()
  noteSecret('password', password)
  const { secret } = await startRegistration(conn, 'root', password, bootstrap)
  noteSecret('TOTP secret', secret)
  await confirmEnrolment(conn, await generateTotp(secret, Date.now()))
  conn.close()
})
afterAll(() => server?.stop())

async function connect(): Promise<ServerConnection> {
  return ServerConnection.open({
    host: '127.0.0.1',
    port: server.server.port,
    trust: { kind: 'ca', ca: await readFile(server.certPath), caFile: server.certPath },
  })
}

/** One register_start on a fresh connection from `from`, with a well-formed salt and verifier. */
async function registerStart(username: string, from: string, extra: Record<string, unknown> = {}) {
  const client = await RawClient.open(server.server.port, '127.0.0.1', { localAddress: from })
  try {
    return await client.request({
      type: 'register_start',
      username,
      salt: 'ab'.repeat(32),
      verifier: hex512(N - 5n),
      kdf: DEFAULT_PASSWORD_KDF,
      ...extra,
    })
  } finally {
    client.close()
  }
}

describe('registration under invite tells nothing of which names are taken', () => {
  it('without a token, a taken name and a free one get the same answer', async () => {
    const taken = await registerStart('root', '127.0.1.1')
    const free = await registerStart('nobody-here', '127.0.1.1')
    expect(taken).toMatchObject({ type: 'error', code: 'ERR_FORBIDDEN' })
    expect(taken).toEqual(free)
  })

  it('with a made-up token, the same again', async () => {
    const token = `sli_${'A'.repeat(43)}`
    expect(await registerStart('root', '127.0.1.2', { token })).toEqual(
      await registerStart('nobody-here', '127.0.1.2', { token }),
    )
  })
})

describe('a verifier or an A outside the group', () => {
  let open: InProcessServer
  let probes = 0
  beforeAll(async () => {
    open = await startInProcessServer({ server: { registration: 'open' } })
  })
  afterAll(() => open?.stop())

  it.each([
    ['0', 0n],
    ['1', 1n],
    ['N', N],
    ['N + 1', N + 1n],
  ])(
    'a verifier of %s is refused at registration (ERR_PROTOCOL), where open registration takes any other',
    async (_, v) => {
      const start = (verifier: bigint) =>
        RawClient.open(open.server.port).then(async (client) => {
          const answer = await client.request({
            type: 'register_start',
            username: `v-probe-${++probes}`,
            salt: 'ab'.repeat(32),
            verifier: hex512(verifier),
            kdf: DEFAULT_PASSWORD_KDF,
          })
          client.close()
          return answer
        })
      expect(await start(v)).toMatchObject({ type: 'error', code: 'ERR_PROTOCOL' })
      expect(await start(N - 5n)).toMatchObject({ type: 'enrol' })
    },
  )

  it.each([
    ['0', 0n],
    ['N', N],
  ])('an A of %s is refused at login_start with the generic failure', async (_, A) => {
    const client = await RawClient.open(server.server.port)
    try {
      expect(await client.request({ type: 'login_start', username: 'root', A: hex512(A) })).toMatchObject({
        type: 'error',
        code: 'ERR_AUTH_FAILED',
        message: 'authentication failed',
      })
    } finally {
      client.close()
    }
  })
})

describe('logins started and left without a proof are counted per address', () => {
  const A = srp.generateEphemeral().public

  /** A login_start from `from` whose challenge is read, then the connection dropped. */
  async function probe(from: string) {
    const client = await RawClient.open(server.server.port, '127.0.0.1', { localAddress: from })
    try {
      return await client.request({ type: 'login_start', username: 'root', A })
    } finally {
      client.close()
    }
  }

  it(`${DEFAULT_BUDGETS.probes} from one address, then ERR_RATE_LIMITED; another address is answered`, async () => {
    for (let i = 0; i < DEFAULT_BUDGETS.probes; i++)
      expect(await probe('127.0.3.1')).toMatchObject({ type: 'challenge' })
    const limited = await probe('127.0.3.1')
    expect(limited).toMatchObject({
      type: 'error',
      code: 'ERR_RATE_LIMITED',
      hint: expect.stringMatching(/^try again in \d+ s$/),
    })
    expect(await probe('127.0.3.2')).toMatchObject({ type: 'challenge' })
  })

  it('a login_start followed by a proof, even a wrong one, gives its probe back', async () => {
    for (let i = 0; i < DEFAULT_BUDGETS.probes + 5; i++) {
      const client = await RawClient.open(server.server.port, '127.0.0.1', { localAddress: '127.0.3.3' })
      try {
        expect(await client.request({ type: 'login_start', username: 'root', A })).toMatchObject({ type: 'challenge' })
        expect(await client.request({ type: 'login_proof', M1: 'cd'.repeat(32) })).toMatchObject({
          code: 'ERR_AUTH_FAILED',
        })
      } finally {
        client.close()
      }
    }
  })
})
