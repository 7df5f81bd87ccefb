/**
 * What is in a schema: rows in the staging and final tables, the recent runs, orphans,
 * the last finalize and whether staging holds runs no finalize has consumed yet.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { type DbError, toDbError } from "../Errors.js"
import { type DocumentShape, recordShapes } from "../shape/Shape.js"
import { FinalizeTables } from "./Finalize.js"
import { qualify } from "./Identifiers.js"
import { Ledger } from "./Staging.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface TableCount {
  readonly table: string
  readonly rows: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RunStatus {
  readonly runId: number
  readonly file: string
  readonly state: string
  readonly startedAt: Date
  readonly finishedAt: Date | null
  readonly records: number
  readonly rowsLoaded: number
  readonly rejected: number
  readonly xmlBytes: number
  /** XML megabytes (10^6 bytes) per second of wall time, once the run has finished */
  readonly mbPerSecond: number | null
  /** rows of this run still in the staging tables */
  readonly staged: number
  readonly message: string | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LastFinalize {
  readonly finalizeId: number
  readonly startedAt: Date
  readonly finishedAt: Date
  readonly mode: string
  readonly runs: ReadonlyArray<number>
}

/**
 * Row counts in staging, final and orphan tables, recent runs, the last finalize, and whether a finalize is pending.
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusReport {
  readonly schema: string
  readonly staging: ReadonlyArray<TableCount>
  readonly final: ReadonlyArray<TableCount>
  /** orphans recorded by finalize, per child table */
  readonly orphans: ReadonlyArray<TableCount>
  /** most recent first */
  readonly runs: ReadonlyArray<RunStatus>
  readonly lastFinalize: LastFinalize | null
  /** runs with rows in staging that no finalize has consumed */
  readonly pendingRuns: ReadonlyArray<number>
  readonly finalizePending: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface StatusOptions {
  /** how many recent runs to list; default 10 */
  readonly runs?: number
}

/**
 * Reads the state of `schema` (exact counts, so it scans the tables).
 *
 * @since 0.1.0
 * @category status
 */
export const status = (
  doc: DocumentShape,
  schema: string,
  options: StatusOptions = {}
): Effect.Effect<StatusReport, DbError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const q = (name: string) => qualify(schema, name)
    const exists = (name: string) =>
      sql<{ ok: boolean }>`select to_regclass(${q(name)}) is not null as ok`.pipe(Effect.map((r) => r[0]!.ok))
    const shapes = recordShapes(doc)

    const stagedByRun = new Map<number, number>()
    const staging: Array<TableCount> = []
    for (const s of shapes) {
      const rows = yield* sql.unsafe<{ run_id: number; n: number }>(
        `select "run_id", count(*)::float8 as n from ${q(s.stagingTable)} group by "run_id"`
      )
      rows.forEach((r) => stagedByRun.set(r.run_id, (stagedByRun.get(r.run_id) ?? 0) + r.n))
      staging.push({ table: s.stagingTable, rows: rows.reduce((sum, r) => sum + r.n, 0) })
    }
    const final: Array<TableCount> = []
    for (const s of shapes) {
      const [r] = yield* sql.unsafe<{ n: number }>(`select count(*)::float8 as n from ${q(s.table)}`)
      final.push({ table: s.table, rows: r!.n })
    }

    const orphanRows = (yield* exists(FinalizeTables.orphans))
      ? yield* sql.unsafe<{ table_name: string; n: number }>(
        `select table_name, count(*)::float8 as n from ${q(FinalizeTables.orphans)} group by table_name`
      )
      : []
    const orphans = shapes.filter((s) => s !== doc.record).map((s) => ({
      table: s.table,
      rows: orphanRows.find((r) => r.table_name === s.table)?.n ?? 0
    }))

    const runRows = yield* sql.unsafe<{
      run_id: number
      file: string
      state: string
      started_at: Date
      finished_at: Date | null
      records: number
      rows_loaded: number
      rejected: number
      xml_bytes: number
      seconds: number | null
      message: string | null
    }>(
      `select run_id, file, state, started_at, finished_at, records::float8 as records,
        rows_loaded::float8 as rows_loaded, rejected::float8 as rejected, xml_bytes::float8 as xml_bytes,
        extract(epoch from finished_at - started_at)::float8 as seconds, message
      from ${q(Ledger.runs)} order by run_id desc limit $1`,
      [options.runs ?? 10]
    )
    const runs: Array<RunStatus> = runRows.map((r) => ({
      runId: r.run_id,
      file: r.file,
      state: r.state,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      records: r.records,
      rowsLoaded: r.rows_loaded,
      rejected: r.rejected,
      xmlBytes: r.xml_bytes,
      mbPerSecond: r.seconds === null || r.seconds <= 0 ? null : r.xml_bytes / 1e6 / r.seconds,
      staged: stagedByRun.get(r.run_id) ?? 0,
      message: r.message
    }))

    const lastRows = (yield* exists(FinalizeTables.history))
      ? yield* sql.unsafe<{
        finalize_id: number
        started_at: Date
        finished_at: Date
        mode: string
        runs: Array<number>
        keep_staging: boolean
        staged: Array<{ stagingTable: string; staged: number }>
      }>(
        `select finalize_id, started_at, finished_at, mode, runs, keep_staging, report->'tables' as staged
          from ${q(FinalizeTables.history)} order by finalize_id desc limit 1`
      )
      : []
    const last = lastRows[0]
    const lastFinalize: LastFinalize | null = last === undefined ? null : {
      finalizeId: last.finalize_id,
      startedAt: last.started_at,
      finishedAt: last.finished_at,
      mode: last.mode,
      runs: last.runs
    }
    // staging rows are pending unless they are exactly what the last finalize consumed and kept
    const consumedAndKept = last !== undefined && last.keep_staging &&
      staging.every((t) => last.staged.find((r) => r.stagingTable === t.table)?.staged === t.rows) &&
      Array.from(stagedByRun.keys()).every((id) => last.runs.includes(id))
    const pendingRuns = consumedAndKept ? [] : Array.from(stagedByRun.keys()).sort((a, b) => a - b)
    const report: StatusReport = {
      schema,
      staging,
      final,
      orphans,
      runs,
      lastFinalize,
      pendingRuns,
      finalizePending: pendingRuns.length > 0
    }
    return report
  }).pipe(Effect.mapError(toDbError("status")), Effect.withSpan("Status.status", { attributes: { schema } }))
