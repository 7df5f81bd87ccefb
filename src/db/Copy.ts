/**
 * Writing one batch: a pooled client, one transaction holding a COPY per table, the
 * rejects and the batch's ledger row, then COMMIT. A failure anywhere rolls the whole
 * batch back, so a batch is in the database completely or not at all.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import Pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { DbError, toDbError } from "../Errors.js"
import { type Batch, type CopyFormats, tableFormats } from "../pipeline/Batch.js"
import { type DocumentShape, recordShapes, stagingPrefix } from "../shape/Shape.js"
import { BINARY_HEADER, BINARY_TRAILER } from "./CopyBinary.js"
import { copyLine } from "./CopyText.js"
import { qualify, quoteIdent } from "./Identifiers.js"
import { clientQuery, type Closing, scopedClient } from "./PgPool.js"
import { Ledger, rejectColumns } from "./Staging.js"

const { escapeLiteral } = Pg

const ROLLBACK: Closing = { sql: "ROLLBACK", values: [], timeout: "5 seconds" }

/**
 * Opens a writer's transaction. `synchronous_commit = off` for this transaction only
 * (`SET LOCAL`; the pooled session keeps the server's setting): COMMIT returns without
 * waiting for the WAL flush. That is safe here because a batch's ledger row commits in the
 * same transaction as its rows: a server crash can lose only the last whole batches, rows
 * and ledger rows together, and a resume reloads exactly those. The run's end
 * (`finishRun`) commits synchronously, which flushes every batch before it.
 */
const BEGIN_WRITER = "BEGIN; SET LOCAL synchronous_commit TO off"

/**
 * A client checked out of the pool inside `BEGIN` (see `BEGIN_WRITER`), with `first` (if
 * given) run in the same round trip and reported as `op`; on failure or interruption it
 * is rolled back, and a client that cannot roll back is discarded rather than reused.
 *
 * @internal
 */
export const transactionClient = (first?: { readonly op: string; readonly sql: string }) =>
  Effect.gen(function*() {
    const client = yield* scopedClient("writer", (exit) => (Exit.isSuccess(exit) ? undefined : ROLLBACK))
    yield* first === undefined
      ? clientQuery(client, "begin", BEGIN_WRITER)
      : clientQuery(client, first.op, `${BEGIN_WRITER}; ${first.sql}`)
    return client
  })

/**
 * Streams `chunks` into `COPY … FROM STDIN`, honouring the stream's backpressure.
 * Interruption sends CopyFail and waits (bounded) for the server to acknowledge it.
 */
export const copyIn = (client: Pg.PoolClient, sql: string, chunks: ReadonlyArray<Buffer | string>) =>
  Effect.async<number, DbError>((resume) => {
    const stream = client.query(copyFrom(sql))
    let settled = false
    stream.on("error", (err) => {
      if (!settled) {
        settled = true
        resume(Effect.fail(toDbError("copy")(err)))
      }
    })
    stream.on("finish", () => {
      if (!settled) {
        settled = true
        resume(Effect.succeed(stream.rowCount))
      }
    })
    // Write until the stream pushes back, then wait for "drain": a batch is a few MB, so this
    // never holds the event loop long, and COPY does not wait a loop turn per chunk.
    let i = 0
    const pump = (): void => {
      while (!settled && i < chunks.length) {
        if (!stream.write(chunks[i++]!)) return void stream.once("drain", pump)
      }
      if (!settled) stream.end()
    }
    pump()
    return Effect.async<void>((done) => {
      if (settled) return done(Effect.void)
      settled = true
      stream.once("close", () => done(Effect.void))
      stream.destroy(new Error("COPY interrupted"))
    }).pipe(Effect.timeoutOption("5 seconds"))
  })

/**
 * The SQL a writer needs for a document shape in a schema, built once.
 *
 * @since 0.1.0
 * @category models
 */
