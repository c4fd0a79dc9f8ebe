import { realpathSync } from 'node:fs'
import { basename, delimiter, isAbsolute, join, relative } from 'node:path'

// Commands this program prints for the person to paste (hints, the bootstrap line, the invite
// screen) must work when pasted: "securelogin login" is "command not found" after the README's
// quick start, where the program is ./bin/securelogin or npx securelogin. So they are printed in
// the form this process was started by, as git prints "git" and npx-run tools print "npx ...".

let cached: string | undefined

/** How this process was invoked, as a command to type: `npx securelogin`, a path, or `securelogin`. */
export function invokedAs(script = process.argv[1], cwd = process.cwd(), path = process.env['PATH'] ?? ''): string {
  if (script === process.argv[1] && cached !== undefined) return cached
  const form = invocation(script, cwd, path)
  if (script === process.argv[1]) cached = form
  return form
}

function invocation(script: string | undefined, cwd: string, pathVar: string): string {
  if (script === undefined) return 'securelogin'
  // npx runs a bin from a project's node_modules/.bin, or from a copy in its cache (_npx). The
  // environment says nothing reliable: npm_command=exec is inherited by whatever npx starts.
  if (/[/\\](node_modules[/\\]\.bin|_npx)[/\\]/.test(script)) return 'npx securelogin'
  if (basename(script) === 'securelogin' && onPath(script, pathVar)) return 'securelogin'
  const path = relative(cwd, script)
  if (path === '' || path.startsWith('..') || isAbsolute(path)) return script
  return `./${path}`
}

/** Whether `securelogin` on PATH is this very file (a global install, or npm link). */
function onPath(script: string, path: string): boolean {
  let self: string
  try {
    self = realpathSync(script)
  } catch {
    return false
  }
  return path.split(delimiter).some((dir) => {
    try {
      return dir !== '' && realpathSync(join(dir, 'securelogin')) === self
    } catch {
      return false
    }
  })
}

/** "securelogin" followed by one of its commands, at the start of a word. */
const COMMANDS = [
  'register',
  'login',
  'logout',
  'whoami',
  'sessions',
  'passwd',
  'reset-2fa',
  'recovery-codes',
  'home',
  'admin',
  'store',
  'server',
  'servers',
  'token',
  'jwks',
  'verify-token',
]
const COMMAND = new RegExp(`(^|[\\s\`'"(:])securelogin (?=(?:${COMMANDS.join('|')})\\b)`, 'g')

/** `text` with each printed "securelogin COMMAND" in the form this process was invoked by. */
export function asInvoked(text: string, as = invokedAs()): string {
  if (as === 'securelogin') return text
  return text.replace(COMMAND, (_, before: string) => `${before}${as} `)
}
