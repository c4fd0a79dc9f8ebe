import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startInProcessServer, type InProcessServer } from '../helpers/in-process-server.js'
import { createTuiClient } from '../../src/cli/tui-client.js'
import { generateTotp } from '../../src/auth/totp.js'
import type { TuiClient } from '../../src/tui/types.js'

// The TUI's network side against the real server: a code is accepted once, and a wrong code is
// retyped without the password (the server ends the connection on it; the client proves the
// password again from the stretched form it kept).

const PASSWORD = 'tui client login 42 quartz'
const STEP = 30_000
let clock = Math.floor(Date.now() / STEP) * STEP + 5_000
let server: InProcessServer
let client: TuiClient

beforeAll(async () => {
  server = await startInProcessServer({ now: () => clock, server: { registration: 'open' } })
  const address = `127.0.0.1:${server.server.port}`
  const ca = await readFile(server.certPath)
  client = createTuiClient(
    address,
    async () => ({ host: '127.0.0.1', port: server.server.port, trust: { kind: 'ca', ca, caFile: server.certPath } }),
    { sessions: { home: join(server.dir, 'home'), server: address } },
  )
  await client.connect(async () => true)
})
afterAll(async () => {
  client?.close()
  await server?.stop()
})

describe('the TUI client at the code step', () => {
  it('after registering, the same code is refused as used, a wrong one asks again, the next one logs in', async () => {
    const enrolment = await client.startRegistration('rita', PASSWORD)
    const used = await generateTotp(enrolment.secret, clock)
    await client.confirmEnrolment(used)

    await client.startLogin('rita', PASSWORD)
    await expect(client.submitOtp(used)).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      message: 'authentication failed',
      hint: expect.stringMatching(
        /^that code was used a moment ago and a code works once: wait for the next one \(in \d+ s\)$/,
      ),
    })

    // The connection is gone; the password is not asked again.
    await client.startLoginAgain()
    const wrong = await generateTotp(enrolment.secret, clock + 3600_000)
    await expect(client.submitOtp(wrong)).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      hint: expect.stringMatching(/^the password was right, the code was not/),
    })

    await client.startLoginAgain()
    clock += STEP
    const result = await client.submitOtp(await generateTotp(enrolment.secret, clock))
    expect(result).toMatchObject({ user: 'rita', role: 'regular_user' })
    expect(result).not.toHaveProperty('token')

    // The kept password is gone once the login is done.
    await expect(client.startLoginAgain()).rejects.toMatchObject({ code: 'ERR_INTERNAL' })
    expect(server.logText()).not.toContain(PASSWORD)
  })

  it('a password that does not prove gets the generic answer and keeps nothing', async () => {
    await expect(client.startLogin('rita', 'not the password at all')).rejects.toMatchObject({
      code: 'ERR_AUTH_FAILED',
      hint: "check the user name, the password, and this machine's clock; codes change every 30 s",
    })
    await expect(client.startLoginAgain()).rejects.toMatchObject({ code: 'ERR_INTERNAL' })
  })
})
