#!/usr/bin/env node
// How we know the tests bite (docs/architecture.md): each mutant below is one small deliberate
// bug, and the test files named with it must fail while it is in place. The mutants are applied
// one at a time in a scratch copy of the tree (never in the working tree, so none can be
// committed by mistake), the named test files run there, and a table says which test failed.
// A mutant that no test catches makes the run fail.
//
//   npm run mutants                 every mutant
//   npm run mutants -- totp-window  those whose name contains "totp-window" (several words: any)
//
// Slow (minutes): not part of `npm test`.
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * name: what the bug is; file, from, to: the change (`from` must occur exactly once); tests: the
 * files that must catch it (only: the tests whose name matches, vitest's -t); build: the catching
 * tests run the CLI, so dist/ is rebuilt around it.
 */
const MUTANTS = [
  {
    name: 'store-no-fsync-before-ack',
    why: 'a commit resolves before its fsync',
    file: 'src/store/journal.ts',
    from: 'await file.handle.write(bytes, 0, bytes.length, file.end)\n      await file.handle.sync()',
    to: 'await file.handle.write(bytes, 0, bytes.length, file.end)',
    tests: ['test/store/durability.test.ts'],
  },
  {
    name: 'store-failed-fsync-not-fatal',
    why: 'a failed fsync does not block later writes',
    file: 'src/store/journal.ts',
    from: 'this.#failed = ioError(`cannot write to ${this.path}`, error)\n      await file.handle.truncate(file.end).catch(() => {})\n      throw this.#failed',
    to: 'await file.handle.truncate(file.end).catch(() => {})\n      throw ioError(`cannot write to ${this.path}`, error)',
    tests: ['test/store/durability.test.ts'],
  },
  {
    name: 'store-no-directory-fsync',
    why: 'the directory is not fsynced after a rename (compaction, rekey)',
    file: 'src/store/journal.ts',
    from: 'await rename(this.#tmp, this.#path)\n    await syncDirectory(dirname(this.#path))',
    to: 'await rename(this.#tmp, this.#path)',
    tests: ['test/store/durability.test.ts'],
  },
  {
    name: 'store-no-fsync-before-rename',
    why: 'a compacted or rekeyed file is renamed into place before its fsync',
    file: 'src/store/journal.ts',
    from: 'await this.#flush()\n    await this.#handle.sync()\n    return new FileState',
    to: 'await this.#flush()\n    return new FileState',
    tests: ['test/store/durability.test.ts'],
  },
  {
    name: 'totp-window-login',
    why: 'login accepts codes two steps (60 s) away',
    file: 'src/server/login.ts',
    from: 'verifyTotp({ secret: login.totpSecret.reveal(), code: message.code, nowMs })',
    to: 'verifyTotp({ secret: login.totpSecret.reveal(), code: message.code, nowMs, window: 2 })',
    tests: ['test/conversation/second-factor.test.ts'],
  },
  {
    // Registration, totp_confirm and the login after an admin reset share this one check.
    name: 'totp-window-enrolment',
    why: 'an enrolment code (registration, totp_confirm, enrolment at login) is accepted two steps away',
    file: 'src/server/enrolment.ts',
    from: 'verifyTotp({ secret: enrolment.secret.reveal(), code, nowMs })',
    to: 'verifyTotp({ secret: enrolment.secret.reveal(), code, nowMs, window: 2 })',
    tests: ['test/conversation/second-factor.test.ts'],
  },
  {
    name: 'login-ignores-account-change',
    why: 'a login finishes after a password change, 2FA reset or removal between proof and code',
    file: 'src/server/login.ts',
    from: '    !current ||\n    current.value.totpReset ||\n    current.value.verifier !== login.verifier.reveal() ||\n    current.value.totpSecret !== login.totpSecret.reveal()\n',
    to: '    !current\n',
    tests: ['test/conversation/second-factor.test.ts'],
  },
  {
    name: 'recovery-login-ignores-account-change',
    why: 'a recovery-code login skips the account check',
    file: 'src/server/login.ts',
    from: '        const current = await currentAccount(ctx, login)\n        if (!current) return undefined\n        const stored = await getRecoveryVersioned',
    to: '        const current = (await currentAccount(ctx, login)) ?? (await getUserVersioned(ctx.store, login.username))\n        if (!current) return undefined\n        const stored = await getRecoveryVersioned',
    tests: ['test/conversation/second-factor.test.ts'],
  },
  {
    name: 'srp-accepts-a-multiple-of-N',
    why: 'the server does not refuse A % N == 0 (S = 0 whatever the password)',
    file: 'src/auth/srp-math.ts',
    from: "if (Anum <= 0n || Anum >= N) throw new RangeError('SRP: A must satisfy 0 < A < N')",
    to: "if (Anum >= 2n * N) throw new RangeError('SRP: A must satisfy 0 < A < N')",
    tests: ['test/e2e/limits.test.ts'],
  },
  {
    name: 'srp-proof-length-only',
    why: 'the client proof M1 is compared by length only',
    file: 'src/auth/srp-server.ts',
    from: 'const proven = M1.length === session.M1.length && timingSafeEqual(M1, session.M1)',
    to: 'const proven = M1.length === session.M1.length || timingSafeEqual(M1, session.M1)',
    tests: ['test/e2e/register-login.test.ts'],
    build: true,
  },
  {
    name: 'totp-replay',
    why: 'a TOTP code is accepted again in its own step',
    file: 'src/server/login.ts',
    from: 'if (check.timeStep <= floor)',
    to: 'if (check.timeStep < floor)',
    tests: ['test/e2e/replay.test.ts'],
    build: true,
  },
  {
    name: 'recovery-code-reuse',
    why: 'a used recovery code is not struck out',
    file: 'src/server/login.ts',
    from: 'hashes: stored.value.hashes.map((hash, i) => (i === index ? null : hash))',
    to: 'hashes: stored.value.hashes',
    tests: ['test/conversation/recovery.test.ts'],
  },
  {
    name: 'lockout-one-late',
    why: 'a name is locked one failure later than the limit',
    file: 'src/server/guard.ts',
    from: 'lockAfter: 10,',
    to: 'lockAfter: 11,',
    tests: ['test/conversation/guard.test.ts'],
  },
  {
    name: 'guard-parallel-failures-lost',
    why: 'failures of one name counted on two processes overwrite each other (no compare-and-set)',
    file: 'src/server/guard.ts',
    from: '        : { key: guardKey(username), value: record, expect: read?.version ?? null }',
    to: '        : { key: guardKey(username), value: record }',
    tests: ['test/conversation/shared-store.test.ts'],
  },
  {
    name: 'per-address-cap-off-by-one',
    why: 'one address may hold one connection more than its cap',
    file: 'src/server/server.ts',
    from: 'if (held >= perAddressCap) {',
    to: 'if (held > perAddressCap) {',
    tests: ['test/e2e/limits.test.ts'],
  },
  {
    name: 'record-aad-without-position',
    why: 'a record is sealed without its sequence number (records could be reordered unnoticed)',
    file: 'src/store/format.ts',
    from: 'aad.writeBigUInt64BE(BigInt(seq), RECORD_AAD_LABEL.length + STORE_ID_BYTES)',
    to: 'aad.writeBigUInt64BE(0n, RECORD_AAD_LABEL.length + STORE_ID_BYTES)',
    tests: ['test/store/tamper.test.ts'],
  },
  {
    name: 'leftover-tmp-kept',
    why: 'a file left by a compaction or rekey killed mid-write is never removed',
    file: 'src/store/journal.ts',
    from: 'if (!readOnly) await removeLeftovers(path, opts.report)',
    to: 'if (readOnly && !readOnly) await removeLeftovers(path, opts.report)',
    tests: ['test/e2e/kill.test.ts'],
    only: 'compaction',
    build: true,
  },
]

function run(cmd, args, cwd) {
  return spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', NO_COLOR: '1' },
    maxBuffer: 64 * 1024 * 1024,
  })
}

