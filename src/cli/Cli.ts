/**
 * The command tree. Options fall back to `Config` (environment, `.env`, `xml2pg.json` or
 * `xml2pg.ini`), so a flag wins over everything else.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type IngestSettings, parseParsers, SettingConfigs } from "../config/Settings.js"
import { Xml2Pg } from "../Xml2Pg.js"
import { connection, withDatabase } from "./Database.js"
import { dbCommand } from "./DbCommand.js"
import { finalizeCommand, finalizeConnections, finalizeOptions, runFinalize, statusCommand } from "./FinalizeCommand.js"
import { generateCommand } from "./GenerateCommand.js"
import { loggingOptions, resolveLogging, withLogging } from "./Logging.js"
import { chooseReporter, withMetricsEndpoint } from "./Progress.js"
import { StopSignal } from "./Signals.js"
import { printSummary, summaryOnFailure } from "./Summary.js"

/** The root command and its own options; a subcommand reads them with `yield* base`. */
const base = Command.make("xml2pg", loggingOptions)

// == commands

const initCommand = withDatabase(
  Command.make("init", connection, ({ schema }) =>
    Effect.gen(function*() {
      const loader = yield* Xml2Pg
      yield* loader.init(schema)
      yield* Effect.logInfo(`schema ${schema} is ready`)
    })).pipe(Command.withDescription("Create the staging, final and bookkeeping tables (idempotent)."))
)

const cleanCommand = withDatabase(
  Command.make("clean", connection, ({ schema }) =>
    Effect.gen(function*() {
      const loader = yield* Xml2Pg
      yield* loader.clean(schema)
      yield* Effect.logInfo(`staging tables in ${schema} emptied`)
    })).pipe(Command.withDescription("Empty the staging tables, the batch ledger and the rejects table.")),
  () => 3
)

const positive = (name: string, description: string, fallback: Config.Config<number>) =>
  Options.integer(name).pipe(
    Options.withDescription(description),
    Options.withFallbackConfig(fallback),
    Options.filterMap((n) => (n > 0 ? Option.some(n) : Option.none()), `--${name} must be a positive integer`)
  )

const ingestOptions = {
  ...connection,
  ...loggingOptions,
  writers: positive("writers", "concurrent COPY writers (env XML2PG_WRITERS)", SettingConfigs.writers).pipe(
    Options.withAlias("w")
  ),
  queueSize: positive("queue-size", "batches parsed ahead of the writers", SettingConfigs.queueSize),
  batchRows: positive("batch-rows", "rows per batch at most", SettingConfigs.batchRows),
  batchBytes: positive("batch-bytes", "approximate encoded bytes per batch at most", SettingConfigs.batchBytes),
  retries: Options.integer("retries").pipe(
    Options.withDescription("retries of a batch after a transient database error"),
    Options.withFallbackConfig(SettingConfigs.retries)
  ),
  retryBase: positive("retry-base", "first retry delay in ms (doubles, with jitter)", SettingConfigs.retryBaseMillis),
  retryMaxDelay: positive("retry-max-delay", "cap on one retry delay in ms", SettingConfigs.retryMaxDelayMillis),
  rejects: Options.text("rejects").pipe(
    Options.withDescription("NDJSON file rejected records are appended to"),
    Options.withFallbackConfig(SettingConfigs.rejectsPath)
  ),
  maxRecordBytes: positive("max-record-bytes", "reject a record larger than this", SettingConfigs.maxRecordBytes),
  progressEvery: positive("progress-every", "ms between progress lines", SettingConfigs.progressEveryMillis),
  strict: Options.boolean("strict").pipe(
    Options.withDescription("fail on the first malformed XML instead of skipping the broken record"),
    Options.withFallbackConfig(SettingConfigs.strict)
  ),
  parseWorker: Options.boolean("parse-worker", { negationNames: ["no-parse-worker"] }).pipe(
    Options.withDescription("parse on a worker thread (default); --no-parse-worker parses on the main thread"),
    Options.withFallbackConfig(SettingConfigs.parseWorker)
  ),
  parsers: Options.text("parsers").pipe(
    Options.withDescription(
      "parse workers for one plain file, each taking a byte range of it; 1: no split; " +
        "auto (default): 2 for 64 MiB or more on 2 CPUs or more"
    ),
    Options.filterMap((v) => Option.fromNullable(parseParsers(v)), "--parsers must be auto or in 1..64"),
    Options.withFallbackConfig(SettingConfigs.parsers)
  ),
  maxErrors: Options.integer("max-errors").pipe(
    Options.withDescription("stop the run after more rejected records than this (committed batches stay)"),
    Options.optional
  ),
  resume: Options.choice("resume", ["auto", "require", "never"]).pipe(
    Options.withDescription(
      "an unfinished run of the same file (path, size, content) is resumed: auto (default), require, never"
    ),
    Options.withDefault("auto" as const)
  ),
  metricsPort: Options.integer("metrics-port").pipe(
    Options.withDescription("serve Prometheus metrics at http://127.0.0.1:PORT/metrics while loading (0: a free port)"),
    Options.optional
  ),
  summaryJson: Options.text("summary-json").pipe(
    Options.withDescription("also write the final summary as JSON to this file"),
    Options.optional
  ),
  files: Args.text({ name: "file" }).pipe(
    Args.withDescription("XML file (plain or gzip), or - for stdin"),
    Args.atLeast(1)
  )
}

