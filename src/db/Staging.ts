/**
 * Schema creation and the bookkeeping tables: runs, the batch ledger (one row per
 * committed batch, written in the batch's own transaction) and rejected records.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { toDbError } from "../Errors.js"
import type { CopyFormats } from "../pipeline/Batch.js"
import type { RejectLine } from "../pipeline/RejectsFile.js"
import { type DocumentShape, type RecordShape, recordShapes, stagingPrefix } from "../shape/Shape.js"
import { finalizeStatements, FinalizeTables } from "./Finalize.js"
import { qualify, quoteIdent } from "./Identifiers.js"

/**
 * Names of the bookkeeping tables.
 *
 * @since 0.1.0
 * @category models
 */
export const Ledger = {
  runs: "xml2pg_run",
  batches: "xml2pg_batch",
  rejects: "xml2pg_reject"
} as const

/**
 * Columns of the rejects table, in COPY order after the staging prefix.
 *
 * @since 0.1.0
 * @category models
 */
export const rejectColumns = ["file", "byte_offset", "element", "record_id", "reason"] as const

const columnList = (shape: RecordShape, notNull: boolean): Array<string> =>
  shape.columns.map((c) => `${quoteIdent(c.name)} ${c.type.sql}${notNull && c.required ? " not null" : ""}`)

/**
 * DDL statements for the staging, final and bookkeeping tables, all idempotent. Final
 * tables are created without keys; finalize adds keys and indexes after the first load.
 *
 * @since 0.1.0
 * @category ddl
 */
export const schemaStatements = (doc: DocumentShape, schema: string): Array<string> => {
  const prefix = stagingPrefix.map((c) => `${quoteIdent(c.name)} ${c.sql} not null`)
  const q = (name: string) => qualify(schema, name)
  return [
    `create schema if not exists ${quoteIdent(schema)}`,
    ...recordShapes(doc).flatMap((r) => [
      `create table if not exists ${q(r.stagingTable)} (${[...prefix, ...columnList(r, false)].join(", ")})`,
      `create table if not exists ${q(r.table)} (${columnList(r, true).join(", ")})`
    ]),
    `create table if not exists ${q(Ledger.runs)} (
      run_id serial primary key,
      file text not null,
      file_size bigint,
      fingerprint text,
      settings jsonb not null default '{}',
      state text not null default 'running',
      started_at timestamptz not null default now(),
      finished_at timestamptz,
      records bigint not null default 0,
      rows_loaded bigint not null default 0,
      rejected bigint not null default 0,
      xml_bytes bigint not null default 0,
      message text)`,
    `create table if not exists ${q(Ledger.batches)} (
      run_id integer not null,
      batch_seq integer not null,
      byte_start bigint not null,
      byte_end bigint not null,
      first_ord bigint not null,
      last_ord bigint not null,
      row_counts jsonb not null,
      rejected integer not null,
      committed_at timestamptz not null default now(),
      primary key (run_id, batch_seq))`,
    ...finalizeStatements(schema),
    `create table if not exists ${q(Ledger.rejects)} (${
      [...prefix, "file text not null", "byte_offset bigint not null", "element text not null", "record_id text", "reason text not null"]
        .join(", ")
    })`
  ]
}

const INIT_LOCK = 0x786d6c32 // "xml2"

/**
 * Creates every table if missing, under an advisory lock so concurrent `init`s do not race.
 *
 * @since 0.1.0
 * @category ddl
 */
export const initSchema = (doc: DocumentShape, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`select pg_advisory_xact_lock(${INIT_LOCK})`
      for (const statement of schemaStatements(doc, schema)) yield* sql.unsafe(statement)
    }))
  }).pipe(Effect.mapError(toDbError("init")), Effect.withSpan("Staging.initSchema"))

/**
 * Fails when a staging table's columns are not the shape's (names, order, types): binary
 * COPY sends each value as the bytes of its column's type, and into a column of another
 * type (a table made for an earlier version of the shape: `create table if not exists`
 * leaves it as it was) some values would load as different ones instead of failing. A
 * missing table is left to the load, which reports it.
 *
 * @since 0.1.0
 * @category ddl
 */
