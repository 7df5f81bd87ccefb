/**
 * `xml2pg finalize` and `xml2pg status`, and the pieces a combined `run` command reuses.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { finalize, type FinalizeOptions, type FinalizeReport } from "../db/Finalize.js"
import { status, type StatusReport } from "../db/Status.js"
import { Xml2Pg } from "../Xml2Pg.js"
import { connection, withDatabase } from "./Database.js"

// == finalize

/**
 * The finalize flags, for `finalize` and for commands that end with a finalize.
 */
export const finalizeOptions = {
  keepStaging: Options.boolean("keep-staging").pipe(
    Options.withDescription("leave the consumed rows in the staging tables")
  ),
  wait: Options.boolean("wait").pipe(
    Options.withDescription("wait for a finalize or ingest running on the schema instead of failing at once")
  ),
  workMem: Options.text("work-mem").pipe(
    Options.withDescription("PostgreSQL work_mem for the finalize transaction (default 512MB)"),
    Options.optional
  ),
  maintenanceWorkMem: Options.text("maintenance-work-mem").pipe(
    Options.withDescription("PostgreSQL maintenance_work_mem for building keys and indexes (default 1GB)"),
    Options.optional
  )
}

export interface FinalizeFlags {
  readonly keepStaging: boolean
  readonly wait: boolean
  readonly workMem: Option.Option<string>
  readonly maintenanceWorkMem: Option.Option<string>
}

/** Connections finalize needs from the pool: the lock, the transaction, one spare to cancel a wait. */
export const finalizeConnections = 3

const numeric = /^(-|-?\d[\d.]*( \(.*\))?)$/

/** A plain text table; columns holding only numbers are right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const right = header.map((_, i) => rows.length > 0 && rows.every((r) => numeric.test(r[i]!)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

/**
 * The finalize report as plain text.
 */
export const finalizeTable = (r: FinalizeReport): string => {
  const head = `finalize ${r.schema}: ${r.mode}, runs [${r.runs.join(", ")}], ${seconds(r.millis)}` +
    (r.mode === "nothing-to-do" ? "" : r.stagingRemoved ? ", staging rows removed" : ", staging rows kept")
  if (r.mode === "nothing-to-do") return `${head}: staging is empty`
  const counts = table(
    ["table", "staged", "duplicates", "orphans", "inserted", "updated", "unchanged"],
    r.tables.map((t) => [
      t.table,
      String(t.staged),
      String(t.duplicates),
      t.orphansKept > 0 ? `${t.orphans} (${t.orphansKept} kept)` : String(t.orphans),
      String(t.inserted),
      String(t.updated),
      String(t.unchanged)
    ])
  )
  const steps = table(["step", "ms"], r.steps.map((s) => [s.step, String(s.millis)]))
  return `${head}\n\n${counts}\n\n${steps}`
}

/**
 * Finalizes `schema` and prints what it did to stderr.
 */
export const runFinalize = (schema: string, flags: FinalizeFlags) =>
  Effect.gen(function*() {
    const loader = yield* Xml2Pg
    const options: FinalizeOptions = {
      keepStaging: flags.keepStaging,
      wait: flags.wait,
      ...Option.match(flags.workMem, { onNone: () => ({}), onSome: (workMem) => ({ workMem }) }),
      ...Option.match(flags.maintenanceWorkMem, {
        onNone: () => ({}),
        onSome: (maintenanceWorkMem) => ({ maintenanceWorkMem })
      })
    }
    const report = yield* finalize(loader.doc, schema, options)
    yield* Console.error(finalizeTable(report))
    const orphans = report.tables.reduce((n, t) => n + t.orphans, 0)
    if (orphans > 0) {
      yield* Effect.logWarning(`${orphans} orphan records were not loaded; see ${schema}.xml2pg_orphan`)
    }
    return report
  })

export const finalizeCommand = withDatabase(
  Command.make("finalize", { ...connection, ...finalizeOptions }, (o) => runFinalize(o.schema, o)).pipe(
    Command.withDescription(
      "Move staging rows into the final tables: last occurrence wins, runs merge by upsert, " +
        "keys and indexes are built after the first load."
    )
  ),
  () => finalizeConnections
)

// == status

const date = (d: Date | null) => (d === null ? "-" : d.toISOString().replace("T", " ").slice(0, 19))

/**
 * The status report as plain text.
 */
export const statusTable = (s: StatusReport): string => {
  const counts = table(
    ["table", "staging", "final", "orphans"],
    s.final.map((f, i) => [
      f.table,
      String(s.staging[i]?.rows ?? 0),
      String(f.rows),
      String(s.orphans.find((o) => o.table === f.table)?.rows ?? "-")
    ])
  )
  const runs = s.runs.length === 0 ? "no runs yet" : table(
    ["run", "file", "state", "started", "finished", "loaded", "rejected", "MB/s", "staged"],
    s.runs.map((r) => [
      String(r.runId),
      r.file,
      r.state,
      date(r.startedAt),
      date(r.finishedAt),
      String(r.rowsLoaded),
      String(r.rejected),
      r.mbPerSecond === null ? "-" : r.mbPerSecond.toFixed(1),
      String(r.staged)
    ])
  )
  const last = s.lastFinalize === null
    ? "last finalize: never"
    : `last finalize: ${date(s.lastFinalize.finishedAt)} (${s.lastFinalize.mode}, runs [${
      s.lastFinalize.runs.join(", ")
    }])`
  const pending = s.finalizePending
    ? `finalize pending: yes, runs [${s.pendingRuns.join(", ")}] are in staging`
    : "finalize pending: no"
  return [`schema ${s.schema}`, counts, runs, last, pending].join("\n\n")
}

export const statusCommand = withDatabase(
  Command.make("status", {
    ...connection,
    json: Options.boolean("json").pipe(Options.withDescription("print the status as JSON")),
    runs: Options.integer("runs").pipe(Options.withDescription("how many recent runs to list"), Options.withDefault(10))
  }, (o) =>
    Effect.gen(function*() {
      const loader = yield* Xml2Pg
      const report = yield* status(loader.doc, o.schema, { runs: o.runs })
      yield* Console.log(o.json ? JSON.stringify(report, null, 2) : statusTable(report))
    })).pipe(
      Command.withDescription("Row counts in staging and final tables, recent runs, and whether finalize is pending.")
    )
)
