/**
 * The bench stages as seen from the parent: each run is a child process measured from
 * the outside (see Child.ts); the database work of stages 3–5 happens in a fresh schema
 * per run, created by `xml2pg init` and dropped afterwards.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defaults } from "../config/Settings.js"
import { qualify, quoteIdent } from "../db/Identifiers.js"
import { GroupsDocument } from "../shape/GroupEvents.js"
import { recordShapes } from "../shape/Shape.js"
import { libpqEnv, runBareSql } from "./BareSql.js"
import { BenchError, type Measured, runMeasured, type Sample, tail } from "./Child.js"
import { cpuBetween, serverCpuSeconds } from "./Cpu.js"
import type { InputFile } from "./Inputs.js"
import type { SaxesVariant } from "./RawSaxes.js"
import { STAGE_MARK, type StageOutcome } from "./StageResult.js"

/**
 * "1n" is stage 1': it was saxes with namespaces and positions off ("no-position") before it
 * was fed as the producer feeds it, and, since session 17, with the producer's shorter paths
 */
export type StageId = "1" | "1n" | "2" | "2f" | "3" | "4" | "4p" | "5a" | "5as" | "5b" | "5c" | "5cs" | "6"

export const stageNames: Record<StageId, string> = {
  "1": "raw saxes, default options",
  "1n": "saxes as the producer runs and feeds it",
  "2": "producer: parse+validate+encode",
  "2f": "producer, the CLI's V8 flags",
  "3": `COPY only, ${defaults.writers} writers`,
  "4": "ingest CLI, end to end",
  "4p": "ingest CLI, one parser (--parsers 1)",
  "5a": "finalize, first load",
  "5as": "its SQL alone, psql -f",
  "5b": "ingest CLI, merge file",
  "5c": "finalize, merge load",
  "5cs": "its SQL alone, psql -f",
  "6": "the seed's Python design, load only"
}

/** One run of one stage. */
export interface RunMeasure {
  /** the time the stage is judged by: the timed section for 1–3, the whole process for 4–5 */
  readonly seconds: number
  /** the child process from spawn to exit */
  readonly processSeconds: number
  /** CLI runs: from spawn to "run N: loading" (ingest) or to "database: …" (finalize) */
  readonly startupSeconds?: number
  readonly rows: number
  readonly xmlBytes: number
  readonly peakRssKb: number
  /** user + system seconds of the stage's process (children included), where /proc tells */
  readonly cpuSeconds?: number
  /** ingest runs: the PostgreSQL server's user + system seconds meanwhile, when it runs here */
  readonly serverCpuSeconds?: number
  readonly detail?: Record<string, unknown>
}

export interface ProgressPoint {
  readonly t: number
  readonly mb: number
}

/** What the chart of an end-to-end run needs. */
export interface Trace {
  readonly seconds: number
  readonly samples: ReadonlyArray<Sample>
  readonly progress: ReadonlyArray<ProgressPoint>
}

/** Node flags and environment variables a process runs under. */
export interface CliRuntime {
  readonly nodeFlags: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
}

export interface BenchContext {
  readonly dir: string
  readonly env: NodeJS.ProcessEnv
  readonly bin: string
  readonly stageMain: string
  /** what the CLI's shebang sets (its V8 flags, malloc arenas), for stage 2' */
  readonly cli: CliRuntime
  readonly repeat: number
  /** run finalize's statements through psql on a twin schema too (stages 5a', 5c') */
  readonly bareSql: boolean
  /** the Python that runs stage 6, when one here has lxml and psycopg2 */
  readonly seedPython: string | undefined
}

let schemaCounter = 0

/** A fresh name for a schema of this bench process: `xml2pg_bench_<pid>_<n>`. */
const newSchemaName = () => `xml2pg_bench_${process.pid}_${++schemaCounter}`

// == children