export const checkStagingTables = (doc: DocumentShape, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const shapes = recordShapes(doc)
    const wanted = shapes.map((r) => [
      ...stagingPrefix.map((c) => ({ name: c.name, sql: c.sql })),
      ...r.columns.map((c) => ({ name: c.name, sql: c.type.sql }))
    ])
    const sqlTypes = [...new Set(wanted.flat().map((c) => c.sql))]
    // the server's own name of each type, as the catalog below gives it ("timestamptz" → "timestamp with time zone")
    const canonical = new Map(
      (yield* sql.unsafe<{ sql: string; name: string | null }>(
        `select t as sql, to_regtype(t)::text as name from unnest($1::text[]) as t`,
        [sqlTypes]
      )).map((r) => [r.sql, r.name ?? r.sql])
    )
    const columns = yield* sql.unsafe<{ table: string; column: string; type: string }>(
      `select c.relname as table, a.attname as column, a.atttypid::regtype::text as type
       from pg_attribute a
       join pg_class c on c.oid = a.attrelid
       join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = $1 and c.relname = any($2::text[]) and a.attnum > 0 and not a.attisdropped
       order by c.relname, a.attnum`,
      [schema, shapes.map((r) => r.stagingTable)]
    )
    const remedy = "the table was made for another shape. Load into another schema, or drop the table (it holds " +
      "only rows not yet finalized) and run init"
    for (const [i, r] of shapes.entries()) {
      const has = columns.filter((c) => c.table === r.stagingTable)
      if (has.length === 0) continue
      const want = wanted[i]!.map((c) => ({ name: c.name, type: canonical.get(c.sql)! }))
      const table = qualify(schema, r.stagingTable)
      if (has.length !== want.length || has.some((c, k) => c.column !== want[k]!.name)) {
        const names = (cs: ReadonlyArray<string>) => cs.join(", ")
        return yield* Effect.fail(
          new Error(`${table} has columns (${names(has.map((c) => c.column))}), the shape (${names(want.map((c) => c.name))}): ${remedy}`)
        )
      }
      const k = want.findIndex((c, j) => has[j]!.type !== c.type)
      if (k >= 0) {
        return yield* Effect.fail(
          new Error(`column ${quoteIdent(want[k]!.name)} of ${table} is ${has[k]!.type}, the shape's is ${want[k]!.type}: ${remedy}`)
        )
      }
    }
  }).pipe(Effect.mapError(toDbError("staging check")), Effect.withSpan("Staging.checkStagingTables"))

/**
 * Empties the staging tables, the batch ledger and the rejects table.
 *
 * @since 0.1.0
 * @category ddl
 */
export const cleanStaging = (doc: DocumentShape, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables = [...recordShapes(doc).map((r) => r.stagingTable), Ledger.batches, Ledger.rejects]
    yield* sql.unsafe(`truncate ${tables.map((t) => qualify(schema, t)).join(", ")}`)
  }).pipe(Effect.mapError(toDbError("clean")), Effect.withSpan("Staging.cleanStaging"))

/**
 * @since 0.1.0
 * @category models
 */
export interface RunStart {
  readonly file: string
  readonly fileSize: number | undefined
  readonly fingerprint: string | undefined
  readonly settings: Record<string, unknown>
}

/**
 * Records the start of a run and returns its id.
 *
 * @since 0.1.0
 * @category ledger
 */
export const startRun = (schema: string, run: RunStart) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<{ run_id: number }>(
      `insert into ${qualify(schema, Ledger.runs)} (file, file_size, fingerprint, settings)
       values ($1, $2, $3, $4) returning run_id`,
      [run.file, run.fileSize ?? null, run.fingerprint ?? null, JSON.stringify(run.settings)]
    )
    return rows[0]!.run_id
  }).pipe(Effect.mapError(toDbError("start run")))

/**
 * @since 0.1.0
 * @category models
 */
export interface RunEnd {
  readonly state: "done" | "failed" | "interrupted"
  readonly records: number
  readonly rowsLoaded: number
  readonly rejected: number
  readonly xmlBytes: number
  readonly message: string | null
}

/**
 * @since 0.1.0
 * @category ledger
 */
export const finishRun = (schema: string, runId: number, end: RunEnd) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `update ${qualify(schema, Ledger.runs)} set state = $2, finished_at = now(), records = $3, rows_loaded = $4,
       rejected = $5, xml_bytes = $6, message = $7 where run_id = $1`,
      [runId, end.state, end.records, end.rowsLoaded, end.rejected, end.xmlBytes, end.message]
    )
  }).pipe(Effect.mapError(toDbError("finish run")))

/**
 * @since 0.1.0
 * @category models
 */
