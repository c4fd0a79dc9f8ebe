import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { BIN } from './env.js'
import { checkJsonOutput } from './json-events.js'
import { noteIssuedSecrets, noteOutput, noteSecret } from './secrets.js'

export interface CliRun {
  child: ChildProcess
  /** Resolves with the next stdout line (or rejects when stdout ends first or on timeout). */
  nextLine(timeoutMs?: number): Promise<string>
  write(line: string): void
  /** Resolves when the process exits. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
  stdout(): string
  stderr(): string
  kill(signal?: NodeJS.Signals): void
}

const running = new Set<ChildProcess>()
let runs = 0

/** Every line a test writes to a CLI's stdin is a password, a code or a passphrase: all secret. */
function noteStdin(text: string): void {
  for (const line of text.split('\n')) noteSecret('stdin line (password or code)', line)
}

/** Starts the real CLI (bin/securelogin) as a child process with piped stdio. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): CliRun {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  running.add(child)
  const name = `securelogin ${args.slice(0, args[0] === 'store' ? 2 : 1).join(' ')} (run ${++runs})`
  let stdout = ''
  let stderr = ''
  const lines: string[] = []
  const waiters: Array<() => void> = []
  let ended = false
  child.stdout!.setEncoding('utf8')
  child.stderr!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.on('data', (chunk: string) => (stderr += chunk))
  createInterface({ input: child.stdout! })
    .on('line', (line) => {
      lines.push(line)
      waiters.splice(0).forEach((wake) => wake())
    })
    .on('close', () => {
      ended = true
      waiters.splice(0).forEach((wake) => wake())
    })
  child.stdin!.on('error', () => {})
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) =>
      child.on('close', (code, signal) => {
        running.delete(child)
        noteIssuedSecrets(name, stdout)
        noteOutput(name, 'stdout', stdout)
        noteOutput(name, 'stderr', stderr)
        checkJsonOutput(name, args, stdout, stderr)
        resolve({ code, signal, stdout, stderr })
      }),
  )
  return {
    child,
    done,
    stdout: () => stdout,
    stderr: () => stderr,
    write: (line) => {
      noteStdin(line)
      child.stdin!.write(`${line}\n`)
    },
    kill: (signal = 'SIGTERM') => child.kill(signal),
    async nextLine(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      while (lines.length === 0) {
        if (ended) throw new Error(`stdout ended; stderr: ${stderr}`)
        if (Date.now() > deadline) throw new Error(`no stdout line within ${timeoutMs} ms; stderr: ${stderr}`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 200)
        })
      }
      return lines.shift()!
    },
  }
}

/** Runs the CLI to completion with the given stdin text. */
export async function runCliToEnd(
  args: string[],
  stdin: string,
  opts: { env?: Record<string, string>; cwd?: string } = {},
) {
  const run = runCli(args, opts)
  noteStdin(stdin)
  run.child.stdin!.end(stdin)
  return run.done
}

/** Stops, by pid, every CLI process a test started and left running. */
export async function killAllCli(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('close', () => resolve())
          process.kill(child.pid!, 'SIGKILL')
        }),
    ),
  )
}
