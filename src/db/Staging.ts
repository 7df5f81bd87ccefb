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
 * Fails when a staging table loaded by binary COPY lacks a column of the shape, or has it
 * with another type or a type modifier. Binary COPY sends each value as the bytes of the
 * type the shape declares, and into a column of another type (a table made for an earlier
 * version of the shape: `create table if not exists` leaves it as it was) some values load
 * as other values instead of failing: a smallint 16706 into a text column is "AB". COPY
 * text goes through the column's input function, which fails on what it cannot read, so
 * its tables are not checked; nor are column order and extra columns, as COPY names its
 * columns. A missing table is left to the load, which reports it.
 *
 * @since 0.1.0
 * @category ddl
 */
export const checkStagingTables = (doc: DocumentShape, schema: string, formats: CopyFormats) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = recordShapes(doc).flatMap((r, i) =>
      formats[i] === "binary"
        ? [
          ...stagingPrefix.map((c) => ({ table: r.stagingTable, column: c.name, type: c.sql })),
          ...r.columns.map((c) => ({ table: r.stagingTable, column: c.name, type: c.type.sql }))
        ]
        : []
    )
    if (wanted.length === 0) return
    // one row per column wanted; `type` is null when the table has no such column
    const rows = yield* sql.unsafe<{
      table: string
      column: string
      want: string
      type: string | null
      shown: string | null
      typmod: number | null
      tableFound: boolean
    }>(
      `select w.tbl as table, w.col as column, to_regtype(w.typ)::text as want,
              a.atttypid::regtype::text as type, format_type(a.atttypid, a.atttypmod) as shown,
              a.atttypmod as typmod, c.oid is not null as "tableFound"
       from unnest($2::text[], $3::text[], $4::text[]) with ordinality as w(tbl, col, typ, n)
       left join pg_namespace s on s.nspname = $1
       left join pg_class c on c.relnamespace = s.oid and c.relname = w.tbl
       left join pg_attribute a on a.attrelid = c.oid and a.attname = w.col and a.attnum > 0 and not a.attisdropped
       order by w.n`,
      [schema, wanted.map((w) => w.table), wanted.map((w) => w.column), wanted.map((w) => w.type)]
    )
    const remedy = "the table was made for another shape. Finalize what it holds with that shape, or load into " +
      "another schema; or drop the table, run init, then clean (which discards the rows staged and not finalized)"
    for (const r of rows) {
      if (!r.tableFound) continue
      const column = `column ${quoteIdent(r.column)} of ${qualify(schema, r.table)}`
      if (r.type === null) return yield* Effect.fail(new Error(`${column} is missing: ${remedy}`))
      if (r.type !== r.want || r.typmod !== -1) {
        return yield* Effect.fail(new Error(`${column} is ${r.shown}, the shape's is ${r.want}: ${remedy}`))
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
  /** where the ranges of a split input end (see Split.ts); none: one range */
  readonly ranges: ReadonlyArray<number>
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
      {
        run_id: number
        state: string
        batch_rows: number
        batch_bytes: number
        copy_formats: CopyFormats | null
        ranges: Array<number> | null
      }
    >(
      `select run_id, state, (settings->>'batchRows')::int as batch_rows, (settings->>'batchBytes')::int as batch_bytes,
         settings->'copyFormats' as copy_formats, settings->'ranges' as ranges
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
        copyFormats: row.copy_formats ?? undefined,
        ranges: row.ranges ?? []
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
 * Keeps the first `ranges` range ends of a split run: the range before a dropped one parses
 * on to the end of the file. Committed before any of that range's batches past its old end,
 * so a resume splits the file as the run last did.
 *
 * @since 0.1.0
 * @category ledger
 */
export const keepRanges = (schema: string, runId: number, ranges: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `update ${qualify(schema, Ledger.runs)} set settings = jsonb_set(settings, '{ranges}', $2::jsonb) where run_id = $1`,
      [runId, JSON.stringify(ranges)]
    )
  }).pipe(Effect.mapError(toDbError("record ranges")))

/**
 * Deletes what batches `fromSeq` and on of a run committed (rows, rejects, ledger), at once:
 * the batches of dropped ranges.
 *
 * @since 0.1.0
 * @category ledger
 */
export const dropBatches = (doc: DocumentShape, schema: string, runId: number, fromSeq: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables = [...recordShapes(doc).map((r) => r.stagingTable), Ledger.rejects, Ledger.batches]
    yield* sql.withTransaction(Effect.forEach(
      tables,
      (table) =>
        sql.unsafe(`delete from ${qualify(schema, table)} where run_id = $1 and batch_seq >= $2`, [runId, fromSeq]),
      { discard: true }
    ))
  }).pipe(Effect.mapError(toDbError("drop batches")))

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