export interface UnfinishedRun {
  readonly runId: number
  readonly state: string
  readonly batchRows: number
  readonly batchBytes: number
  /** the COPY format of each table; a run recorded before binary COPY has none: all text */
  readonly copyFormats: CopyFormats | undefined
}

/**
 * The latest run of the same input (path, size and fingerprint) that did not finish and that
 * no finalize has consumed.
 *
 * @since 0.1.0
 * @category ledger
 */
export const findUnfinishedRun = (schema: string, input: { file: string; size: number; fingerprint: string }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<
      { run_id: number; state: string; batch_rows: number; batch_bytes: number; copy_formats: CopyFormats | null }
    >(
      `select run_id, state, (settings->>'batchRows')::int as batch_rows, (settings->>'batchBytes')::int as batch_bytes,
         settings->'copyFormats' as copy_formats
       from ${qualify(schema, Ledger.runs)}
       where file = $1 and file_size = $2 and fingerprint = $3 and state <> 'done'
         -- a run finalize consumed is not continued: later runs may have been merged over it
         and not exists (select 1 from ${qualify(schema, FinalizeTables.history)} f where run_id = any(f.runs))
       order by run_id desc limit 1`,
      [input.file, input.size, input.fingerprint]
    )
    const row = rows[0]
    return row === undefined
      ? undefined
      : {
        runId: row.run_id,
        state: row.state,
        batchRows: row.batch_rows,
        batchBytes: row.batch_bytes,
        copyFormats: row.copy_formats ?? undefined
      } satisfies UnfinishedRun
  }).pipe(Effect.mapError(toDbError("find unfinished run")))

/**
 * @since 0.1.0
 * @category models
 */
export interface LedgerEntry {
  readonly seq: number
  readonly byteEnd: number
  readonly lastOrd: number
  readonly rowCounts: Readonly<Record<string, number>>
  readonly rejected: number
}

/**
 * The committed batches of a run, in order.
 *
 * @since 0.1.0
 * @category ledger
 */
export const committedBatches = (schema: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<
      { batch_seq: number; byte_end: string; last_ord: string; row_counts: Record<string, number>; rejected: number }
    >(
      `select batch_seq, byte_end::text, last_ord::text, row_counts, rejected
       from ${qualify(schema, Ledger.batches)} where run_id = $1 order by batch_seq`,
      [runId]
    )
    return rows.map((r): LedgerEntry => ({
      seq: r.batch_seq,
      byteEnd: Number(r.byte_end),
      lastOrd: Number(r.last_ord),
      rowCounts: r.row_counts,
      rejected: r.rejected
    }))
  }).pipe(Effect.mapError(toDbError("read batch ledger")))

/**
 * Marks a run as running again, for a resume.
 *
 * @since 0.1.0
 * @category ledger
 */
export const reopenRun = (schema: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `update ${qualify(schema, Ledger.runs)} set state = 'running', finished_at = null, message = null where run_id = $1`,
      [runId]
    )
  }).pipe(Effect.mapError(toDbError("reopen run")))

/**
 * The rejects batch `seq` of run `runId` committed, in file order, as rejects file lines.
 *
 * @since 0.1.0
 * @category ledger
 */
export const committedRejects = (schema: string, runId: number, seq: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<
      { ord: string; file: string; byte_offset: string; element: string; record_id: string | null; reason: string }
    >(
      `select ord::text, file, byte_offset::text, element, record_id, reason
       from ${qualify(schema, Ledger.rejects)} where run_id = $1 and batch_seq = $2 order by byte_offset, ord`,
      [runId, seq]
    )
    return rows.map((r): RejectLine => ({
      file: r.file,
      offset: Number(r.byte_offset),
      element: r.element,
      id: r.record_id,
      reason: r.reason,
      ord: Number(r.ord)
    }))
  }).pipe(Effect.mapError(toDbError("read rejects")))

/**
 * Creates the tables when the schema has none yet (a fresh database), so a first `ingest`
 * needs no separate `init`; an existing schema is left alone, so a loader role needs no DDL
 * rights.
 *
 * @since 0.1.0
 * @category ddl
 */
export const ensureSchema = (doc: DocumentShape, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql.unsafe<{ found: boolean }>(`select to_regclass($1) is not null as found`, [
      qualify(schema, Ledger.runs)
    ])
    if (row?.found !== true) yield* initSchema(doc, schema)
  }).pipe(Effect.mapError(toDbError("init")))
