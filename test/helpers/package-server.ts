import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createServer, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import srpServer from 'secure-remote-password/server.js'
import { verify } from 'otplib'
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js'
import type { PasswordKdf } from '../../src/auth/password-stretch.js'
import { makeCerts, makeTempDir } from './env.js'

export interface PackageAccount {
  username: string
  salt: string
  verifier: string
  kdf: PasswordKdf
  totpSecret: string
}

/**
 * A stand-in server for interop tests that does its SRP with the secure-remote-password
 * package's own server module and none of our server code. `tamperM2` flips a digit of M2,
 * as an impostor that does not hold the verifier would have to; `kdf` replaces the stretching
 * parameters in the challenge, as a downgrading server would.
 */
export async function startPackageServer(
  account: PackageAccount,
  opts: { tamperM2?: boolean; kdf?: PasswordKdf } = {},
) {
  const { dir, remove } = await makeTempDir('pkg-server')
  const { certPath, keyPath } = makeCerts(join(dir, 'certs'))
  const received: string[] = []
  const server = createServer({ cert: await readFile(certPath), key: await readFile(keyPath), minVersion: 'TLSv1.3' })
  server.on('secureConnection', (socket: TLSSocket) => {
    const decoder = new FrameDecoder()
    let b = ''
    let A = ''
    const send = (m: unknown) => socket.write(encodeFrame(m))
    socket.on('data', async (chunk: Buffer) => {
      for (const m of decoder.push(chunk) as any[]) {
        received.push(m.type)
        if (m.type === 'login_start') {
          const eph = srpServer.generateEphemeral(account.verifier)
          b = eph.secret
          A = m.A
          send({ type: 'challenge', salt: account.salt, kdf: opts.kdf ?? account.kdf, B: eph.public })
        } else if (m.type === 'login_proof') {
          try {
            const { proof } = srpServer.deriveSession(b, A, account.salt, account.username, account.verifier, m.M1)
            const M2 = opts.tamperM2 ? (proof[0] === '0' ? '1' : '0') + proof.slice(1) : proof
            send({ type: 'server_proof', M2 })
          } catch {
            send({ type: 'error', code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
            socket.end()
          }
        } else if (m.type === 'login_otp') {
          const result = await verify({ secret: account.totpSecret, token: m.code, epochTolerance: 30 })
          if (result.valid)
            send({
              type: 'welcome',
              user: account.username,
              role: 'regular_user',
              expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
              idleExpiresAt: new Date(Date.now() + 1_800_000).toISOString(),
              sessionId: '0'.repeat(32),
            })
          else send({ type: 'error', code: 'ERR_AUTH_FAILED', message: 'authentication failed' })
        }
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    certPath,
    /** Message types the server received, in order. */
    received,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await remove()
    },
  }
}