const stageChild = (
  ctx: BenchContext,
  stage: string,
  args: Record<string, unknown>,
  runtime: CliRuntime = { nodeFlags: [], env: {} }
) =>
  Effect.gen(function*() {
    const measured = yield* runMeasured({
      args: [...runtime.nodeFlags, ctx.stageMain, stage, JSON.stringify(args)],
      env: { ...ctx.env, ...runtime.env },
      cwd: ctx.dir
    })
    const line = measured.stdout.split("\n").find((l) => l.startsWith(STAGE_MARK))
    if (measured.code !== 0 || line === undefined) {
      return yield* new BenchError({
        message: `stage ${stage} failed (exit ${measured.code ?? measured.signal}): ${tail(measured.stderr)}`
      })
    }
    const outcome = JSON.parse(line.slice(STAGE_MARK.length)) as StageOutcome
    return { measured, outcome }
  })

const fromOutcome = (measured: Measured, outcome: StageOutcome, rows: number): RunMeasure => ({
  seconds: outcome.seconds,
  processSeconds: measured.wallSeconds,
  rows,
  xmlBytes: outcome.xmlBytes,
  peakRssKb: Math.max(measured.peakRssKb, outcome.maxRssKb),
  ...(outcome.detail === undefined ? {} : { detail: outcome.detail })
})

/** `xml2pg <args>`; exit codes in `ok` count as success (ingest exits 3 when it rejected records). */
export const cli = (
  ctx: BenchContext,
  args: ReadonlyArray<string>,
  ok: ReadonlyArray<number> = [0],
  env: NodeJS.ProcessEnv = ctx.env
) =>
  Effect.gen(function*() {
    const measured = yield* runMeasured({ args: [ctx.bin, ...args], env, cwd: ctx.dir, executable: true })
    if (measured.code === null || !ok.includes(measured.code)) {
      return yield* new BenchError({
        message: `xml2pg ${args[0]} failed (exit ${measured.code ?? measured.signal}): ${tail(measured.stderr)}`
      })
    }
    return measured
  })

/** True when this build's CLI has a `finalize` command. */
export const finalizeAvailable = (ctx: BenchContext) =>
  runMeasured({ args: [ctx.bin, "finalize", "--help"], env: ctx.env, cwd: ctx.dir, executable: true }).pipe(
    Effect.map((m) => m.code === 0 && m.stdout.includes("keep-staging")),
    Effect.orElseSucceed(() => false)
  )

// == schemas

/** A fresh schema, initialised by `xml2pg init` (not timed), dropped when `use` ends. */
const withSchema = <A, E, R>(
  ctx: BenchContext,
  use: (schema: string) => Effect.Effect<A, E, R>,
  name = newSchemaName()
) =>
  Effect.acquireUseRelease(
    // the checkpoint writes out what earlier stages left dirty (a dropped schema's tables, the
    // last load), so the timed run does not pay for it
    cli(ctx, ["init", "--schema", name]).pipe(Effect.zipRight(checkpoint), Effect.as(name)),
    use,
    dropSchema
  )

