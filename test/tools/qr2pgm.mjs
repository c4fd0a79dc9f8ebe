#!/usr/bin/env node
// Copied from the project's shared tools (shared/tools/qr2pgm.mjs) so a fresh clone can run the QR test.
// Turns a QR code printed in a terminal (block characters, optional ANSI colours) into a PGM
// image that a real QR decoder (zbarimg) can read:
//   node qr2pgm.mjs IN.txt OUT.pgm [dark|light] && zbarimg -q --raw OUT.pgm
// dark/light: the terminal's theme (default foreground light on dark background, or the reverse).
import { readFileSync, writeFileSync } from 'node:fs'

const [input, output, theme = 'dark'] = process.argv.slice(2)
if (!input || !output) {
  console.error('usage: qr2pgm.mjs IN.txt OUT.pgm [dark|light]')
  process.exit(2)
}
const defaultFg = theme === 'dark' ? 1 : 0 // 1 = white pixel
const defaultBg = 1 - defaultFg
const scale = 8
const quiet = 4

let fg = defaultFg
let bg = defaultBg
const grid = []
for (const line of readFileSync(input, 'utf8').replace(/\r/g, '').split('\n')) {
  const row = []
  grid.push(row)
  for (const token of line.match(/\x1b\[[0-9;]*m|[^\x1b]/gu) ?? []) {
    if (token[0] === '\x1b') {
      for (const p of (token.slice(2, -1) || '0').split(';').map(Number)) {
        if (p === 0) {
          fg = defaultFg
          bg = defaultBg
        } else if (p === 39) fg = defaultFg
        else if (p === 49) bg = defaultBg
        else if (p >= 30 && p <= 37) fg = +(p === 37)
        else if (p >= 40 && p <= 47) bg = +(p === 47)
        else if (p >= 90 && p <= 97) fg = 1
        else if (p >= 100 && p <= 107) bg = 1
      }
      continue
    }
    // each character cell is two vertical pixels: [top, bottom]
    row.push(token === '█' ? [fg, fg] : token === '▀' ? [fg, bg] : token === '▄' ? [bg, fg] : [bg, bg])
  }
}
while (grid.length && !grid.at(-1).length) grid.pop()

const w = Math.max(...grid.map((r) => r.length))
const h = grid.length * 2
const W = (w + 2 * quiet) * scale
const H = (h + 2 * quiet) * scale
const pixels = Buffer.alloc(W * H, defaultBg * 255)
for (let y = 0; y < h; y++) {
  for (let x = 0; x < w; x++) {
    const v = (grid[y >> 1][x] ?? [defaultBg, defaultBg])[y & 1] * 255
    for (let dy = 0; dy < scale; dy++) {
      const start = ((y + quiet) * scale + dy) * W + (x + quiet) * scale
      pixels.fill(v, start, start + scale)
    }
  }
}
writeFileSync(output, Buffer.concat([Buffer.from(`P5 ${W} ${H} 255\n`), pixels]))