export interface CopyTargets {
  /** `binary`: the table's rows are binary COPY rows (see `tableFormats`), sent between a header and a trailer */
  readonly tables: ReadonlyArray<{ readonly name: string; readonly sql: string; readonly binary: boolean }>
  readonly rejectsSql: string
  /** the ledger's qualified name */
  readonly ledger: string
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const copyTargets = (doc: DocumentShape, schema: string, formats?: CopyFormats): CopyTargets => {
  const prefix = stagingPrefix.map((c) => quoteIdent(c.name))
  const copySql = (table: string, columns: ReadonlyArray<string>, binary = false) =>
    `COPY ${qualify(schema, table)} (${[...prefix, ...columns.map(quoteIdent)].join(", ")}) FROM STDIN` +
    (binary ? " (FORMAT binary)" : "")
  const tableFormat = tableFormats(doc, formats)
  return {
    tables: recordShapes(doc).map((r, i) => {
      const binary = tableFormat[i]!._tag === "binary"
      return { name: r.stagingTable, sql: copySql(r.stagingTable, r.columns.map((c) => c.name), binary), binary }
    }),
    rejectsSql: copySql(Ledger.rejects, rejectColumns),
    ledger: qualify(schema, Ledger.batches)
  }
}

const integer = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`)
  return String(n)
}

/**
 * The batch's ledger row as one INSERT with literal values (integers, and the row counts
 * as an escaped JSON literal), so that it travels in the same round trip as BEGIN.
 */
const ledgerInsert = (targets: CopyTargets, runId: number, batch: Batch): string => {
  const counts = Object.fromEntries(targets.tables.map((t, i) => [t.name, batch.tables[i]!.rows]))
  const values = [runId, batch.seq, batch.byteStart, batch.byteEnd, batch.firstOrd, batch.lastOrd].map(integer)
  return `insert into ${targets.ledger}
      (run_id, batch_seq, byte_start, byte_end, first_ord, last_ord, row_counts, rejected)
      values (${values.join(", ")}, ${escapeLiteral(JSON.stringify(counts))}, ${integer(batch.rejects.length)})`
}

const rejectLines = (runId: number, batch: Batch): Array<string> => [
  batch.rejects.map((r) =>
    copyLine(`${runId}\t${batch.seq}\t${r.ord}`, [r.file, String(r.offset), r.element, r.id, r.reason])
  ).join("")
]

const UNIQUE_VIOLATION = "23505"

/**
 * Writes one batch in one transaction: BEGIN and the batch's ledger row in one round trip,
 * a COPY per table, the rejects, COMMIT. If the ledger already holds the batch (a retry
 * after a COMMIT whose acknowledgement was lost), the insert fails at once, the repeat is
 * rolled back before any COPY, and the batch counts as written: a batch lands exactly once.
 *
 * @since 0.1.0
 * @category writer
 */
export const writeBatch = (targets: CopyTargets, runId: number, batch: Batch) =>
  Effect.scoped(Effect.gen(function*() {
    const ledger = yield* Effect.try({ try: () => ledgerInsert(targets, runId, batch), catch: toDbError("ledger insert") })
    const client = yield* transactionClient({ op: "ledger insert", sql: ledger })
    let rows = 0
    for (let t = 0; t < targets.tables.length; t++) {
      const data = batch.tables[t]!
      const target = targets.tables[t]!
      if (data.rows > 0) {
        rows += yield* copyIn(
          client,
          target.sql,
          target.binary ? [BINARY_HEADER, ...data.chunks, BINARY_TRAILER] : data.chunks
        )
      }
    }
    if (batch.rejects.length > 0) yield* copyIn(client, targets.rejectsSql, rejectLines(runId, batch))
    yield* clientQuery(client, "commit", "COMMIT").pipe(Effect.uninterruptible)
    return rows
  })).pipe(
    Effect.catchIf(
      (e): e is DbError => e instanceof DbError && e.sqlState === UNIQUE_VIOLATION && e.op === "ledger insert",
      () => Effect.succeed(batch.rows)
    )
  )
