/**
 * `npm run bench`: the parser ceiling, the producer alone, the database ceiling, the
 * end-to-end CLI ingest and finalize, measured on the same cached input files, each run in
 * its own child process. Prints a table per size and writes JSON and SVG under `--dir`.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as PlatformConfigProvider from "@effect/platform/PlatformConfigProvider"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Console from "effect/Console"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { LoggingLive } from "../cli/Logging.js"
import { defaults } from "../config/Settings.js"
import { describeUrl, resolveDatabaseUrl } from "../db/Connection.js"
import { DatabaseLive } from "../db/PgPool.js"
import { renderChart } from "./Chart.js"
import { ensureInput, groupsFor, type InputFile, warmPageCache } from "./Inputs.js"
import { formatSize, medianIndex, type SizeReport, sizeReport, skipped, type StageReport, summarize } from "./Report.js"
import { psqlAvailable } from "./BareSql.js"
import {
  type BenchContext,
  type CliRuntime,
  copyStage,
  encodedBatches,
  type EndToEndRun,
  endToEndStage,
  finalizeAvailable,
  oneParserStage,
  producerStage,
  rawSaxesStage,
  type RunMeasure,
  seedPython,
  seedPythonStage,
  type StageId,
  type Trace
} from "./Stages.js"

const here = path.dirname(fileURLToPath(import.meta.url))

// == options

const positiveList = (text: string): Option.Option<Array<number>> => {
  const values = text.split(",").map((s) => Number(s.trim()))
  return values.every((n) => Number.isFinite(n) && n > 0) ? Option.some(values) : Option.none()
}

const sizes = Options.text("sizes").pipe(
  Options.withDescription("input sizes in MB, comma-separated (default 100,1000; with --quick 20)"),
  Options.filterMap(positiveList, "--sizes takes positive numbers, e.g. 100,1000"),
  Options.optional
)

const quick = Options.boolean("quick").pipe(
  Options.withDescription("one ~20 MB file, one run per stage: under a minute")
)

const repeat = Options.integer("repeat").pipe(
  Options.withDescription("rounds, each running every stage once, in turn; the table shows medians"),
  Options.withDefault(1),
  Options.filterMap((n) => (n > 0 ? Option.some(n) : Option.none()), "--repeat must be a positive integer")
)

const ALL_STAGES = [1, 2, 3, 4, 5, 6] as const

const stages = Options.text("stages").pipe(
  Options.withDescription(
    "stages to run, e.g. 1,2,4 (1 raw saxes, 2 producer, 3 COPY only, 4 ingest, 5 finalize, 6 the seed's Python design)"
  ),
  Options.withDefault("1,2,3,4,5,6"),
  Options.filterMap((text) => {
    const picked = text.split(",").map((s) => Number(s.trim()))
    return picked.every((n) => (ALL_STAGES as ReadonlyArray<number>).includes(n))
      ? Option.some(new Set(picked))
      : Option.none()
  }, "--stages takes numbers from 1 to 6, e.g. 1,2,4")
)

const dir = Options.text("dir").pipe(
  Options.withDescription("where inputs are cached and results written"),
  Options.withDefault(".bench")
)

const seed = Options.integer("seed").pipe(
  Options.withDescription("generator seed of the main file; the merge file uses seed + 1"),
  Options.withDefault(1)
)

const eventsPerGroup = Options.integer("events-per-group").pipe(
  Options.withDescription("events in each generated group"),
  Options.withDefault(2)
)

// == run

const NO_SEED_PYTHON = "no python3 with lxml and psycopg2 here (Debian: apt install python3-lxml python3-psycopg2)"

interface BenchOptions {
  readonly sizes: Option.Option<Array<number>>
  readonly quick: boolean
  readonly repeat: number
  readonly stages: Set<number>
  readonly dir: string
  readonly seed: number
  readonly eventsPerGroup: number
}

/** The environment of every child: the bench's database, and no XML2PG_* overrides of the defaults. */
const childEnv = (url: Redacted.Redacted<string>): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("XML2PG_")) env[k] = v
  env["DATABASE_URL"] = Redacted.value(url)
  env["XML2PG_LOG_LEVEL"] = "info"
  return env
}

const describeInput = (i: InputFile) => ({ file: i.file, bytes: i.bytes, groups: i.groups, rows: i.rows })

const round = (n: number, digits: number) => Number(n.toFixed(digits))

/** The median end-to-end run over time, for plotting elsewhere: [seconds, MB read] and [seconds, RSS MB]. */
const compactTrace = (trace: Trace) => ({
  progressMb: trace.progress.map((p) => [round(p.t, 3), p.mb]),
  rssMb: trace.samples.map((s) => [round(s.t, 3), round(s.rssKb / 1024, 1)]),
  readMb: trace.samples.map((s) => [round(s.t, 3), round(s.rchar / 1e6, 2)])
})

const stamp = () => new Date().toISOString().replace(/[:.]/g, "-")

