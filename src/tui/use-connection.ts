import { useEffect, useRef, useState } from 'react'
import { SecureLoginError } from '../protocol/errors.js'
import type { TuiClient } from './types.js'

export type ConnectionState =
  | { stage: 'connecting' }
  | { stage: 'trust'; fingerprint: string; answer: (trust: boolean) => void }
  | { stage: 'connected' }
  | { stage: 'failed'; error: SecureLoginError }

/**
 * Connects once on mount; when the server is new, waits for the person's answer to the trust
 * prompt. A screen that goes away with the question open (Ctrl-C) answers no, so the connection
 * waiting on it closes instead of holding the process until the server drops it.
 */
export function useConnection(client: TuiClient): ConnectionState {
  const [state, setState] = useState<ConnectionState>({ stage: 'connecting' })
  const started = useRef(false)
  const pending = useRef<(trust: boolean) => void>(undefined)
  useEffect(() => {
    if (started.current) return
    started.current = true
    const confirm = (fingerprint: string) =>
      new Promise<boolean>((resolve) => {
        pending.current = (trust) => {
          pending.current = undefined
          resolve(trust)
        }
        setState({
          stage: 'trust',
          fingerprint,
          answer: (trust) => {
            setState({ stage: 'connecting' })
            pending.current?.(trust)
          },
        })
      })
    client.connect(confirm).then(
      () => setState({ stage: 'connected' }),
      (error: unknown) => setState({ stage: 'failed', error: asSecureLoginError(error) }),
    )
  }, [client])
  useEffect(
    () => () => {
      pending.current?.(false)
      client.close()
    },
    [client],
  )
  return state
}

/**
 * Any failure as the TUI shows it. A connection that closed under a step (the server stopped or
 * restarted) gets a hint: the step cannot go on, and the person should know to start over.
 */
export function asSecureLoginError(error: unknown): SecureLoginError {
  if (!(error instanceof SecureLoginError))
    return new SecureLoginError('ERR_INTERNAL', error instanceof Error ? error.message : String(error))
  if (error.code === 'ERR_CONNECT' && !error.hint && / closed$/.test(error.message)) {
    return new SecureLoginError(error.code, error.message, {
      hint: 'the server went away (stopped or restarted?) or the network dropped: once it is back, start over',
      cause: error,
    })
  }
  return error
}
