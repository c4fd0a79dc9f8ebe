// `node bench/chart.mjs FILE.json...`: draws the login benchmark's latency curve (the JSON that
// bench/login.mjs writes) as an SVG beside each file, same base name. Latency against achieved
// logins/s, log scale, p50/p95/p99 measured from each login's scheduled start (open loop, solid)
// and from when it really began (service time, dashed): the gap between the two is the queueing
// that a closed-loop benchmark would hide (coordinated omission).
//
// vega-lite compiles the chart to a vega spec and vega renders it headless, with no canvas and no
// browser. The output is the same bytes for the same input, so a re-run does not churn git: the
// ids vega numbers its clip paths with are reset before each render, and text is measured with
// fixed font metrics rather than whatever canvas package the machine may have.
import { readFile, writeFile } from 'node:fs/promises'
import { realpathSync } from 'node:fs'
import { basename, dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as vega from 'vega'
import * as vl from 'vega-lite'

const PERCENTILES = ['p50', 'p95', 'p99']
// Blue, orange and dark red differ in hue and in lightness, so they stay apart in grey and for
// the common colour blindnesses.
const COLOURS = { p50: '#0072B2', p95: '#E69F00', p99: '#B2182B' }
const SERVICE = ' (service time)'
// Legend order: the highest percentile first, as the lines stack, each beside its service time.
const SERIES = [...PERCENTILES].reverse().flatMap((p) => [p, p + SERVICE])
const FONT = 'Helvetica, Arial, sans-serif'
const WIDTH = 720
const HEIGHT = 420
const PADDING = 12

/** A finite number, or undefined for null, NaN, a string or a missing value. */
function finite(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`
}

/** "2026-12-05 15:30 UTC" from an ISO date, or the text as it is when it is not one. */
function when(date) {
  if (typeof date !== 'string') return undefined
  const parsed = new Date(date)
  return Number.isNaN(parsed.getTime()) ? date : `${parsed.toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

/**
 * The rows the chart plots: one per point, kind (open loop, service time) and percentile whose
 * latency is a positive finite number at a finite achieved rate. A point without logins, or with a
 * missing or NaN value (JSON writes NaN as null), is left out rather than drawn at 0, which a log
 * scale cannot show.
 */
function rows(points) {
  const out = []
  points.forEach((point, order) => {
    const achieved = finite(point?.achieved)
    if (achieved === undefined || achieved < 0) return
    if (point.logins !== undefined && !(finite(point.logins) > 0)) return
    for (const [key, suffix] of [
      ['openLoop', ''],
      ['service', SERVICE],
    ]) {
      for (const percentile of PERCENTILES) {
        const ms = finite(point[key]?.[percentile])
        if (ms === undefined || ms <= 0) continue
        out.push({ order, achieved, ms, kind: key, series: percentile + suffix })
      }
    }
  })
  return out
}

/** The vega-lite spec of one curve: the object that bench/login.mjs writes, parsed. */
export function curveSpec(curve) {
  if (!curve || typeof curve !== 'object' || !Array.isArray(curve.points)) {
    throw new TypeError('a login curve needs a points array')
  }
  const data = rows(curve.points)
  const peak = finite(curve.peakRate)
  const workers = finite(curve.workers)
  const title =
    `Login latency against throughput — ${curve.engine ?? 'unknown'} engine, ${curve.store ?? 'unknown'} store` +
    (workers === undefined ? '' : `, ${plural(workers, 'process', 'processes')}`)
  const facts = [
    curve.commit ? `commit ${curve.commit}` : undefined,
    when(curve.date),
    peak === undefined ? undefined : `closed-loop peak ${peak.toFixed(1)} logins/s`,
  ].filter(Boolean)
  const subtitle = [
    facts.join(' · '),
    typeof curve.machine === 'string' ? curve.machine : undefined,
    "solid: latency from each login's scheduled start; dashed: from when it really began (service time)",
  ].filter(Boolean)

  // One scale per channel over all six series, shared by both line layers, so the legend is one
  // list in which a percentile and its service time have the same colour.
  const series = (channel, range) => ({
    field: 'series',
    type: 'nominal',
    scale: { domain: SERIES, range: SERIES.map(range) },
    ...(channel === 'color' ? { legend: { title: null, orient: 'top-left', symbolType: 'stroke' } } : {}),
  })
  // Domains of its own, so a curve with no point left still draws (empty) axes, the x axis reaches
  // the peak, and the log axis spans the data with a margin, not whole decades of empty space.
  const rates = data.map((row) => row.achieved).concat(peak ?? [])
  const latencies = data.map((row) => row.ms)
  const xMax = Math.max(...rates, 0) || 100
  const yDomain = latencies.length ? [Math.min(...latencies) / 1.4, Math.max(...latencies) * 1.4] : [1, 100]
  const lines = {
    x: {
      field: 'achieved',
      type: 'quantitative',
      title: 'logins/s (achieved)',
      scale: { domain: [0, xMax * 1.04], nice: false },
      axis: { tickCount: 8 },
    },
    y: {
      field: 'ms',
      type: 'quantitative',
      title: 'latency (ms)',
      scale: { type: 'log', domain: yDomain, nice: false },
    },
    // The offered load's order, so a curve that bends back past the peak is drawn as it ran.
    order: { field: 'order', type: 'quantitative' },
    color: series('color', (s) => COLOURS[s.slice(0, 3)]),
    strokeDash: series('strokeDash', (s) => (s.endsWith(SERVICE) ? [5, 3] : [1, 0])),
  }
  const layers = [
    {
      transform: [{ filter: "datum.kind === 'service'" }],
      mark: { type: 'line', clip: true, strokeWidth: 1.25 },
      encoding: lines,
    },
    {
      transform: [{ filter: "datum.kind === 'openLoop'" }],
      mark: { type: 'line', clip: true, strokeWidth: 2.25, point: { filled: true, size: 36 } },
      encoding: lines,
    },
  ]
  if (peak !== undefined && peak > 0) {
    // The knee is easier to place against a fixed mark: the rate a server would be run at.
    const half = { data: { values: [{ rate: peak / 2 }] } }
    const x = { field: 'rate', type: 'quantitative' }
    layers.unshift(
      { ...half, mark: { type: 'rule', color: '#888', strokeWidth: 1 }, encoding: { x } },
      {
        ...half,
        mark: { type: 'text', text: 'half peak', align: 'left', baseline: 'top', dx: 4, dy: 4, color: '#555' },
        encoding: { x, y: { value: 0 } },
      },
    )
  }

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: WIDTH,
    height: HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    padding: PADDING,
    background: 'white',
    // Cut at the chart's width: a long machine description would otherwise squeeze the plot.
    title: { text: title, subtitle, anchor: 'start', offset: 14, limit: WIDTH - 2 * PADDING },
    data: { values: data },
    layer: layers,
    config: {
      font: FONT,
      title: { fontSize: 16, subtitleFontSize: 12, subtitleColor: '#444', subtitlePadding: 6 },
      axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', titleColor: '#222' },
      legend: { labelFontSize: 12, symbolStrokeWidth: 2, fillColor: 'rgba(255,255,255,0.85)', padding: 6 },
      text: { fontSize: 12 },
    },
  }
}

// Helvetica's advance widths in thousandths of an em, for the printable ASCII characters from the
// space on; other characters count as a digit. Vega without a canvas guesses 0.8 em for every
// character, which makes a title half again as wide as it is and squeezes the plot to fit it.
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
  556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
  260, 334, 584,
]
const WIDE = { '—': 1000, '–': 556, '·': 278, '…': 1000 }

/**
 * Vega's text measure, as it calls it: for one line of an item, or for its text when `line` is
 * not given. Vega truncates a line that is wider than the item's limit with an ellipsis, asking
 * this function for widths as it cuts, so a line is never wider than the limit here either.
 */
function textWidth(item, line) {
  const value = line ?? item.text
  if (Array.isArray(value)) return Math.max(0, ...value.map((each) => textWidth(item, each)))
  const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11
  let em = 0
  for (const char of String(value ?? '').trim()) {
    const code = char.codePointAt(0)
    em += code >= 32 && code <= 126 ? HELVETICA[code - 32] : (WIDE[char] ?? 556)
  }
  const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600
  const width = (em / 1000) * size * (bold ? 1.07 : 1)
  return item.limit > 0 ? Math.min(width, item.limit) : width
}

// Renders one at a time: the text measure and the id counter are vega's globals, so two renders
// interleaved at their awaits would see each other's.
let queue = Promise.resolve()

/** The curve drawn as an SVG document (a string), the same for the same curve. */
export async function renderCurveSvg(curve) {
  const spec = vl.compile(curveSpec(curve)).spec
  const turn = queue.then(() => render(spec))
  queue = turn.catch(() => {})
  return turn
}

async function render(spec) {
  const measure = vega.textMetrics.width
  vega.textMetrics.width = textWidth
  vega.resetSVGDefIds()
  const view = new vega.View(vega.parse(spec), { renderer: 'none', logLevel: vega.Warn })
  try {
    const svg = await view.toSVG()
    return svg.endsWith('\n') ? svg : svg + '\n'
  } finally {
    view.finalize()
    vega.textMetrics.width = measure
  }
}

/** Reads a curve's JSON file, writes its SVG beside it (same base name) and returns that path. */
export async function writeCurveSvg(jsonPath) {
  const text = await readFile(jsonPath, 'utf8').catch((error) => {
    throw new Error(`${jsonPath}: cannot read: ${error.message}`, { cause: error })
  })
  let curve
  try {
    curve = JSON.parse(text)
  } catch (error) {
    throw new Error(`${jsonPath}: not JSON: ${error.message}`, { cause: error })
  }
  if (!curve || typeof curve !== 'object' || !Array.isArray(curve.points)) {
    throw new Error(`${jsonPath}: not a login curve: no points array`)
  }
  const svgPath = join(dirname(jsonPath), basename(jsonPath, extname(jsonPath)) + '.svg')
  await writeFile(svgPath, await renderCurveSvg(curve))
  return svgPath
}

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node bench/chart.mjs FILE.json...\n  writes FILE.svg beside each login curve')
    return 2
  }
  let status = 0
  for (const file of files) {
    try {
      console.log(await writeCurveSvg(file))
    } catch (error) {
      console.error(error.message)
      status = 1
    }
  }
  return status
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2))
}
