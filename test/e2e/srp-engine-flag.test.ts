import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAllCli, runCliToEnd } from '../helpers/cli.js'
import { Lab, describeResult, type Account } from '../helpers/accounts.js'
import { requireTool } from '../helpers/tools.js'

// `securelogin server --srp-engine package` (issue 7): the server does its SRP with the
// secure-remote-password package's server.js instead of ours, for the login benchmark's
// comparison; our client registers and logs in to it through the real CLI. That the two engines
// give the same bytes: test/interop/srp-engine.test.ts.

const hasOathtool = requireTool('oathtool')

let lab: Lab
let pat: Account

beforeAll(async () => {
  lab = await Lab.start('srp-engine', { serverArgs: ['--registration', 'open', '--srp-engine', 'package'] })
})

afterAll(async () => {
  await killAllCli()
  await lab?.close()
})

describe.runIf(hasOathtool)('--srp-engine package', () => {
  it('says which engine it runs in the listening line', () => {
    const listening = JSON.parse(lab.server.log().split('\n')[0]!)
    expect(listening).toMatchObject({ event: 'listening', srpEngine: 'package' })
  })

  it('registers and logs in a user through the real CLI, and refuses a wrong password alike', async () => {
    pat = await lab.register('pat')
    const login = await lab.login(pat)
    expect(login.code, describeResult(login)).toBe(0)
    expect(login.json).toMatchObject({ event: 'login', user: 'pat' })
    const wrong = await lab.runIn(
      lab.homeOf('wrong'),
      ['login', '--user', 'pat', '--password-stdin', '--otp', lab.codeFor(pat)],
      'not the password 123\n',
    )
    expect(wrong.code).toBe(1)
    expect(wrong.error).toMatchObject({ code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
  })

  it('the same store then serves the same user on the openssl engine (the default)', async () => {
    await lab.stopServer()
    await lab.startServer(['--registration', 'open'])
    expect(JSON.parse(lab.server.log().split('\n')[0]!)).toMatchObject({ srpEngine: 'openssl' })
    const login = await lab.login(pat)
    expect(login.code, describeResult(login)).toBe(0)
  })

  it('refuses an engine it does not know, as a usage error', async () => {
    const result = await runCliToEnd(['server', '--srp-engine', 'jsbn', '--port', '0'], '')
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/srp-engine/)
  })
})