const benchOneSize = (ctx: BenchContext, o: BenchOptions, sizeMb: number, hasFinalize: boolean, runStamp: string) =>
  Effect.gen(function*() {
    const groups = groupsFor(sizeMb, o.eventsPerGroup, o.seed)
    const input = yield* ensureInput(ctx.dir, groups, o.eventsPerGroup, o.seed)
    const wantMerge = o.stages.has(5) && hasFinalize
    const merge = wantMerge
      ? yield* ensureInput(ctx.dir, Math.round(groups * 1.25), o.eventsPerGroup, o.seed + 1)
      : undefined
    yield* warmPageCache(input.file)
    if (merge !== undefined) yield* warmPageCache(merge.file)
    // Rounds, each running every stage once: a slow spell of a shared machine then touches
    // every stage's median alike, not one stage's whole series.
    const measures = new Map<StageId, Array<RunMeasure>>()
    const add = (id: StageId, m: RunMeasure) => measures.set(id, [...(measures.get(id) ?? []), m])
    const runs: Array<EndToEndRun> = []
    const encoded = o.stages.has(3) ? yield* encodedBatches(ctx, input) : undefined
    for (let round = 1; round <= ctx.repeat; round++) {
      const of = ctx.repeat > 1 ? ` (round ${round} of ${ctx.repeat})` : ""
      if (o.stages.has(1)) {
        yield* Effect.logInfo(`stage 1: raw saxes over ${path.basename(input.file)}${of}`)
        add("1", yield* rawSaxesStage(ctx, input, "default"))
        add("1n", yield* rawSaxesStage(ctx, input, "as-producer"))
      }
      if (o.stages.has(2)) {
        yield* Effect.logInfo(`stage 2: producer over ${path.basename(input.file)}${of}`)
        add("2", yield* producerStage(ctx, input))
        add("2f", yield* producerStage(ctx, input, ctx.cli))
      }
      if (encoded !== undefined) add("3", yield* copyStage(ctx, input, encoded))
      if (o.stages.has(4) || o.stages.has(5)) runs.push(yield* endToEndStage(ctx, input, merge))
      if (o.stages.has(4)) add("4p", yield* oneParserStage(ctx, input))
      // set only when stage 6 was asked for and a Python here can run it
      if (ctx.seedPython !== undefined) add("6", yield* seedPythonStage(ctx, input, ctx.seedPython))
    }
    const out: Array<StageReport> = []
    for (const id of ["1", "1n", "2", "2f", "3"] as const) {
      const m = measures.get(id)
      if (m !== undefined) out.push(summarize(id, m))
    }
    let chart: string | undefined
    let trace: Trace | undefined
    if (runs.length > 0) {
      out.push(summarize("4", runs.map((r) => r.ingest)))
      const oneParser = measures.get("4p")
      if (oneParser !== undefined) out.push(summarize("4p", oneParser))
      if (o.stages.has(5)) {
        if (merge === undefined) {
          for (const id of ["5a", "5as", "5b", "5c", "5cs"] as const) out.push(skipped(id, "finalize not available"))
        } else {
          const pick = (f: (r: EndToEndRun) => RunMeasure | undefined) =>
            runs.flatMap((r) => {
              const m = f(r)
              return m === undefined ? [] : [m]
            })
          const bare = (id: "5as" | "5cs", f: (r: EndToEndRun) => RunMeasure | undefined) =>
            ctx.bareSql ? summarize(id, pick(f)) : skipped(id, "psql not found")
          out.push(summarize("5a", pick((r) => r.finalizeFirst)))
          out.push(bare("5as", (r) => r.finalizeFirstSql))
          out.push(summarize("5b", pick((r) => r.ingestMerge)))
          out.push(summarize("5c", pick((r) => r.finalizeMerge)))
          out.push(bare("5cs", (r) => r.finalizeMergeSql))
        }
      }
      const chosen = runs[medianIndex(runs.map((r) => r.ingest))]!
      trace = chosen.trace
      const references = out
        .filter((s) => s.id === "1" || s.id === "2")
        .map((s) => ({ label: s.id === "1" ? "raw saxes" : "producer alone", mbPerSecond: s.mbPerSecond }))
      const svg = renderChart({
        title: `xml2pg ingest of ${(input.bytes / 1e6).toFixed(0)} MB: MB/s and RSS over time`,
        trace: chosen.trace,
        references
      })
      chart = path.join(ctx.dir, `e2e-${sizeMb}MB-${runStamp}.svg`)
      fs.writeFileSync(chart, svg)
      fs.writeFileSync(path.join(ctx.dir, `latest-e2e-${sizeMb}MB.svg`), svg)
    }
    if (o.stages.has(6)) {
      out.push(ctx.seedPython === undefined ? skipped("6", NO_SEED_PYTHON) : summarize("6", measures.get("6") ?? []))
    }
    const report = {
      ...sizeReport(
        sizeMb,
        describeInput(input),
        merge === undefined ? undefined : describeInput(merge),
        out,
        chart,
        os.cpus().length
      ),
      ...(trace === undefined ? {} : { e2eTrace: compactTrace(trace) })
    }
    yield* Console.log(formatSize(report, ctx.repeat) + "\n")
    return report
  })

