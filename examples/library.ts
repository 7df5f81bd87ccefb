/**
 * An Effect app that embeds xml2pg: it brings its own PgClient layer, reads the load's
 * settings as an Effect `Config`, shows progress its own way, serves `/metrics`, and runs
 * loads in its own runtime.
 *
 * Run it with `DATABASE_URL=postgres://… node dist-examples/library.js data.xml` after
 * compiling, or import `makeAppRuntime` and `loadFiles` from your own code.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, ConfigProvider, Effect, Layer, ManagedRuntime, Schedule } from "effect"
import { IngestConfig, type IngestSummary, MetricsServer, PgPool, type ProgressReporter, Xml2Pg } from "xml2pg"

// == layers

/** The app's own database client, configured the app's way. */
export const AppSqlLive = PgClient.layerConfig({
  url: Config.redacted("DATABASE_URL"),
  maxConnections: Config.succeed(2),
  applicationName: Config.succeed("my-app")
})

/**
 * COPY streams need raw `pg` connections: a pool with one per writer, plus a few for the
 * run ledger and its locks.
 */
export const CopyPoolLive = Layer.unwrapEffect(Effect.gen(function*() {
  const url = yield* Config.redacted("DATABASE_URL")
  const { writers } = yield* IngestConfig
  return PgPool.layer({ url, maxConnections: writers + 4, applicationName: "my-app-copy" })
}))

/** The loader over the app's PgClient and the COPY pool. */
export const AppLive = Xml2Pg.Default.pipe(Layer.provideMerge(Layer.mergeAll(AppSqlLive, CopyPoolLive)))

// == program

/** The app's own progress display: one log line a second, for as long as a file loads. */
const everySecond: ProgressReporter = (snapshot) =>
  Effect.suspend(() => {
    const s = snapshot()
    return Effect.logInfo(`${s.file}: ${s.records} records read, ${s.rowsLoaded} rows loaded, ${s.rejected} rejected`)
  }).pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped, Effect.asVoid)

/**
 * Creates the tables if needed, loads `files`, then counts what was staged with the app's
 * own SqlClient.
 */
export const loadFiles = (files: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const loader = yield* Xml2Pg
    const sql = yield* SqlClient.SqlClient
    const settings = yield* IngestConfig
    yield* loader.init(settings.schema)
    const summaries: ReadonlyArray<IngestSummary> = yield* loader.ingest({ files, settings, reporter: everySecond })
    const staged: Array<number> = []
    for (const summary of summaries) {
      const rows = yield* sql<{ n: number }>`
        select (select count(*) from ${sql(settings.schema)}.stg_group_event where run_id = ${summary.runId})::int
             + (select count(*) from ${sql(settings.schema)}.stg_event where run_id = ${summary.runId})::int as n`
      staged.push(rows[0]!.n)
      yield* Effect.logInfo(`${summary.file}: run ${summary.runId} staged ${rows[0]!.n} rows`)
    }
    return { summaries, staged }
  })

// == runtime

/**
 * The app's own runtime: built once, used for as many loads as it likes, disposed at the
 * end. `/metrics` is served on 127.0.0.1 for as long as the runtime lives.
 */
export const makeAppRuntime = (options: {
  readonly config?: ConfigProvider.ConfigProvider
  readonly metricsPort?: number
} = {}) =>
  ManagedRuntime.make(
    Layer.mergeAll(AppLive, MetricsServer.layer({ port: options.metricsPort ?? 9464 })).pipe(
      Layer.provide(Layer.setConfigProvider(options.config ?? ConfigProvider.fromEnv()))
    )
  )

export const main = async (files: ReadonlyArray<string>) => {
  const runtime = makeAppRuntime()
  try {
    return await runtime.runPromise(loadFiles(files))
  } finally {
    await runtime.dispose()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${error}\n`)
      process.exit(1)
    }
  )
}
