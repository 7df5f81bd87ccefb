/**
 * Finalize: staging → final tables, driven by the document shape. The last accepted
 * occurrence of a key wins (`run_id`, then `ord`, the record's place in its file), runs
 * merge by upsert, and child records whose parent exists nowhere are set aside as orphans.
 *
 * Everything happens in one transaction under the schema's exclusive advisory lock: a
 * failure leaves the final tables, the orphans and the staging tables as they were, and
 * running finalize again finishes the job.
 *
 * - First load (every final table empty and without a primary key): plain `INSERT` of the
 *   winners, then primary keys, foreign keys, secondary indexes (every parent-key and
 *   every timestamptz column) and `ANALYZE`. Building a btree once over loaded data is far
 *   cheaper than maintaining it row by row, and PostgreSQL builds it in parallel.
 * - Later loads: `INSERT … ON CONFLICT (key) DO UPDATE … WHERE` the row differs, parents
 *   before children, so an identical re-run updates nothing.
 * - Winners: `DISTINCT ON (key) … ORDER BY key, run_id DESC, ord DESC`, one sort per
 *   table with a generous `work_mem` (set per transaction, never globally). On a first
 *   load where no key was staged twice (counted over the keys alone), the staged rows
 *   are the winners and load without that sort of whole rows.
 * - Orphans: a child whose winning occurrence names a parent key found neither among the
 *   parent's winners nor in the parent's final table. It is not loaded; it goes to
 *   `xml2pg_orphan` with the reason. If the child's key is already in its final table,
 *   that row is kept as it is (`kept_existing`), since the newer values cannot be loaded.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type DbError, toDbError } from "../Errors.js"
import type { Column, DocumentShape, RecordShape } from "../shape/Shape.js"
import { qualify, quoteIdent } from "./Identifiers.js"
import { type LockBusyError, withSchemaLock } from "./Locks.js"
import type { PgPool } from "./PgPool.js"

/**
 * Names of the tables finalize keeps its records in.
 *
 * @since 0.1.0
 * @category models
 */
export const FinalizeTables = {
  orphans: "xml2pg_orphan",
  history: "xml2pg_finalize"
} as const

/**
 * DDL for finalize's own tables, idempotent. `init` may run it; finalize runs it too.
 *
 * @since 0.1.0
 * @category ddl
 */
export const finalizeStatements = (schema: string): Array<string> => [
  `create table if not exists ${qualify(schema, FinalizeTables.orphans)} (
    table_name text not null,
    run_id integer not null,
    batch_seq integer not null,
    ord bigint not null,
    element text not null,
    record_id text,
    parent_table text not null,
    parent_id text,
    reason text not null,
    kept_existing boolean not null,
    record jsonb not null,
    found_at timestamptz not null default now(),
    primary key (table_name, run_id, ord))`,
  `create table if not exists ${qualify(schema, FinalizeTables.history)} (
    finalize_id serial primary key,
    started_at timestamptz not null,
    finished_at timestamptz not null default clock_timestamp(),
    mode text not null,
    runs integer[] not null,
    keep_staging boolean not null,
    report jsonb not null)`
]

/**
 * How finalize runs: keep or remove consumed staging rows, wait for or fail on a held lock, and per-transaction memory settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface FinalizeOptions {
  /** leave the consumed rows in the staging tables */
  readonly keepStaging: boolean
  /** wait for a running finalize or ingest instead of failing */
  readonly wait: boolean
  /** `work_mem` for this transaction (the winner sorts); default "512MB" */
  readonly workMem?: string
  /** `maintenance_work_mem` for this transaction (index builds); default "1GB" */
  readonly maintenanceWorkMem?: string
  /** `max_parallel_maintenance_workers` for this transaction; default 4 */
  readonly parallelWorkers?: number
}

/**
 * What finalize did to one table.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableReport {
  readonly table: string
  readonly stagingTable: string
  /** rows in the staging table */
  readonly staged: number
  /** staged rows that lost to a later occurrence of the same key */
  readonly duplicates: number
  /** winners not loaded because their parent exists nowhere */
  readonly orphans: number
  /** orphans whose key was already in the final table, which keeps its row */
  readonly orphansKept: number
  readonly inserted: number
  readonly updated: number
  /** winners identical to the final row */
  readonly unchanged: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FinalizeStep {
  readonly step: string
  readonly millis: number
}

