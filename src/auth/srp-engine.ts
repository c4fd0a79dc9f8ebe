import srpServer from 'secure-remote-password/server.js'
import { authFailed } from '../protocol/errors.js'
import {
  finishServerLogin,
  prepareServerSrp,
  startServerLogin,
  type ServerEphemeral,
  type ServerProofInput,
} from './srp-server.js'

// The server's SRP maths, chosen with `securelogin server --srp-engine`: `openssl` (ours, the
// default: src/auth/srp-server.ts) or `package` (the secure-remote-password package's server.js,
// jsbn maths). Both give the same bytes on the wire (test/interop/srp-engine.test.ts); the
// choice exists so that the login benchmark can compare them in one run.

export type SrpEngineName = 'openssl' | 'package'
export const SRP_ENGINES: readonly SrpEngineName[] = ['openssl', 'package']

export interface SrpServerEngine {
  name: SrpEngineName
  /** B for this verifier, and the secret b behind it. */
  start(verifier: string): ServerEphemeral
  /** Checks M1; returns M2 and K. Any failure is ERR_AUTH_FAILED. */
  finish(opts: ServerProofInput): { M2: string; K: string }
  /** Pays any one-off cost now, at start-up, rather than in the first login. */
  prepare(): void
}

const opensslEngine: SrpServerEngine = {
  name: 'openssl',
  start: startServerLogin,
  finish: finishServerLogin,
  prepare: prepareServerSrp,
}

/** The package as shipped: it makes B again inside deriveSession (four exponentiations a login). */
const packageEngine: SrpServerEngine = {
  name: 'package',
  start(verifier) {
    const { public: B, secret: b } = srpServer.generateEphemeral(verifier)
    return { B, b }
  },
  finish({ ephemeral, A, salt, username, verifier, M1 }) {
    try {
      const { key, proof } = srpServer.deriveSession(ephemeral.b, A, salt, username, verifier, M1)
      return { M2: proof, K: key }
    } catch (cause) {
      throw Object.assign(authFailed(), { cause })
    }
  },
  prepare() {},
}

export function srpEngine(name: SrpEngineName = 'openssl'): SrpServerEngine {
  return name === 'package' ? packageEngine : opensslEngine
}