const serverVersion = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ server_version: string }>`show server_version`
  return rows[0]?.server_version ?? "unknown"
}).pipe(Effect.orElseSucceed(() => "unknown"))

const bench = (o: BenchOptions) =>
  Effect.gen(function*() {
    const benchDir = path.resolve(o.dir)
    fs.mkdirSync(benchDir, { recursive: true })
    const sizeList = Option.getOrElse(o.sizes, () => (o.quick ? [20] : [100, 1000]))
    const target = yield* resolveDatabaseUrl({ embeddedDir: ".xml2pg" })
    yield* Effect.logInfo(`database: ${describeUrl(target.url)}${target.embedded ? " (embedded)" : ""}`)
    yield* run(o, benchDir, sizeList, target.url).pipe(
      Effect.provide(DatabaseLive({ url: target.url, maxConnections: 2, applicationName: "xml2pg-bench" }))
    )
  }).pipe(Effect.scoped)

/**
 * What the shebang of the CLI at `bin` (`#!/usr/bin/env -S NAME=value node --flag …`) sets:
 * the variables before `node`, the Node flags after it.
 */
const shebangRuntime = (bin: string): CliRuntime => {
  const first = fs.readFileSync(bin, "utf8").split("\n", 1)[0]!
  const words = first.split(/\s+/)
  const node = words.indexOf("node")
  const assignments = words.slice(0, node).filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w))
  return {
    nodeFlags: words.slice(node + 1).filter((w) => w.startsWith("--")),
    env: Object.fromEntries(assignments.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]))
  }
}

const run = (o: BenchOptions, benchDir: string, sizeList: ReadonlyArray<number>, url: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const bin = path.resolve(here, "../bin.js")
    const ctx: BenchContext = {
      dir: benchDir,
      env: childEnv(url),
      bin,
      stageMain: path.resolve(here, "StageMain.js"),
      cli: shebangRuntime(bin),
      repeat: o.quick ? 1 : o.repeat,
      bareSql: o.stages.has(5) && psqlAvailable(),
      seedPython: o.stages.has(6) ? seedPython() : undefined
    }
    if (o.stages.has(6) && ctx.seedPython === undefined) yield* Effect.logWarning(`stage 6 skipped: ${NO_SEED_PYTHON}`)
    const hasFinalize = o.stages.has(5) ? yield* finalizeAvailable(ctx) : false
    if (o.stages.has(5) && !hasFinalize) {
      yield* Effect.logWarning("stage 5 skipped: finalize not available in this build")
    }
    const runStamp = stamp()
    const startedAt = new Date().toISOString()
    const loadBefore = os.loadavg()
    const postgres = yield* serverVersion
    const reports: Array<SizeReport> = []
    for (const size of sizeList) {
      reports.push(yield* Effect.scoped(benchOneSize(ctx, o, size, hasFinalize, runStamp)))
    }
    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? "unknown",
        memoryMb: Math.round(os.totalmem() / 2 ** 20),
        node: process.version,
        postgres,
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg()
      },
      options: {
        sizesMb: sizeList,
        quick: o.quick,
        repeat: ctx.repeat,
        stages: [...o.stages].sort(),
        seed: o.seed,
        eventsPerGroup: o.eventsPerGroup,
        finalizeAvailable: hasFinalize
      },
      settings: {
        writers: defaults.writers,
        queueSize: defaults.queueSize,
        batchRows: defaults.batchRows,
        batchBytes: defaults.batchBytes
      },
      sizes: reports
    }
    const json = JSON.stringify(result, null, 2) + "\n"
    const file = path.join(benchDir, `results-${runStamp}.json`)
    fs.writeFileSync(file, json)
    fs.writeFileSync(path.join(benchDir, "latest.json"), json)
    yield* Console.log(
      `results: ${file} (also latest.json); load average ${loadBefore.map((n) => n.toFixed(2)).join(" ")} → ` +
        `${os.loadavg().map((n) => n.toFixed(2)).join(" ")} on ${os.cpus().length} CPUs`
    )
  })

const command = Command.make(
  "bench",
  { sizes, quick, repeat, stages, dir, seed, eventsPerGroup },
  bench
).pipe(Command.withDescription("Measure xml2pg stage by stage; see docs/benchmarks.md."))

const ConfigLive = Layer.unwrapEffect(
  PlatformConfigProvider.fromDotEnv(".env").pipe(
    Effect.map((dotEnv) => Layer.setConfigProvider(ConfigProvider.fromEnv().pipe(ConfigProvider.orElse(() => dotEnv)))),
    Effect.orElseSucceed(() => Layer.empty)
  )
)

Command.run(command, { name: "xml2pg-bench", version: "0.1.0" })(process.argv).pipe(
  Effect.provide(ConfigLive),
  Effect.provide(NodeContext.layer),
  Effect.provide(LoggingLive),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