/**
 * What one finalize did: its mode, the runs it consumed, per-table counts and the time of each step.
 *
 * @since 0.1.0
 * @category models
 */
export interface FinalizeReport {
  readonly schema: string
  /** "first-load": empty final tables, keys built afterwards; "merge": upsert into keyed tables */
  readonly mode: "first-load" | "merge" | "nothing-to-do"
  /** the runs whose staging rows were consumed */
  readonly runs: ReadonlyArray<number>
  readonly tables: ReadonlyArray<TableReport>
  readonly steps: ReadonlyArray<FinalizeStep>
  readonly stagingRemoved: boolean
  readonly millis: number
}

// == the shape as SQL

interface Target {
  readonly shape: RecordShape
  readonly final: string
  readonly staging: string
  readonly key: string
  readonly columns: ReadonlyArray<string>
  readonly parent: {
    readonly shape: RecordShape
    readonly final: string
    readonly key: string
    /** the column of this shape holding the parent's key, quoted */
    readonly column: string
    readonly columnName: string
  } | undefined
  /** columns getting a secondary index: parent keys and timestamps */
  readonly indexed: ReadonlyArray<string>
}

const isParentKey = (c: Column) => c.source._tag === "ParentKey"

const targets = (doc: DocumentShape, schema: string): ReadonlyArray<Target> => {
  const out: Array<Target> = []
  const visit = (shape: RecordShape, parent: RecordShape | undefined): void => {
    const parentColumn = shape.columns.find(isParentKey)
    out.push({
      shape,
      final: qualify(schema, shape.table),
      staging: qualify(schema, shape.stagingTable),
      key: quoteIdent(shape.key),
      columns: shape.columns.map((c) => quoteIdent(c.name)),
      parent: parent === undefined || parentColumn === undefined ? undefined : {
        shape: parent,
        final: qualify(schema, parent.table),
        key: quoteIdent(parent.key),
        column: quoteIdent(parentColumn.name),
        columnName: parentColumn.name
      },
      indexed: shape.columns
        .filter((c) => c.name !== shape.key && (isParentKey(c) || c.type.sql === "timestamptz"))
        .map((c) => c.name)
    })
    shape.children.forEach((child) => visit(child, shape))
  }
  visit(doc.record, undefined)
  return out
}

const winners = (t: Target, columns: string) =>
  `select distinct on (${t.key}) ${columns} from ${t.staging} order by ${t.key}, "run_id" desc, "ord" desc`

/**
 * The winners to load; with `skipOrphans`, only those whose parent is in the final table.
 * With `unique` (no key staged twice) every staged row is a winner, and the sort is skipped.
 */
const loadSource = (t: Target, skipOrphans: boolean, unique = false) => {
  const columns = t.columns.join(", ")
  const w = unique ? `select ${columns} from ${t.staging} w` : `select ${columns} from (${winners(t, columns)}) w`
  return skipOrphans && t.parent !== undefined
    ? `${w} where exists (select 1 from ${t.parent.final} p where p.${t.parent.key} = w.${t.parent.column})`
    : w
}

/**
 * Orphan winners, found cheaply: first the keys having any occurrence whose parent is
 * missing (one anti-join over staging), then the winning occurrence of just those keys.
 */
