#!/usr/bin/env node
// Compiles src/ to dist/, and examples/ to dist/examples/, with the project's TypeScript (a dev dependency).
// `npm install -g .` runs this without dev dependencies: then an existing dist/ is kept, and a
// folder that has never been built gets a clear message instead of "tsc: not found".
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
let tsc
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
} catch {
  if (existsSync(join(root, 'dist', 'cli', 'main.js'))) process.exit(0)
  console.error('securelogin: error: TypeScript is not installed and dist/ is not built (ERR_USAGE)')
  console.error('securelogin: hint: run `npm ci` in this folder first, then `npm install -g .`')
  process.exit(1)
}
// The library and CLI first: the examples import the package by its name (dist/index.d.ts).
for (const project of ['tsconfig.json', 'tsconfig.examples.json']) {
  if (!existsSync(join(root, project))) continue
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, project)], { stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
