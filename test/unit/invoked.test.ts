import { mkdtemp, mkdir, symlink, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { asInvoked, invokedAs } from '../../src/base/invoked.js'

// Printed commands work when pasted (issue 19, item 8): in the form the program was started by.

let dir: string
let bin: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'invoked-'))
  bin = join(dir, 'repo', 'bin', 'securelogin')
  await mkdir(join(dir, 'repo', 'bin'), { recursive: true })
  await writeFile(bin, '#!/usr/bin/env node\n')
  await mkdir(join(dir, 'global'), { recursive: true })
  await symlink(bin, join(dir, 'global', 'securelogin'))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

describe('invokedAs', () => {
  it('by npx, from a project or from its cache: npx securelogin', () => {
    expect(invokedAs(join(dir, 'repo', 'node_modules', '.bin', 'securelogin'), dir, '')).toBe('npx securelogin')
    expect(invokedAs('/root/.npm/_npx/5eec080bf95e7d97/node_modules/.bin/securelogin', dir, '')).toBe('npx securelogin')
  })

  it('by a path: relative below the working directory, whole elsewhere', () => {
    expect(invokedAs(bin, join(dir, 'repo'), '')).toBe('./bin/securelogin')
    expect(invokedAs(bin, join(dir, 'global'), '')).toBe(bin)
  })

  it('when securelogin on PATH is this very file (npm link, a global install): securelogin', () => {
    expect(invokedAs(bin, join(dir, 'repo'), join(dir, 'global'))).toBe('securelogin')
  })
})

describe('asInvoked', () => {
  it('rewrites each printed command, and nothing else', () => {
    expect(asInvoked('log in first: securelogin login', './bin/securelogin')).toBe(
      'log in first: ./bin/securelogin login',
    )
    expect(asInvoked('run `securelogin admin invite`, then securelogin register --invite T', 'npx securelogin')).toBe(
      'run `npx securelogin admin invite`, then npx securelogin register --invite T',
    )
    expect(asInvoked('the securelogin project, securelogin: error', 'npx securelogin')).toBe(
      'the securelogin project, securelogin: error',
    )
  })
})