const orphansSql = (t: Target, schema: string) => {
  const p = t.parent!
  return `with candidates as materialized (
      select distinct c.${t.key} as k from ${t.staging} c
      where not exists (select 1 from ${p.final} p where p.${p.key} = c.${p.column})
    ), latest as (
      select distinct on (s.${t.key}) s.* from ${t.staging} s
      where s.${t.key} in (select k from candidates)
      order by s.${t.key}, s."run_id" desc, s."ord" desc
    ), orphans as materialized (
      select l.*, exists (select 1 from ${t.final} f where f.${t.key} = l.${t.key}) as "xml2pg_kept"
      from latest l
      where not exists (select 1 from ${p.final} p where p.${p.key} = l.${p.column})
    ), recorded as (
      insert into ${qualify(schema, FinalizeTables.orphans)}
        (table_name, run_id, batch_seq, ord, element, record_id, parent_table, parent_id, reason, kept_existing, record)
      select $1, o."run_id", o."batch_seq", o."ord", $2, o.${t.key}::text, $3, o.${p.column}::text,
        $4 || coalesce(o.${p.column}::text, 'NULL') || $5 || case when o."xml2pg_kept" then $6 else '' end,
        o."xml2pg_kept", to_jsonb(o) - 'run_id' - 'batch_seq' - 'ord' - 'xml2pg_kept'
      from orphans o
      on conflict do nothing
      returning 1
    )
    select count(*)::float8 as orphans, (count(*) filter (where "xml2pg_kept"))::float8 as kept from orphans`
}

const orphanParams = (t: Target) => {
  const p = t.parent!
  return [
    t.shape.table,
    t.shape.element,
    p.shape.table,
    `${p.shape.element} ${p.shape.key} = `,
    ` found neither in staging nor in ${p.shape.table}`,
    `; the existing row in ${t.shape.table} is kept`
  ]
}

const upsertSql = (t: Target, skipOrphans: boolean) => {
  const rest = t.columns.filter((c) => c !== t.key)
  const row = (alias: string) => `(${rest.map((c) => `${alias}.${c}`).join(", ")})`
  const action = rest.length === 0
    ? "do nothing"
    : `do update set ${rest.map((c) => `${c} = excluded.${c}`).join(", ")}
       where ${row("f")} is distinct from ${row("excluded")}`
  return `with changed as (
      insert into ${t.final} as f (${t.columns.join(", ")}) ${loadSource(t, skipOrphans)}
      on conflict (${t.key}) ${action}
      returning (f.xmax = 0) as inserted
    )
    select (count(*) filter (where inserted))::float8 as inserted,
      (count(*) filter (where not inserted))::float8 as updated
    from changed`
}

const constraintName = (table: string, suffix: string) => quoteIdent(`${table}_${suffix}`)

/**
 * Logs, at debug level, each statement finalize ran: its step, SQL text, parameters and
 * milliseconds, as one JSON value after the message `finalize statement`. The bench replays
 * them with `psql -f` to measure finalize against its bare SQL. Parameters are table and
 * element names and the report: no connection details.
 */
const logStatement = (step: string, sql: string, params: ReadonlyArray<unknown>) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.timed(self).pipe(
    Effect.tap(([took]) =>
      Effect.logDebug("finalize statement", { step, sql, params, millis: Duration.toMillis(took) })
    ),
    Effect.map(([, a]) => a)
  )

// == finalize

interface Counts {
  staged: number
  winners: number
  orphans: number
  orphansKept: number
  inserted: number
  updated: number
}

type Row = Record<string, unknown>

interface Outcome {
  readonly mode: FinalizeReport["mode"]
  readonly counts: Map<Target, Counts>
  readonly runs: Set<number>
}

const hasPrimaryKey = "select exists (select 1 from pg_constraint where conrelid = to_regclass($1) and contype = 'p')"
const hasForeignKey = `select exists (select 1 from pg_constraint
  where conrelid = to_regclass($1) and confrelid = to_regclass($2) and contype = 'f')`

/**
 * Moves the staging rows into the final tables (see the module comment for the rules) and
 * reports what it did. Takes the schema's exclusive lock; with `wait: false` a running
 * finalize or ingest makes it fail at once with `LockBusyError`.
 *
 * @since 0.1.0
 * @category finalize
 */