type IngestArgs = Command.Command.ParseConfig<typeof ingestOptions>

const settingsOf = (o: IngestArgs): IngestSettings => ({
  schema: o.schema,
  writers: o.writers,
  queueSize: o.queueSize,
  batchRows: o.batchRows,
  batchBytes: o.batchBytes,
  retries: o.retries,
  retryBaseMillis: o.retryBase,
  retryMaxDelayMillis: o.retryMaxDelay,
  rejectsPath: o.rejects,
  maxRecordBytes: o.maxRecordBytes,
  progressEveryMillis: o.progressEvery,
  strict: o.strict,
  maxErrors: Option.getOrElse(o.maxErrors, () => null),
  parseWorker: o.parseWorker,
  parsers: o.parsers
})

/** The load of `ingest` and `run`: progress, metrics endpoint, summary, exit code. Returns whether it finished. */
const ingestProgram = (o: IngestArgs) =>
  Effect.gen(function*() {
    const loader = yield* Xml2Pg
    const stop = yield* StopSignal
    // a fresh database (the embedded default) works without a separate `init`
    yield* loader.ensure(o.schema)
    const logging = resolveLogging(yield* base, o)
    const reporter = chooseReporter({ ...logging, everyMillis: o.progressEvery })
    const load = loader.ingest({ files: o.files, settings: settingsOf(o), stop: stop.requested, reporter, resume: o.resume })
    const summaries = yield* stop.graceful(
      Option.isSome(o.metricsPort) ? load.pipe(withMetricsEndpoint(o.metricsPort.value)) : load
    ).pipe(summaryOnFailure(o.summaryJson))
    yield* printSummary(summaries, { format: logging.format, jsonFile: o.summaryJson })
    if (summaries.some((s) => s.state === "interrupted")) {
      yield* Effect.logWarning("stopped before the end of input; what was committed stays in staging")
      yield* setExitCode(130)
      return false
    }
    if (summaries.some((s) => s.rejected > 0)) {
      yield* Effect.logWarning(`some records were rejected; see ${o.rejects}`)
      yield* setExitCode(3)
    }
    return true
  })

const withRootLogging = <Name extends string, R, E, A extends IngestArgs>(self: Command.Command<Name, R, E, A>) =>
  Command.transformHandler(self, (effect, o) => Effect.flatMap(base, (root) => withLogging(resolveLogging(root, o))(effect)))

const ingestCommand = withDatabase(
  Command.make("ingest", ingestOptions, ingestProgram).pipe(
    Command.withDescription("Stream XML files into the staging tables."),
    withRootLogging
  ),
  // writers, the SqlClient, and two lock sessions
  (o) => o.writers + 4
)

const runCommand = withDatabase(
  Command.make("run", { ...ingestOptions, ...finalizeOptions }, (o) =>
    Effect.gen(function*() {
      if (yield* ingestProgram(o)) yield* runFinalize(o.schema, o)
    })).pipe(
      Command.withDescription("ingest + finalize in one command (creating the tables if needed): the common case."),
      withRootLogging
    ),
  (o) => Math.max(o.writers + 4, finalizeConnections)
)

const setExitCode = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const root = base.pipe(
  Command.withDescription("Stream XML files of any size into PostgreSQL."),
  Command.withSubcommands([
    initCommand,
    ingestCommand,
    finalizeCommand,
    runCommand,
    statusCommand,
    cleanCommand,
    generateCommand,
    dbCommand
  ]),
  Command.transformHandler((effect, root) => withLogging(resolveLogging(root))(effect))
)

export const run = Command.run(root, { name: "xml2pg", version: "0.1.0" })
