/**
 * The end-of-run summary: a plain text table for stderr, and the same numbers as JSON for
 * `--summary-json FILE`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { causeMessage } from "../Errors.js"
import type { IngestSummary } from "../pipeline/Ingest.js"

const peakRssBytes = () => process.resourceUsage().maxRSS * 1024

const perSecond = (n: number, seconds: number) => (seconds > 0 ? n / seconds : 0)

const rows = (s: IngestSummary): Array<readonly [string, string]> => {
  const mbps = perSecond(s.xmlBytes / 1e6, s.seconds)
  return [
    ["file", s.file],
    ["run", `${s.runId} (${s.state})`],
    ["records", String(s.records)],
    ...Object.entries(s.rowsByTable).map(([t, n]) => [`  rows ${t}`, String(n)] as const),
    ["rejected", String(s.rejected)],
    ...Object.entries(s.rejectsByKind).sort((a, b) => b[1] - a[1]).map(([k, n]) => [`  ${k}`, String(n)] as const),
    ["batches", String(s.batches)],
    ...(s.resumedBatches > 0 ? [["  resumed", `${s.resumedBatches} committed by an earlier attempt`] as const] : []),
    ["retries", String(s.retries)],
    ["XML bytes", `${(s.xmlBytes / 1e6).toFixed(1)} MB`],
    ...(/\.gz$/i.test(s.file) && s.sourceBytes > 0
      ? [["source bytes", `${(s.sourceBytes / 1e6).toFixed(1)} MB`] as const]
      : []),
    ["wall time", `${s.seconds.toFixed(1)} s`],
    ["throughput", `${mbps.toFixed(1)} MB/s, ${Math.round(perSecond(s.records, s.seconds))} records/s`],
    ["peak RSS", `${Math.round(peakRssBytes() / 2 ** 20)} MB`]
  ]
}

export const summaryTable = (summaries: ReadonlyArray<IngestSummary>): string =>
  summaries.map((s) => {
    const lines = rows(s)
    const width = Math.max(...lines.map(([k]) => k.length))
    return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
  }).join("\n\n")

// == JSON

export interface SummaryTotals extends Omit<IngestSummary, "file" | "runId" | "state" | "rowsByTable"> {
  readonly mbPerSecond: number
  readonly recordsPerSecond: number
}

export interface SummaryJson {
  /** "failed" when the load stopped on an error; `error` says which */
  readonly state: "done" | "interrupted" | "failed"
  readonly error?: string
  readonly files: ReadonlyArray<IngestSummary & { readonly mbPerSecond: number; readonly recordsPerSecond: number }>
  readonly totals: SummaryTotals
  readonly peakRssBytes: number
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits))

export const summaryJson = (summaries: ReadonlyArray<IngestSummary>, error?: string): SummaryJson => {
  const sum = (f: (s: IngestSummary) => number) => summaries.reduce((n, s) => n + f(s), 0)
  const rejectsByKind: Record<string, number> = {}
  for (const s of summaries) {
    for (const [k, n] of Object.entries(s.rejectsByKind)) rejectsByKind[k] = (rejectsByKind[k] ?? 0) + n
  }
  const seconds = sum((s) => s.seconds)
  const xmlBytes = sum((s) => s.xmlBytes)
  const records = sum((s) => s.records)
  return {
    state: error !== undefined ? "failed" : summaries.some((s) => s.state === "interrupted") ? "interrupted" : "done",
    ...(error === undefined ? {} : { error }),
    files: summaries.map((s) => ({
      ...s,
      seconds: round(s.seconds),
      mbPerSecond: round(perSecond(s.xmlBytes / 1e6, s.seconds)),
      recordsPerSecond: Math.round(perSecond(s.records, s.seconds))
    })),
    totals: {
      records,
      rowsLoaded: sum((s) => s.rowsLoaded),
      rejected: sum((s) => s.rejected),
      rejectsByKind,
      batches: sum((s) => s.batches),
      resumedBatches: sum((s) => s.resumedBatches),
      retries: sum((s) => s.retries),
      xmlBytes,
      sourceBytes: sum((s) => s.sourceBytes),
      seconds: round(seconds),
      mbPerSecond: round(perSecond(xmlBytes / 1e6, seconds)),
      recordsPerSecond: Math.round(perSecond(records, seconds))
    },
    peakRssBytes: peakRssBytes()
  }
}

export const writeSummaryJson = (path: string, summary: SummaryJson) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(path, JSON.stringify(summary, null, 2) + "\n"))

// == in the CLI

/**
 * Prints the summary on stderr (a table, or one JSON line with `--log-format json`) and
 * writes `--summary-json FILE` when asked. Printed with `--quiet` too.
 */
export const printSummary = (
  summaries: ReadonlyArray<IngestSummary>,
  options: { readonly format: "text" | "json"; readonly jsonFile: Option.Option<string> }
) =>
  Effect.gen(function*() {
    const json = summaryJson(summaries)
    yield* options.format === "json"
      ? Console.error(JSON.stringify({ time: new Date().toISOString(), level: "info", message: "summary", ...json }))
      : Console.error(summaryTable(summaries))
    if (Option.isSome(options.jsonFile)) yield* writeSummaryJson(options.jsonFile.value, json)
  })

/** On failure, `--summary-json FILE` still gets written, with `state: "failed"` and the error. */
export const summaryOnFailure = (jsonFile: Option.Option<string>) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Option.isNone(jsonFile) ? self : self.pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) ? Effect.void : writeSummaryJson(
        jsonFile.value,
        summaryJson([], Cause.isInterruptedOnly(exit.cause) ? "aborted" : causeMessage(Cause.squash(exit.cause)))
      ).pipe(Effect.ignore)
    )
  )
