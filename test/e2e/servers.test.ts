import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Lab, parseResult, type Account } from '../helpers/accounts.js'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'

// The servers a client trusts (issue 19, item 6), through the real CLI against the real server
// process: a login with --ca is remembered, so later commands need no --ca; `securelogin servers`
// lists, forgets and trusts; an unknown or changed server's error says which command gets out.

let lab: Lab
let alice: Account

beforeAll(async () => {
  lab = await Lab.start('servers')
  alice = await lab.registerDirect('alice', { invite: await lab.bootstrapToken() })
})
afterAll(async () => {
  await lab?.close()
  await killAllCli()
})

/** The CLI as alice's client, without --ca: trust comes from her known_servers file alone. */
async function run(...args: string[]) {
  return parseResult(await runCliToEnd([...args, '--json'], '', { env: { SECURELOGIN_HOME: alice.home } }))
}
const server = () => `127.0.0.1:${lab.port}`

describe('securelogin servers', () => {
  it('a login with --ca is remembered: servers lists it, and whoami needs no --ca', async () => {
    expect((await lab.login(alice)).code).toBe(0)
    const listed = await run('servers')
    expect(listed.json).toEqual({
      event: 'known_servers',
      file: expect.stringMatching(/known_servers$/),
      servers: [{ server: server(), fingerprint: lab.server.fingerprint }],
    })
    expect((await run('whoami', '--server', server())).json).toMatchObject({ event: 'whoami', user: 'alice' })
  })

  it('forget: the next connection is refused, and the hint names servers trust', async () => {
    expect((await run('servers', 'forget', server())).json).toEqual({
      event: 'server_forgotten',
      server: server(),
      removed: 1,
    })
    const refused = await run('whoami', '--server', server())
    expect(refused.code).toBe(1)
    expect(refused.error).toMatchObject({
      code: 'ERR_TLS_UNTRUSTED',
      hint: expect.stringContaining(`securelogin servers trust ${server()} --fingerprint`),
    })
  })

  it('trust by fingerprint: whoami works again; a wrong one is a changed certificate whose hint is servers forget', async () => {
    expect((await run('servers', 'trust', server(), '--fingerprint', lab.server.fingerprint)).json).toEqual({
      event: 'server_trusted',
      server: server(),
      fingerprint: lab.server.fingerprint,
      replaced: 0,
    })
    expect((await run('whoami', '--server', server())).json).toMatchObject({ user: 'alice' })
    const wrong = 'AB:'.repeat(31) + 'AB'
    expect((await run('servers', 'trust', server(), '--fingerprint', wrong.toLowerCase())).json).toMatchObject({
      fingerprint: wrong,
      replaced: 1,
    })
    const changed = await run('whoami', '--server', server())
    expect(changed.error).toMatchObject({
      code: 'ERR_TLS_CHANGED',
      hint: expect.stringContaining(`securelogin servers forget ${server()}`),
    })
    // By the certificate file: the same as the fingerprint the server printed.
    expect((await run('servers', 'trust', server(), '--ca', lab.certPath)).json).toMatchObject({
      fingerprint: lab.server.fingerprint,
      replaced: 1,
    })
  })

  it('trust needs exactly one of --ca and --fingerprint, and a well-formed one (exit 2)', async () => {
    for (const args of [
      ['servers', 'trust', server()],
      ['servers', 'trust', server(), '--fingerprint', 'abc'],
      ['servers', 'trust', server(), '--fingerprint', lab.server.fingerprint, '--ca', lab.certPath],
    ]) {
      const result = await run(...args)
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.error).toMatchObject({ code: 'ERR_USAGE' })
    }
  })
})
