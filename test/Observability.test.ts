/**
 * What a person sees around a load: progress lines off a terminal, the live line on one
 * (under a pseudo-terminal from util-linux `script`), JSON logs, --quiet, the summary and
 * --summary-json, and the Prometheus endpoint scraped while a load runs.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { loggingFromArgs } from "../src/cli/Logging.js"
import { clock, makeRates, renderProgressLine } from "../src/cli/Progress.js"
import { summaryJson } from "../src/cli/Summary.js"
import * as MetricsServer from "../src/metrics/MetricsServer.js"
import type { ProgressSnapshot } from "../src/pipeline/Progress.js"
import { newSchema, tmpDir, userEnv, writeXml } from "./utils.js"

const bin = path.resolve("dist/bin.js")
const url = inject("databaseUrl")
const schema = newSchema()
const dir = tmpDir()
const small = path.join(dir, "small.xml")
const large = path.join(dir, "large.xml")

const env = (): NodeJS.ProcessEnv => userEnv({ DATABASE_URL: url })

const xml2pg = (args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [bin, ...args], { env: env(), cwd: dir, encoding: "utf8", timeout: 120_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const ingestArgs = (file: string, ...extra: Array<string>) => [
  "ingest",
  "--schema",
  schema,
  "--rejects",
  path.join(dir, "rejects.ndjson"),
  ...extra,
  file
]

const hasCommand = (name: string) => spawnSync("sh", ["-c", `command -v ${name}`]).status === 0

beforeAll(() => {
  assert.isTrue(fs.existsSync(bin), "dist/bin.js is missing: run `npm run build` (npm test does)")
  writeXml(small, { groups: 20_000, eventsPerGroup: 3, seed: 5 })
  writeXml(large, { groups: 60_000, eventsPerGroup: 3, seed: 6 })
  const init = xml2pg(["init", "--schema", schema])
  assert.strictEqual(init.code, 0, init.stderr)
})

afterAll(async () => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`drop schema if exists "${schema}" cascade`)
  await client.end()
})

// == a minimal terminal: what the screen shows after the bytes a program wrote

const screen = (raw: string): Array<string> => {
  const lines = [""]
  let row = 0
  let col = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!
    if (c === "\x1b") {
      const m = /^\x1b\[([0-9;]*)([A-Za-z])/.exec(raw.slice(i, i + 16))
      if (m !== null) {
        if (m[2] === "K" && m[1] === "2") lines[row] = ""
        i += m[0].length - 1
        continue
      }
    }
    if (c === "\r") col = 0
    else if (c === "\n") {
      row++
      if (lines.length <= row) lines.push("")
    } else {
      const line = lines[row]!.padEnd(col)
      lines[row] = line.slice(0, col) + c + line.slice(col + 1)
      col++
    }
  }
  return lines.filter((l, i) => l !== "" || i < lines.length - 1)
}

const snapshot = (over: Partial<ProgressSnapshot> = {}): ProgressSnapshot => ({
  file: "/data/big.xml",
  runId: 1,
  sourceBytes: 250e6,
  sourceSize: 1000e6,
  xmlBytes: 250e6,
  records: 1_000_000,
  rejected: 7,
  rowsLoaded: 900_000,
  batches: 90,
  retries: 0,
  queued: 3,
  queueSize: 4,
  writersBusy: 2,
  writers: 2,
  elapsedSeconds: 10,
  ...over
})

describe("progress line, logging options, summary JSON (units)", () => {
  it("renders bytes of total, percent, MB/s, records/s, rejects, queue, writers and ETA", () => {
    const rates = makeRates()
    rates(snapshot({ elapsedSeconds: 0, sourceBytes: 0, records: 0 }))
    const r = rates(snapshot())
    assert.strictEqual(Math.round(r.bytesPerSecond), 25e6)
    assert.strictEqual(Math.round(r.etaSeconds!), 30)
    const line = renderProgressLine(snapshot(), r, 200)
    assert.strictEqual(
      line,
      "[#####...............] big.xml  250.0/1000.0 MB 25.0%  25.0 MB/s  100.0k rec/s  rejects 7  queue 3/4  writers 2/2  " +
        "0:10 elapsed  ETA 0:30"
    )
  })

  it("fits the terminal by dropping the least useful parts first, never the ETA", () => {
    const r = { bytesPerSecond: 25e6, recordsPerSecond: 1e5, etaSeconds: 3725 }
    const line = renderProgressLine(snapshot(), r, 80)
    assert.isAtMost(line.length, 79)
    assert.include(line, "ETA 1:02:05")
    assert.include(line, "25.0%")
    assert.notInclude(line, "elapsed")
    assert.isAtMost(renderProgressLine(snapshot(), r, 20).length, 19)
    const stdin = renderProgressLine(snapshot({ file: "-", sourceSize: undefined }), r, undefined)
    assert.notInclude(stdin, "ETA")
    assert.include(stdin, "250.0 MB  25.0 MB/s")
    assert.strictEqual(clock(59.6), "1:00")
  })

  it("reads --log-format and --quiet from anywhere in argv, and the environment", () => {
    assert.deepStrictEqual(loggingFromArgs(["ingest", "--log-format", "json", "f.xml"], {}), {
      format: "json",
      quiet: false
    })
    assert.deepStrictEqual(loggingFromArgs(["--log-format=json", "-q", "init"], {}), { format: "json", quiet: true })
    assert.deepStrictEqual(loggingFromArgs(["init"], { XML2PG_LOG_FORMAT: "json", XML2PG_QUIET: "true" }), {
      format: "json",
      quiet: true
    })
    assert.deepStrictEqual(loggingFromArgs(["--log-format", "text"], { XML2PG_LOG_FORMAT: "json" }), {
      format: "text",
      quiet: false
    })
  })

  it("summary JSON adds up files and keeps rejects by reason", () => {
    const one = {
      file: "a.xml",
      runId: 1,
      state: "done" as const,
      records: 10,
      rowsLoaded: 8,
      rowsByTable: { stg_event: 8 },
      rejected: 2,
      rejectsByKind: { "event: bad attribute id": 2 },
      batches: 1,
      resumedBatches: 0,
      retries: 0,
      xmlBytes: 2e6,
      sourceBytes: 1e6,
      seconds: 2
    }
    const json = summaryJson([one, { ...one, runId: 2, state: "interrupted" }])
    assert.strictEqual(json.state, "interrupted")
    assert.deepStrictEqual(json.totals.rejectsByKind, { "event: bad attribute id": 4 })
    assert.strictEqual(json.totals.records, 20)
    assert.strictEqual(json.totals.mbPerSecond, 1)
    assert.isAbove(json.peakRssBytes, 1e6)
    assert.deepStrictEqual(summaryJson([], "boom").state, "failed")
  })
})

describe("Prometheus exposition", () => {
  it.effect("counters, gauges and histograms with escaped labels and help", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("obs_test_things", { description: "things\nseen", incremental: true }).pipe(
        Metric.taggedWithLabels([MetricLabel.make("path", "a\"b\\c\nd")])
      )
      const gauge = Metric.gauge("obs_test_level")
      const histogram = Metric.histogram("obs_test_seconds", MetricBoundaries.fromIterable([1, 2]), "time")
      yield* Metric.incrementBy(counter, 3)
      yield* Metric.set(gauge, -2.5)
      yield* Metric.update(histogram, 0.5)
      yield* Metric.update(histogram, 1.5)
      yield* Metric.update(histogram, 99)
      const text = MetricsServer.prometheusText(
        (yield* Metric.snapshot).filter((p) => p.metricKey.name.startsWith("obs_test_"))
      )
      assert.include(
        text,
        "# HELP obs_test_things_total things\\nseen\n# TYPE obs_test_things_total counter\n" +
          "obs_test_things_total{path=\"a\\\"b\\\\c\\nd\"} 3\n"
      )
      assert.include(text, "# TYPE obs_test_level gauge\nobs_test_level -2.5\n")
      assert.include(
        text,
        "# HELP obs_test_seconds time\n# TYPE obs_test_seconds histogram\n" +
          "obs_test_seconds_bucket{le=\"1\"} 1\nobs_test_seconds_bucket{le=\"2\"} 2\nobs_test_seconds_bucket{le=\"+Inf\"} 3\n" +
          "obs_test_seconds_sum 101\nobs_test_seconds_count 3\n"
      )
    }))

  it.live("serves /metrics on 127.0.0.1 and 404 elsewhere; promtool accepts it when installed", () =>
    Effect.gen(function*() {
      const address = yield* MetricsServer.serve({ port: 0 })
      const base = `http://127.0.0.1:${address.port}`
      const response = yield* Effect.promise(() => fetch(`${base}/metrics`))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), MetricsServer.contentType)
      const body = yield* Effect.promise(() => response.text())
      assert.match(body, /^process_resident_memory_bytes \d+$/m)
      assert.strictEqual((yield* Effect.promise(() => fetch(`${base}/nope`))).status, 404)
      // every series the Grafana dashboard queries is exposed, from the first scrape on
      const dashboard = JSON.parse(fs.readFileSync("docs/monitoring/grafana/dashboards/xml2pg-dashboard.json", "utf8"))
      const queried = new Set<string>()
      for (const panel of dashboard.panels) {
        for (const target of panel.targets) {
          for (const [name] of target.expr.matchAll(/\b(xml2pg|process|nodejs)_[a-z_]+/g)) queried.add(name)
        }
      }
      assert.isAtLeast(queried.size, 10)
      for (const name of queried) assert.match(body, new RegExp(`^${name}(\\{| )`, "m"), name)
      if (hasCommand("promtool")) {
        const check = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" })
        // exit 1 is a parse error; 3 is lint, here only about Effect's own fiber metrics having no HELP
        assert.notStrictEqual(check.status, 1, check.stdout + check.stderr)
        const lint = (check.stdout + check.stderr).split("\n").filter((l) => /^(xml2pg_|process_|nodejs_)/.test(l))
        assert.deepStrictEqual(lint, [])
      }
    }).pipe(Effect.scoped))
})

describe("xml2pg ingest output", () => {
  it("off a terminal: periodic progress lines, the summary table, no escape codes, nothing on stdout", () => {
    const summaryFile = path.join(dir, "summary.json")
    const r = xml2pg(ingestArgs(small, "--progress-every", "100", "--batch-rows", "5000", "--summary-json", summaryFile))
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout, "")
    assert.notInclude(r.stderr, "\x1b")
    const progress = r.stderr.split("\n").filter((l) => / INFO  progress: read [\d.]+ MB \([\d.]+%\)/.test(l))
    assert.isAtLeast(progress.length, 2, r.stderr)
    assert.match(r.stderr, /^records\s+80000$/m)
    assert.match(r.stderr, /^batches\s+\d+$/m)
    assert.match(r.stderr, /^throughput\s+[\d.]+ MB\/s, \d+ records\/s$/m)
    assert.match(r.stderr, /^peak RSS\s+\d+ MB$/m)
    const json = JSON.parse(fs.readFileSync(summaryFile, "utf8"))
    assert.strictEqual(json.state, "done")
    assert.strictEqual(json.totals.records, 80_000)
    assert.strictEqual(json.totals.rowsLoaded, 80_000)
    assert.strictEqual(json.files[0].rowsByTable.stg_event, 60_000)
    assert.isAbove(json.peakRssBytes, 0)
  })

  it("--log-format json: every stderr line is a JSON object, progress has its numbers as fields", () => {
    const r = xml2pg(ingestArgs(small, "--log-format", "json", "--progress-every", "100"))
    assert.strictEqual(r.code, 0, r.stderr)
    const entries = r.stderr.trim().split("\n").map((l) => JSON.parse(l))
    const progress = entries.filter((e) => e.message === "progress")
    assert.isAtLeast(progress.length, 2, r.stderr)
    for (const p of progress) {
      assert.strictEqual(p.level, "info")
      assert.isNumber(p.sourceBytes)
      assert.isNumber(p.records)
      assert.isNumber(p.queueSize)
    }
    const summary = entries.find((e) => e.message === "summary")
    assert.strictEqual(summary.totals.records, 80_000)
  })

  it("--quiet: only errors and the final summary", () => {
    const ok = xml2pg(ingestArgs(small, "--quiet"))
    assert.strictEqual(ok.code, 0, ok.stderr)
    assert.notMatch(ok.stderr, / (INFO|WARN) /)
    assert.match(ok.stderr, /^file\s+.*small\.xml\nrun\s+\d+ \(done\)$/m)
    const failed = xml2pg(["--quiet", ...ingestArgs(path.join(dir, "missing.xml"))])
    assert.strictEqual(failed.code, 1)
    assert.match(failed.stderr.trim(), /^\S+ ERROR xml2pg: cannot read .*missing\.xml/)
  })

  it("--metrics-port: /metrics scraped during the run shows the counters growing", async () => {
    const child = spawn(
      process.execPath,
      [bin, ...ingestArgs(large, "--metrics-port", "0", "--writers", "1", "--batch-rows", "4000")],
      { env: env(), cwd: dir }
    )
    let stderr = ""
    child.stderr.on("data", (b) => (stderr += b))
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
    let done = false
    void exited.then(() => (done = true))
    const seen: Array<number> = []
    let body = ""
    while (!done) {
      const port = /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(stderr)?.[1]
      if (port !== undefined) {
        const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "")
        const rows = /^xml2pg_rows_loaded_total (\d+)$/m.exec(text)?.[1]
        if (rows !== undefined) {
          seen.push(Number(rows))
          body = text
        }
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.strictEqual(await exited, 0, stderr)
    const distinct = [...new Set(seen)]
    assert.isAtLeast(distinct.length, 3, `rows loaded seen: ${seen.join(",")}`)
    assert.deepStrictEqual(distinct, [...distinct].sort((a, b) => a - b))
    for (const name of ["xml2pg_records_read_total", "xml2pg_batches_committed_total", "xml2pg_xml_bytes_total"]) {
      assert.match(body, new RegExp(`^# TYPE ${name} counter\n${name} \\d+$`, "m"))
    }
    assert.match(body, /^# TYPE xml2pg_queue_depth gauge$/m)
    assert.match(body, /^# TYPE xml2pg_writers_busy gauge$/m)
    assert.match(body, /^xml2pg_batch_write_seconds_bucket\{le="\+Inf"\} \d+$/m)
  })
})

const pty = hasCommand("script") ? describe : describe.skip

pty("xml2pg ingest on a terminal (pseudo-terminal from util-linux `script`)", () => {
  const underPty = (command: string) =>
    spawn("script", ["-qec", `stty cols 120 rows 40; exec ${command}`, "/dev/null"], { env: env(), cwd: dir })

  const nodeCommand = (args: ReadonlyArray<string>) =>
    [process.execPath, bin, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")

  it("redraws one line in place, at most ~4 times a second, and erases it before the summary", async () => {
    // small batches on the larger file: a load that outlasts a few redraws on a fast machine too
    const child = underPty(nodeCommand(ingestArgs(large, "--progress-every", "100", "--batch-rows", "2000")))
    let raw = ""
    child.stdout.on("data", (b) => (raw += b))
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    assert.strictEqual(code, 0, raw)
    const frames = raw.split("\r\x1b[2K").slice(1).map((f) => f.split("\r")[0]!).filter((f) => f.includes("rec/s"))
    assert.isAtLeast(frames.length, 2, JSON.stringify(raw))
    for (const f of frames) {
      assert.match(f, /large\.xml +[\d.]+\/[\d.]+ MB [\d.]+% +[\d.]+ MB\/s +[\d.k]+ rec\/s +rejects 0 +queue \d\/4 +writers \d\/2/)
      assert.isAtMost(f.length, 119)
    }
    assert.notInclude(raw, "progress: read", "no periodic log lines on a terminal")
    const seconds = Number(/^wall time\s+([\d.]+) s/m.exec(raw.replace(/\r/g, ""))?.[1])
    assert.isAtMost(frames.length, Math.ceil(seconds * 4) + 2, `${frames.length} frames in ${seconds} s`)
    const shown = screen(raw)
    assert.deepStrictEqual(shown.filter((l) => l.includes("rec/s")), [], "the live line is gone at the end")
    const summaryAt = shown.findIndex((l) => /^file\s+.*large\.xml$/.test(l))
    assert.isAbove(summaryAt, 0, shown.join("\n"))
    assert.match(shown[summaryAt + 1]!, /^run\s+\d+ \(done\)$/)
    // nothing but log lines above the summary: the redraws did not pile up lines
    for (const l of shown.slice(0, summaryAt)) assert.match(l, /^\S+Z (INFO|WARN) /)
  })

  it("Ctrl-C: the stop message goes above the line, the line is erased, the summary follows", async () => {
    const child = underPty(nodeCommand(ingestArgs(large, "--writers", "1", "--batch-rows", "2000")))
    let raw = ""
    let sent = false
    child.stdout.on("data", (b) => {
      raw += b
      if (!sent && /rec\/s/.test(raw)) {
        sent = true
        child.stdin.write("\x03")
      }
    })
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    assert.isTrue(sent, raw)
    assert.strictEqual(code, 130, raw)
    const shown = screen(raw)
    assert.deepStrictEqual(shown.filter((l) => l.includes("rec/s")), [], shown.join("\n"))
    const stopAt = shown.findIndex((l) => l.startsWith("SIGINT: stopping after in-flight batches"))
    const summaryAt = shown.findIndex((l) => /^run\s+\d+ \(interrupted\)$/.test(l))
    assert.isAbove(stopAt, 0, shown.join("\n"))
    assert.isAbove(summaryAt, stopAt, shown.join("\n"))
  })
})
