import { useEffect, useRef, useState } from 'react'
import { SecureLoginError } from '../protocol/errors.js'
import type { TuiClient } from './types.js'

export type ConnectionState =
  | { stage: 'connecting' }
  | { stage: 'trust'; fingerprint: string; answer: (trust: boolean) => void }
  | { stage: 'connected' }
  | { stage: 'failed'; error: SecureLoginError }

/** Connects once on mount; when the server is new, waits for the person's answer to the trust prompt. */
export function useConnection(client: TuiClient): ConnectionState {
  const [state, setState] = useState<ConnectionState>({ stage: 'connecting' })
  const started = useRef(false)
  useEffect(() => {
    if (started.current) return
    started.current = true
    const confirm = (fingerprint: string) =>
      new Promise<boolean>((resolve) =>
        setState({
          stage: 'trust',
          fingerprint,
          answer: (trust) => {
            setState({ stage: 'connecting' })
            resolve(trust)
          },
        }),
      )
    client.connect(confirm).then(
      () => setState({ stage: 'connected' }),
      (error: unknown) => setState({ stage: 'failed', error: asSecureLoginError(error) }),
    )
  }, [client])
  useEffect(() => () => client.close(), [client])
  return state
}

export function asSecureLoginError(error: unknown): SecureLoginError {
  if (error instanceof SecureLoginError) return error
  return new SecureLoginError('ERR_INTERNAL', error instanceof Error ? error.message : String(error))
}
