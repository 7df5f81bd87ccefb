/**
 * The end-of-run summary as a plain text table.
 */
import type { IngestSummary } from "../pipeline/Ingest.js"

const rows = (s: IngestSummary): Array<readonly [string, string]> => {
  const mbps = s.seconds > 0 ? s.xmlBytes / 1e6 / s.seconds : 0
  return [
    ["file", s.file],
    ["run", `${s.runId} (${s.state})`],
    ["records", String(s.records)],
    ...Object.entries(s.rowsByTable).map(([t, n]) => [`  rows ${t}`, String(n)] as const),
    ["rejected", String(s.rejected)],
    ...Object.entries(s.rejectsByKind).sort((a, b) => b[1] - a[1]).map(([k, n]) => [`  ${k}`, String(n)] as const),
    ["batches", String(s.batches)],
    ["retries", String(s.retries)],
    ["XML bytes", `${(s.xmlBytes / 1e6).toFixed(1)} MB`],
    ["wall time", `${s.seconds.toFixed(1)} s`],
    ["throughput", `${mbps.toFixed(1)} MB/s, ${Math.round(s.records / Math.max(s.seconds, 1e-9))} records/s`],
    ["peak RSS", `${Math.round(process.resourceUsage().maxRSS / 1024)} MB`]
  ]
}

export const summaryTable = (summaries: ReadonlyArray<IngestSummary>): string =>
  summaries.map((s) => {
    const lines = rows(s)
    const width = Math.max(...lines.map(([k]) => k.length))
    return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
  }).join("\n\n")