export const finalize = (
  doc: DocumentShape,
  schema: string,
  options: FinalizeOptions
): Effect.Effect<FinalizeReport, DbError | LockBusyError, SqlClient.SqlClient | PgPool> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const ts = targets(doc, schema)
    const started = performance.now()
    const steps: Array<FinalizeStep> = []
    let mark = started
    const lap = (name: string) =>
      Effect.sync(() => {
        const now = performance.now()
        steps.push({ step: name, millis: Math.round(now - mark) })
        mark = now
      })
    const query = <A extends object = Row>(name: string, text: string, params: Array<unknown> = []) =>
      sql.unsafe<A>(text, params).pipe(Effect.mapError(toDbError(`finalize: ${name}`)), logStatement(name, text, params))
    /** a statement that is a step of its own in the report */
    const step = <A extends object = Row>(name: string, text: string, params: Array<unknown> = []) =>
      query<A>(name, text, params).pipe(Effect.zipLeft(lap(name)))
    const first = <A extends object>(rows: ReadonlyArray<A>) => rows[0]!
    const flag = (text: string, params: Array<unknown>) =>
      query<{ ok: boolean }>("inspect", `select (${text}) as ok`, params).pipe(Effect.map((r) => first(r).ok))

    const buildKeys = Effect.gen(function*() {
      for (const t of ts) {
        if (yield* flag(hasPrimaryKey, [t.final])) continue
        yield* step(
          `primary key ${t.shape.table}`,
          `alter table ${t.final} add constraint ${constraintName(t.shape.table, "pkey")} primary key (${t.key})`
        )
      }
      for (const t of ts) {
        const p = t.parent
        if (p === undefined || (yield* flag(hasForeignKey, [t.final, p.final]))) continue
        yield* step(
          `foreign key ${t.shape.table}.${p.columnName}`,
          `alter table ${t.final} add constraint ${constraintName(t.shape.table, `${p.columnName}_fkey`)}
            foreign key (${p.column}) references ${p.final} (${p.key})`
        )
      }
      for (const t of ts) {
        for (const column of t.indexed) {
          const name = `${t.shape.table}_${column}_idx`
          if (yield* flag("select to_regclass($1) is not null", [qualify(schema, name)])) continue
          yield* step(
            `index ${t.shape.table}(${column})`,
            `create index ${quoteIdent(name)} on ${t.final} (${quoteIdent(column)})`
          )
        }
      }
    })

    /** how many distinct keys `t`'s staging table holds */
    const distinctKeys = (t: Target, name: string) =>
      step<{ n: number }>(name, `select count(distinct ${t.key})::float8 as n from ${t.staging}`).pipe(
        Effect.map((rows) => first(rows).n)
      )

    const load = (t: Target, c: Counts, firstLoad: boolean) =>
      Effect.gen(function*() {
        if (t.parent !== undefined) {
          const o = first(
            yield* step<{ orphans: number; kept: number }>(
              `orphans ${t.shape.table}`,
              orphansSql(t, schema),
              orphanParams(t)
            )
          )
          c.orphans = o.orphans
          c.orphansKept = o.kept
        }
        if (firstLoad) {
          // counting distinct keys sorts only the keys: far cheaper than DISTINCT ON's sort of
          // whole rows, which it spares when no key was staged twice (a first load usually)
          const keys = yield* distinctKeys(t, `count keys ${t.shape.table}`)
          const name = `load ${t.shape.table}`
          const text = `insert into ${t.final} (${t.columns.join(", ")}) ${
            loadSource(t, c.orphans > 0, keys === c.staged)
          }`
          const result = yield* sql.unsafe(text).raw.pipe(
            Effect.mapError(toDbError(`finalize: ${name}`)),
            logStatement(name, text, [])
          )
          yield* lap(name)
          c.inserted = (result as { rowCount: number | null }).rowCount ?? 0
          c.winners = c.inserted + c.orphans
        } else {
          const u = first(
            yield* step<{ inserted: number; updated: number }>(`merge ${t.shape.table}`, upsertSql(t, c.orphans > 0))
          )
          c.inserted = u.inserted
          c.updated = u.updated
          c.winners = yield* distinctKeys(t, `count winners ${t.shape.table}`)
        }
      })

    const merge = Effect.gen(function*() {
      // No JIT: these statements are scans, sorts and inserts that JIT speeds little, while
      // compiling one costed high took the server ~0.5 s (the orphan check on 1 GB: 0.49 of 1.85 s)
      yield* query(
        "settings",
        `select set_config('work_mem', $1, true), set_config('maintenance_work_mem', $2, true),
          set_config('max_parallel_maintenance_workers', $3, true), set_config('jit', 'off', true)`,
        [options.workMem ?? "512MB", options.maintenanceWorkMem ?? "1GB", String(options.parallelWorkers ?? 4)]
      )
      // no ingest can add rows from here on, so what is read below is exactly what is consumed
      yield* step("lock staging tables", `lock table ${ts.map((t) => t.staging).join(", ")} in exclusive mode`)

      const counts = new Map<Target, Counts>()
      const runs = new Set<number>()
      for (const t of ts) {
        const rows = yield* query<{ run_id: number; n: number }>(
          "count staging",
          `select "run_id", count(*)::float8 as n from ${t.staging} group by "run_id"`
        )
        rows.forEach((r) => runs.add(r.run_id))
        const staged = rows.reduce((sum, r) => sum + r.n, 0)
        counts.set(t, { staged, winners: 0, orphans: 0, orphansKept: 0, inserted: 0, updated: 0 })
      }
      yield* lap("count staging")
      if (ts.every((t) => counts.get(t)!.staged === 0)) {
        const outcome: Outcome = { mode: "nothing-to-do", counts, runs }
        return outcome
      }

      let firstLoad = true
      for (const t of ts) {
        const keyed = yield* flag(hasPrimaryKey, [t.final])
        const empty = yield* flag(`select not exists (select 1 from ${t.final})`, [])
        if (keyed || !empty) firstLoad = false
      }
      if (!firstLoad) yield* buildKeys
      for (const t of ts) {
        const c = counts.get(t)!
        if (c.staged > 0) yield* load(t, c, firstLoad)
      }
      if (firstLoad) yield* buildKeys
      const changed = ts.filter((t) => counts.get(t)!.inserted + counts.get(t)!.updated > 0)
      if (changed.length > 0) yield* step("analyze", `analyze ${changed.map((t) => t.final).join(", ")}`)
      if (!options.keepStaging) yield* step("remove staging rows", `truncate ${ts.map((t) => t.staging).join(", ")}`)
      const outcome: Outcome = { mode: firstLoad ? "first-load" : "merge", counts, runs }
      const report = makeReport(schema, ts, outcome, steps, !options.keepStaging, started)
      yield* step(
        "record",
        `insert into ${qualify(schema, FinalizeTables.history)} (started_at, mode, runs, keep_staging, report)
          values (now(), $1, $2, $3, $4)`,
        [outcome.mode, report.runs, options.keepStaging, JSON.stringify(report)]
      )
      return outcome
    })

    const locked = Effect.gen(function*() {
      yield* lap("wait for schema lock")
      for (const statement of finalizeStatements(schema)) yield* query("create bookkeeping tables", statement)
      const outcome = yield* sql.withTransaction(merge).pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(toDbError("finalize: transaction")(e)))
      )
      const changed = outcome.mode !== "nothing-to-do"
      if (changed) yield* lap("commit")
      return makeReport(schema, ts, outcome, steps, changed && !options.keepStaging, started)
    })
    return yield* withSchemaLock(schema, "exclusive", { wait: options.wait })(locked)
  }).pipe(Effect.withSpan("Finalize.finalize", { attributes: { schema } }))

const makeReport = (
  schema: string,
  ts: ReadonlyArray<Target>,
  outcome: Outcome,
  steps: ReadonlyArray<FinalizeStep>,
  stagingRemoved: boolean,
  started: number
): FinalizeReport => ({
  schema,
  mode: outcome.mode,
  runs: Array.from(outcome.runs).sort((a, b) => a - b),
  tables: ts.map((t) => {
    const c = outcome.counts.get(t)!
    return {
      table: t.shape.table,
      stagingTable: t.shape.stagingTable,
      staged: c.staged,
      duplicates: c.staged - c.winners,
      orphans: c.orphans,
      orphansKept: c.orphansKept,
      inserted: c.inserted,
      updated: c.updated,
      unchanged: c.winners - c.orphans - c.inserted - c.updated
    }
  }),
  steps: steps.slice(),
  stagingRemoved,
  millis: Math.round(performance.now() - started)
})
