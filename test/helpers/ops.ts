import { request } from 'node:http'
import { vi } from 'vitest'

// The operator listener (src/server/ops.ts) from the outside: plain HTTP requests to it, and
// where a server process put it (its `ops_listening` log line, with --ops-listen HOST:0).

export interface OpsAnswer {
  status: number
  type: string | undefined
  text: string
}

/** One HTTP request to 127.0.0.1:`port` on a connection of its own; `body` makes it carry one. */
export function opsRequest(port: number, path: string, method = 'GET', body?: string): Promise<OpsAnswer> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The port of a server process's operator listener, from its JSON log (written just after `listening`). */
export async function opsPortOf(log: () => string): Promise<number> {
  return vi.waitFor(
    () => {
      const line = log()
        .split('\n')
        .find((l) => l.includes('"event":"ops_listening"'))
      if (!line) throw new Error('no ops_listening line yet')
      return JSON.parse(line).port as number
    },
    { timeout: 30_000, interval: 20 },
  )
}

/** One sample's value in the Prometheus text format (`name{labels} value`), or undefined. */
export function sampleOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