/** Drops a schema the bench made; a failure is only logged. */
const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`drop schema if exists ${quoteIdent(schema)} cascade`)).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not drop schema ${schema}: ${e.message}`))
  )

/**
 * Copies the staging rows of `from` into the (empty) staging tables of `to`, reads them
 * once so both sides have their hint bits set (the copy itself read `from`), then checkpoints so
 * neither timed run starts with the other's dirty buffers to write; not timed.
 */
const copyStaging = (from: string, to: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const r of recordShapes(GroupsDocument)) {
      yield* sql.unsafe(`insert into ${qualify(to, r.stagingTable)} select * from ${qualify(from, r.stagingTable)}`)
      yield* sql.unsafe(`select count(*) from ${qualify(to, r.stagingTable)}`)
    }
    yield* checkpoint
  }).pipe(Effect.mapError((cause) => new BenchError({ message: `cannot copy staging rows: ${cause.message}`, cause })))

/** CHECKPOINT where the bench's role may (superuser or pg_checkpoint); else nothing. */
const checkpoint = Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("checkpoint")).pipe(Effect.ignore)

const lastRunRows = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<{ n: number }>(
      `select rows_loaded::float8 as n from ${quoteIdent(schema)}.xml2pg_run order by run_id desc limit 1`
    )
    return rows[0]?.n ?? 0
  }).pipe(Effect.mapError((cause) => new BenchError({ message: `cannot count loaded rows: ${cause.message}`, cause })))

// == log lines

const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)\s+\S+\s+(.*)$/

const logTimes = (measured: Measured, pattern: RegExp): Array<{ t: number; match: RegExpExecArray }> => {
  const out: Array<{ t: number; match: RegExpExecArray }> = []
  for (const { line } of measured.stderrLines) {
    const log = LOG_LINE.exec(line)
    if (log === null) continue
    const match = pattern.exec(log[2]!)
    if (match !== null) out.push({ t: (Date.parse(log[1]!) - measured.startedAt) / 1000, match })
  }
  return out
}

/** Ingest: spawn → "run N: loading" (modules, connect, run recorded). Finalize: spawn → "database: …" (modules). */
const startupOf = (measured: Measured): number | undefined =>
  (logTimes(measured, /^run \d+: loading/)[0] ?? logTimes(measured, /^database: /)[0])?.t

const progressOf = (measured: Measured): Array<ProgressPoint> =>
  logTimes(measured, /^progress: read ([\d.]+) MB/).map(({ match, t }) => ({ t, mb: Number(match[1]) }))

/** A run timed spawn to exit: the CLI's, or stage 6's Python (which logs no start-up line). */
const cliRun = (measured: Measured, input: InputFile, rows: number, detail?: Record<string, unknown>): RunMeasure => {
  const startup = startupOf(measured)
  return {
    seconds: measured.wallSeconds,
    processSeconds: measured.wallSeconds,
    ...(startup === undefined ? {} : { startupSeconds: startup }),
    rows,
    xmlBytes: input.bytes,
    peakRssKb: measured.peakRssKb,
    ...(measured.cpuSeconds === undefined ? {} : { cpuSeconds: measured.cpuSeconds }),
    ...(detail === undefined ? {} : { detail })
  }
}

/** `xml2pg ingest` with the server's CPU time meanwhile (its connections' included: see Cpu.ts). */
const ingestRun = (ctx: BenchContext, args: ReadonlyArray<string>, input: InputFile, schema: string) =>
  Effect.gen(function*() {
    const before = serverCpuSeconds()
    const measured = yield* cli(ctx, args, [0, 3])
    const after = serverCpuSeconds()
    const serverCpu = cpuBetween(before, after)
    const run: RunMeasure = {
      ...cliRun(measured, input, yield* lastRunRows(schema)),
      ...(serverCpu === undefined ? {} : { serverCpuSeconds: serverCpu })
    }
    return { measured, run }
  })

// == stages

export const rawSaxesStage = (ctx: BenchContext, input: InputFile, variant: SaxesVariant) =>
  stageChild(ctx, "raw", { file: input.file, variant }).pipe(
    Effect.map(({ measured, outcome }) => fromOutcome(measured, outcome, input.rows))
  )

/** `runtime`: Node flags and variables for the child, as the CLI's shebang sets them (stage 2') */
export const producerStage = (ctx: BenchContext, input: InputFile, runtime?: CliRuntime) =>
  stageChild(ctx, "producer", { file: input.file }, runtime).pipe(
    Effect.map(({ measured, outcome }) => fromOutcome(measured, outcome, outcome.rows))
  )

/** The batches of `input` encoded by the Producer into a file for stage 3 (not timed); removed with the scope. */
export const encodedBatches = (ctx: BenchContext, input: InputFile) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const encoded = path.join(ctx.dir, `encoded-${path.basename(input.file, ".xml")}-${process.pid}.bin`)
      yield* Effect.logInfo(`stage 3: encoding ${path.basename(input.file)} into ${path.basename(encoded)} (not timed)`)
      yield* stageChild(ctx, "encode", { file: input.file, out: encoded })
      return encoded
    }),
    (encoded) => Effect.sync(() => fs.rmSync(encoded, { force: true }))
  )

export const copyStage = (ctx: BenchContext, input: InputFile, encoded: string) =>
  withSchema(ctx, (schema) =>
    stageChild(ctx, "copy", {
      file: input.file,
      encoded,
      xmlBytes: input.bytes,
      schema,
      writers: defaults.writers,
      queueSize: defaults.queueSize
    }).pipe(Effect.map(({ measured, outcome }) => fromOutcome(measured, outcome, outcome.rows))))

export interface EndToEndRun {
  readonly ingest: RunMeasure
  readonly trace: Trace
  readonly finalizeFirst?: RunMeasure
  readonly ingestMerge?: RunMeasure
  readonly finalizeMerge?: RunMeasure
  readonly finalizeFirstSql?: RunMeasure
  readonly finalizeMergeSql?: RunMeasure
}

/** The finalize report printed at the end (the debug lines of each statement left out). */
const finalizeDetail = (measured: Measured) => ({
  output: tail(
    measured.stderrLines.map((l) => l.line).filter((l) => !l.includes("finalize statement ")).join("\n"),
    3000
  )
})

/** The bench's database URL, as given to every child. */
const urlOf = (ctx: BenchContext) => ctx.env["DATABASE_URL"] ?? ""

/** The rejects file of this bench process's ingests. */
const rejectsFile = (ctx: BenchContext) => path.join(ctx.dir, `rejects-${process.pid}.ndjson`)

/** `xml2pg ingest` of `file` into `schema` as the bench runs it, with `extra` options. */
const ingestArgs = (ctx: BenchContext, schema: string, file: string, ...extra: ReadonlyArray<string>) =>
  ["ingest", "--schema", schema, "--progress-every", "250", "--rejects", rejectsFile(ctx), ...extra, file]

/**
 * Stage 4, and stage 5 when `merge` is given: ingest, finalize, ingest of the merge file,
 * finalize again, all in one fresh schema.
 */
export const endToEndStage = (ctx: BenchContext, input: InputFile, merge: InputFile | undefined) =>
  withSchema(ctx, (schema) =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`stage 4: ingest ${path.basename(input.file)} into ${schema}`)
      const { measured: m4, run: ingest } = yield* ingestRun(ctx, ingestArgs(ctx, schema, input.file), input, schema)
      const rows4 = ingest.rows
      const run: EndToEndRun = {
        ingest,
        trace: { seconds: m4.wallSeconds, samples: m4.samples, progress: progressOf(m4) }
      }
      if (merge === undefined) return run
      yield* Effect.logInfo(`stage 5: finalize, ingest ${path.basename(merge.file)}, finalize`)
      // finalize logs each statement at debug level; psql replays them on a twin schema
      // holding the same staging rows (5a', 5c')
      const debugEnv = { ...ctx.env, XML2PG_LOG_LEVEL: "debug" }
      const twin = ctx.bareSql ? `${schema}_sql` : undefined
      const finalizeBoth = (input: InputFile, rows: number, which: "first-load" | "merge-load") =>
        Effect.gen(function*() {
          if (twin !== undefined) yield* copyStaging(schema, twin)
          const m = yield* cli(ctx, ["finalize", "--schema", schema], [0], debugEnv)
          const finalize = cliRun(m, input, rows, finalizeDetail(m))
          if (twin === undefined) return { finalize }
          yield* checkpoint
          const bare = yield* runBareSql({
            finalizeRun: m,
            schema,
            twin,
            scriptFile: path.join(ctx.dir, `latest-finalize-${which}.sql`),
            url: urlOf(ctx),
            env: ctx.env,
            cwd: ctx.dir
          })
          const sql: RunMeasure = {
            seconds: bare.measured.wallSeconds,
            processSeconds: bare.measured.wallSeconds,
            rows,
            xmlBytes: input.bytes,
            peakRssKb: bare.measured.peakRssKb,
            detail: {
              statements: bare.statements,
              finalizeStatementSeconds: bare.finalizeSqlMillis / 1000,
              psqlTiming: tail(bare.measured.stdout, 3000)
            }
          }
          return { finalize, sql }
        })
      const body = Effect.gen(function*() {
        const first = yield* finalizeBoth(input, rows4, "first-load")
        // the merge load starts from a settled server too (see `withSchema`)
        yield* checkpoint
        const { run: ingestMerge } = yield* ingestRun(ctx, ingestArgs(ctx, schema, merge.file), merge, schema)
        const rows5 = ingestMerge.rows
        const second = yield* finalizeBoth(merge, rows5, "merge-load")
        yield* Effect.sync(() => fs.rmSync(rejectsFile(ctx), { force: true }))
        const out: EndToEndRun = {
          ...run,
          finalizeFirst: first.finalize,
          ingestMerge,
          finalizeMerge: second.finalize,
          ...(first.sql === undefined ? {} : { finalizeFirstSql: first.sql }),
          ...(second.sql === undefined ? {} : { finalizeMergeSql: second.sql })
        }
        return out
      })
      return yield* (twin === undefined ? body : withSchema(ctx, () => body, twin))
    }))

/**
 * Stage 4 with one parser (`--parsers 1`), in a fresh schema: what the pipeline adds to a single
 * producer, where stage 4 may parse a large file in two ranges (`--parsers auto`).
 */
export const oneParserStage = (ctx: BenchContext, input: InputFile) =>
  withSchema(ctx, (schema) =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`stage 4p: ingest ${path.basename(input.file)} with one parser into ${schema}`)
      const { run } = yield* ingestRun(ctx, ingestArgs(ctx, schema, input.file, "--parsers", "1"), input, schema)
      return run
    }))

// == the seed's Python design

/** The seed's load phase in Python (lxml iterparse, psycopg2 COPY, writer processes). */
const SEED_SCRIPT = fileURLToPath(new URL("../../scripts/seed_baseline.py", import.meta.url))

/** The first Python here that has lxml and psycopg2 (Debian: python3-lxml, python3-psycopg2), if any. */
export const seedPython = (): string | undefined =>
  ["python3", "/usr/bin/python3"].find((python) => {
    try {
      return spawnSync(python, ["-c", "import lxml, psycopg2"], { stdio: "ignore" }).status === 0
    } catch {
      return false
    }
  })

interface SeedOutcome {
  readonly rows: number
  readonly rejects: number
  readonly batches: number
}

/**
 * Stage 6: the seed's Python design loading `input` into staging tables of a fresh schema,
 * with the same writer count and batch limits; timed like stage 4, spawn to exit. Its
 * writers are processes of their own: peak RSS is the largest process's.
 */
export const seedPythonStage = (ctx: BenchContext, input: InputFile, python: string) =>
  Effect.acquireUseRelease(
    Effect.map(checkpoint, () => newSchemaName()),
    (schema) =>
      Effect.gen(function*() {
        yield* Effect.logInfo(`stage 6: the seed's Python design loads ${path.basename(input.file)} into ${schema}`)
        const measured = yield* runMeasured({
          args: [
            python,
            SEED_SCRIPT,
            "--schema",
            schema,
            "--file",
            input.file,
            "--writers",
            String(defaults.writers),
            "--batch-rows",
            String(defaults.batchRows),
            "--batch-bytes",
            String(defaults.batchBytes)
          ],
          env: { ...ctx.env, ...libpqEnv(urlOf(ctx)) },
          cwd: ctx.dir,
          executable: true
        })
        const last = measured.stdout.trim().split("\n").pop() ?? ""
        if (measured.code !== 0 || !last.startsWith("{")) {
          return yield* new BenchError({
            message: `the seed's Python design failed (exit ${measured.code ?? measured.signal}): ${tail(measured.stderr)}`
          })
        }
        const outcome = JSON.parse(last) as SeedOutcome
        return cliRun(measured, input, outcome.rows, { rejects: outcome.rejects, batches: outcome.batches })
      }),
    dropSchema
  )
