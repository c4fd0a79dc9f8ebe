#!/usr/bin/env node
// The checks around the tests, side by side. `node scripts/checks.mjs test` is `npm test`: the
// tests (vitest, its output live; arguments go to it) and, for the whole suite, the type check of
// src, test and bench beside them (npm's pretest has built dist/, which the end-to-end tests run).
// `node scripts/checks.mjs lint` is `npm run lint` (prettier, ESLint, the import-cycle check),
// which .ci/run runs before the tests. Run together, they use both cores: the type check is one
// process on one core, and the suite leaves room while its files wait. A check's output is held
// and printed whole, under its name, when it fails, so that two failures do not interleave.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

const [set = 'test', ...rest] = process.argv.slice(2)
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs')
const SETS = {
  test: [
    ...(rest.length === 0 ? [{ name: 'typecheck', command: npm, args: ['run', '--silent', 'typecheck'] }] : []),
    { name: 'tests', command: process.execPath, args: [vitest, 'run', ...rest], live: true },
  ],
  lint: [
    { name: 'prettier', command: npm, args: ['exec', '--', 'prettier', '--check', '--log-level', 'warn', '.'] },
    { name: 'eslint', command: npm, args: ['exec', '--', 'eslint', '.'] },
    { name: 'cycles', command: npm, args: ['run', '--silent', 'cycles'] },
  ],
}
const CHECKS = SETS[set]
if (!CHECKS) {
  console.error(`checks: no set ${set} (${Object.keys(SETS).join(', ')})`)
  process.exit(2)
}

function run({ name, command, args, live = false }) {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: ['ignore', live ? 'inherit' : 'pipe', live ? 'inherit' : 'pipe'],
    })
    let output = ''
    child.stdout?.on('data', (chunk) => (output += chunk))
    child.stderr?.on('data', (chunk) => (output += chunk))
    child.on('error', (error) => resolve({ name, ok: false, output: `${output}${error.message}\n`, ms: 0 }))
    child.on('close', (code, signal) =>
      resolve({
        name,
        ok: code === 0,
        output: signal ? `${output}killed by ${signal}\n` : output,
        ms: Date.now() - started,
      }),
    )
  })
}

const results = await Promise.all(CHECKS.map(run))
for (const { name, ok, output, ms } of results) {
  // A passing check's chatter (madge's file count, say) is noise; a failing one's is the reason.
  if (!ok && output.trim()) process.stdout.write(`--- ${name}\n${output.endsWith('\n') ? output : `${output}\n`}`)
  process.stdout.write(`${ok ? 'ok' : 'FAILED'}: ${name} (${(ms / 1000).toFixed(1)} s)\n`)
}
if (results.some((result) => !result.ok)) process.exit(1)
