/**
 * A hand-written SVG of one end-to-end run: MB/s of XML read (left axis) and the loader's
 * RSS (right axis) over time, with the parser ceilings as dashed reference lines.
 */
import type { Sample } from "./Child.js"
import type { ProgressPoint, Trace } from "./Stages.js"

export interface Reference {
  readonly label: string
  readonly mbPerSecond: number
}

export interface ChartInput {
  readonly title: string
  readonly trace: Trace
  readonly references: ReadonlyArray<Reference>
}

interface Point {
  readonly t: number
  readonly v: number
}

const WIDTH = 960
const HEIGHT = 440
const M = { left: 64, right: 72, top: 48, bottom: 64 }
const RATE_WINDOW = 0.75

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** Rates over a trailing window of at least RATE_WINDOW seconds, from cumulative MB. */
const rates = (points: ReadonlyArray<ProgressPoint>): Array<Point> => {
  const out: Array<Point> = []
  let j = 0
  for (let i = 1; i < points.length; i++) {
    while (j + 1 < i && points[i]!.t - points[j + 1]!.t >= RATE_WINDOW) j++
    const dt = points[i]!.t - points[j]!.t
    if (dt > 0) out.push({ t: points[i]!.t, v: (points[i]!.mb - points[j]!.mb) / dt })
  }
  return out
}

/** MB/s from the ingest's progress lines, else from the bytes the process read. */
export const rateSeries = (trace: Trace): { readonly source: string; readonly points: Array<Point> } => {
  if (trace.progress.length >= 3) {
    return { source: "progress lines (bytes read)", points: rates(trace.progress) }
  }
  const read = trace.samples.filter((s) => s.rchar > 0).map((s) => ({ t: s.t, mb: s.rchar / 1e6 }))
  return { source: "/proc/<pid>/io rchar", points: rates(read) }
}

const rssSeries = (samples: ReadonlyArray<Sample>): Array<Point> => samples.map((s) => ({ t: s.t, v: s.rssKb / 1024 }))

const niceStep = (max: number, ticks: number): number => {
  const raw = max / ticks
  const power = 10 ** Math.floor(Math.log10(raw))
  const f = raw / power
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power
}

const axisMax = (max: number) => {
  const step = niceStep(Math.max(max, 1e-9) * 1.1, 5)
  return { step, max: Math.ceil((max * 1.1) / step) * step }
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1))

export const renderChart = (input: ChartInput): string => {
  const rate = rateSeries(input.trace)
  const rss = rssSeries(input.trace.samples)
  const plotW = WIDTH - M.left - M.right
  const plotH = HEIGHT - M.top - M.bottom
  const tMax = Math.max(input.trace.seconds, ...rate.points.map((p) => p.t), ...rss.map((p) => p.t), 1)
  const x = axisMax(tMax)
  const left = axisMax(Math.max(...rate.points.map((p) => p.v), ...input.references.map((r) => r.mbPerSecond), 1))
  const right = axisMax(Math.max(...rss.map((p) => p.v), 1))
  const px = (t: number) => M.left + (t / x.max) * plotW
  const pyL = (v: number) => M.top + plotH - (v / left.max) * plotH
  const pyR = (v: number) => M.top + plotH - (v / right.max) * plotH
  const path = (points: ReadonlyArray<Point>, py: (v: number) => number) =>
    points.map((p, i) => `${i === 0 ? "M" : "L"}${px(p.t).toFixed(1)},${py(p.v).toFixed(1)}`).join(" ")
  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${escape(input.title)}</text>`
  )
  for (let v = 0; v <= left.max + 1e-9; v += left.step) {
    const y = pyL(v).toFixed(1)
    out.push(
      `<line x1="${M.left}" x2="${M.left + plotW}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#1f77b4">${fmt(v)}</text>`
    )
  }
  for (let v = 0; v <= right.max + 1e-9; v += right.step) {
    out.push(
      `<text x="${M.left + plotW + 6}" y="${pyR(v).toFixed(1)}" dominant-baseline="middle" fill="#d62728">${
        fmt(v)
      }</text>`
    )
  }
  for (let t = 0; t <= x.max + 1e-9; t += x.step) {
    const xx = px(t).toFixed(1)
    out.push(
      `<line x1="${xx}" x2="${xx}" y1="${M.top}" y2="${M.top + plotH}" stroke="#f0f0f0"/>`,
      `<text x="${xx}" y="${M.top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`
    )
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${M.left + plotW / 2}" y="${HEIGHT - 30}" text-anchor="middle">seconds since process start</text>`,
    `<text transform="translate(18 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#1f77b4">` +
      `MB/s of XML</text>`,
    `<text transform="translate(${WIDTH - 16} ${M.top + plotH / 2}) rotate(90)" text-anchor="middle" ` +
      `fill="#d62728">RSS MB</text>`
  )
  for (const r of input.references) {
    const y = pyL(r.mbPerSecond).toFixed(1)
    out.push(
      `<line x1="${M.left}" x2="${M.left + plotW}" y1="${y}" y2="${y}" stroke="#777" stroke-dasharray="6 4"/>`,
      `<text x="${M.left + 6}" y="${(Number(y) - 4).toFixed(1)}" fill="#555">${escape(r.label)} ${
        r.mbPerSecond.toFixed(1)
      } MB/s</text>`
    )
  }
  if (rate.points.length > 0) {
    out.push(`<path d="${path(rate.points, pyL)}" fill="none" stroke="#1f77b4" stroke-width="2"/>`)
  }
  if (rss.length > 0) out.push(`<path d="${path(rss, pyR)}" fill="none" stroke="#d62728" stroke-width="2"/>`)
  const legendY = HEIGHT - 10
  out.push(
    `<line x1="${M.left}" x2="${M.left + 24}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#1f77b4" ` +
      `stroke-width="2"/>`,
    `<text x="${M.left + 30}" y="${legendY}">MB/s (${escape(rate.source)}, ${RATE_WINDOW} s window)</text>`,
    `<line x1="${M.left + 380}" x2="${M.left + 404}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#d62728" ` +
      `stroke-width="2"/>`,
    `<text x="${M.left + 410}" y="${legendY}">RSS (/proc/&lt;pid&gt;/status VmRSS, every 100 ms)</text>`,
    `</svg>`
  )
  return out.join("\n") + "\n"
}