/** A copy of the tree as it is now (tracked and untracked files that git does not ignore). */
function scratchCopy() {
  const dir = mkdtempSync(join(tmpdir(), 'securelogin-mutants-'))
  // Readable by others, as a checkout is: a tamper test runs the CLI as an unprivileged user.
  chmodSync(dir, 0o755)
  const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root)
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    try {
      cpSync(join(root, file), join(dir, file), { recursive: true })
    } catch (error) {
      if (error.code !== 'ENOENT') throw error // deleted in the working tree
    }
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

function build(dir) {
  const result = run(process.execPath, ['scripts/build.mjs'], dir)
  if (result.status !== 0) throw new Error(`build failed: ${result.stdout}${result.stderr}`)
}

/** The names of the failing tests in a vitest run's output ("FAIL  file > describe > test"). */
function failures(output) {
  const lines = output.replace(/\x1b\[[0-9;]*m/g, '').split('\n')
  return [
    ...new Set(
      lines.filter((line) => /^\s*FAIL\s.* > /.test(line)).map((line) => line.replace(/^\s*FAIL\s+/, '').trim()),
    ),
  ]
}

const checkOnly = process.argv.includes('--check')
const filters = process.argv.slice(2).filter((arg) => arg !== '--check')
const chosen = MUTANTS.filter((m) => filters.length === 0 || filters.some((filter) => m.name.includes(filter)))
if (chosen.length === 0) {
  console.error(`no mutant's name contains ${filters.join(' or ')}`)
  process.exit(2)
}
/** How often a mutant's code occurs in the file now: exactly once, or the mutant is out of date. */
const occurrences = (mutant, text) => text.split(mutant.from).length - 1
if (checkOnly) {
  // `--check`: every mutant still applies to the code as it is, and the tests it names exist
  // (run by the test suite: a test file that moves must take its mutants with it).
  const missing = (m) => m.tests.filter((file) => !existsSync(join(root, file)))
  const stale = chosen.filter(
    (m) => occurrences(m, readFileSync(join(root, m.file), 'utf8')) !== 1 || missing(m).length,
  )
  for (const m of stale)
    console.log(
      missing(m).length
        ? `✗ ${m.name}: no test file ${missing(m).join(', ')}`
        : `✗ ${m.name}: its code does not occur exactly once in ${m.file}`,
    )
  if (stale.length === 0) console.log(`${chosen.length} mutants apply to the code as it is`)
  process.exit(stale.length === 0 ? 0 : 1)
}
const dir = scratchCopy()
let survived = 0
try {
  build(dir)
  // The unmutated tree first: a test file that fails on its own proves nothing about a mutant.
  const files = [...new Set(chosen.flatMap((m) => m.tests))]
  const clean = run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...files], dir)
  if (clean.status !== 0)
    throw new Error(
      `the test files fail without any mutant:\n${(clean.stdout + clean.stderr).split('\n').slice(-60).join('\n')}`,
    )
  console.log(`${files.length} test files pass on the unmutated tree; ${chosen.length} mutants follow\n`)
  for (const mutant of chosen) {
    const path = join(dir, mutant.file)
    const original = readFileSync(path, 'utf8')
    const { from, to } = mutant
    const count = occurrences(mutant, original)
    if (count !== 1) {
      console.log(
        `✗ ${mutant.name}: the code to change occurs ${count} times in ${mutant.file} (the mutant is out of date)`,
      )
      survived += 1
      continue
    }
    writeFileSync(path, original.replace(from, to))
    try {
      if (mutant.build) build(dir)
      const started = Date.now()
      const result = run(
        process.execPath,
        ['node_modules/vitest/vitest.mjs', 'run', ...mutant.tests, ...(mutant.only ? ['-t', mutant.only] : [])],
        dir,
      )
      const failed = failures(result.stdout + result.stderr)
      const seconds = ((Date.now() - started) / 1000).toFixed(0)
      if (result.status === 0) {
        survived += 1
        console.log(`✗ ${mutant.name} (${mutant.why}): SURVIVED ${mutant.tests.join(', ')} (${seconds} s)`)
      } else {
        console.log(`✓ ${mutant.name} (${mutant.why}): caught in ${seconds} s by`)
        for (const name of failed) console.log(`    ${name}`)
      }
    } finally {
      writeFileSync(path, original)
      if (mutant.build) build(dir)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(`\n${chosen.length - survived} of ${chosen.length} mutants caught`)
process.exit(survived === 0 ? 0 : 1)
