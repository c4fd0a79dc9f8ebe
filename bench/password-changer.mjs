// The client of the login benchmark's half+kdf phase (bench/login.mjs), as a process of its own
// at the idle CPU priority (`chrt --idle 0`, SCHED_IDLE; --kdf-client low is nice 19): it logs in
// as each of its users in turn and changes the password, through the real client library, whose
// scrypt stretches (two a change, 64 MiB each) are the KDF work.
// A real user's stretch runs on the user's machine; on the benchmark's one machine it runs at the
// idle priority, taking only CPU nobody else wants, so that what the phase shows is what password
// changes cost the server (the commit of the new verifier, the sessions revoked, the audit entry),
// not the two cores being shared with a third party. `npm run bench -- login --kdf-client normal`
// runs it beside the server at the same priority instead.
// Messages: {port, ca, users} starts (each user {name, totp, password}: the password it has now);
// 'stop' ends it after the current change, and it answers {changes, passwords} (each changed
// user's new password, for the next phase that changes it again) and exits.
import { ServerConnection } from '../dist/client/connection.js'
import { authenticate, submitOtp } from '../dist/client/login.js'
import { changePassword } from '../dist/client/calls.js'
import { generateTotp } from '../dist/auth/totp.js'

let stopped = false
process.on('message', async (message) => {
  if (message === 'stop') {
    stopped = true
    return
  }
  const { port, ca, users } = message
  const trust = { kind: 'ca', ca: Buffer.from(ca, 'base64'), caFile: 'bench' }
  let changes = 0
  let error
  const passwords = {}
  try {
    for (const user of users) {
      if (stopped) break
      const conn = await ServerConnection.open({ host: '127.0.0.1', port, trust })
      try {
        await authenticate(conn, user.name, user.password)
        await submitOtp(conn, await generateTotp(user.totp, Date.now()))
        const next = `${user.password.replace(/ #\d+$/, '')} #${Date.now()}`
        await changePassword(conn, user.name, next)
        passwords[user.name] = next
        changes++
      } finally {
        conn.close()
      }
    }
  } catch (failure) {
    error = String(failure?.message ?? failure).slice(0, 200)
  }
  // Ran out of users (or failed) before the phase ended: wait for the stop, then answer.
  while (!stopped) await new Promise((resolve) => setTimeout(resolve, 20))
  process.send({ changes, passwords, error }, () => process.exit(0))
})
