import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { beforeAll, inject } from "vitest"
import { runMeasured } from "../src/bench/Child.js"
import { serverCpuSeconds } from "../src/bench/Cpu.js"
import type { IngestCpu, StageReport } from "../src/bench/Report.js"
import { tmpDir, userEnv } from "./utils.js"

const bench = path.resolve("dist/bench/Bench.js")
const url = inject("databaseUrl")
const dir = tmpDir()

interface ResultJson {
  readonly machine: { readonly cpus: number }
  readonly options: { readonly sizesMb: ReadonlyArray<number>; readonly finalizeAvailable: boolean }
  readonly sizes: ReadonlyArray<{
    readonly input: { readonly file: string; readonly bytes: number; readonly rows: number }
    readonly stages: ReadonlyArray<StageReport>
    readonly ratios: Record<string, number>
    readonly ratiosByRound: ReadonlyArray<Record<string, number>>
    readonly finalizeVsSql?: { readonly firstLoad?: { readonly ratio: number } }
    readonly python: { readonly measuredHere?: { readonly ingest?: number } }
    readonly ingestCpu?: IngestCpu
    readonly chart?: string
    readonly e2eTrace?: { readonly rssMb: ReadonlyArray<unknown> }
  }>
}

const runBench = (args: ReadonlyArray<string>) =>
  Effect.async<{ code: number | null; pid: number; stdout: string; stderr: string }>((resume) => {
    const child = spawn(process.execPath, [bench, ...args], {
      env: userEnv({ DATABASE_URL: url }),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("close", (code) => resume(Effect.succeed({ code, pid: child.pid!, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGTERM"))
  })

/** Schemas left by the bench process `pid`; its schemas are named xml2pg_bench_<pid>_<n>. */
const leftSchemas = (pid: number) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const r = await client.query<{ n: string }>(
        "select count(*) as n from pg_namespace where nspname like $1",
        [`xml2pg_bench_${pid}_%`]
      )
      return Number(r.rows[0]!.n)
    } finally {
      await client.end()
    }
  })

beforeAll(() => {
  assert.isTrue(fs.existsSync(bench), "dist/bench/Bench.js is missing: run `npm run build` (npm test does)")
})

describe("npm run bench", () => {
  it.live("runs every stage on a tiny file and writes JSON and SVG", () =>
    Effect.gen(function*() {
      const r = yield* runBench(["--quick", "--sizes", "2", "--dir", dir])
      assert.strictEqual(r.code, 0, r.stderr)
      assert.include(r.stdout, "ratios of MB/s: 4/1")

      const latest = path.join(dir, "latest.json")
      assert.isTrue(fs.existsSync(latest))
      const result = JSON.parse(fs.readFileSync(latest, "utf8")) as ResultJson
      assert.deepStrictEqual(result.options.sizesMb, [2])
      assert.isAbove(result.machine.cpus, 0)
      const size = result.sizes[0]!
      assert.isAbove(size.input.bytes, 1e6)

      const byId = new Map(size.stages.map((s) => [s.id, s]))
      for (const id of ["1", "1n", "2", "2f", "3", "4", "4p"] as const) {
        const s = byId.get(id)
        assert.isDefined(s, `stage ${id}`)
        assert.isUndefined(s!.skipped)
        assert.strictEqual(s!.runs.length, 1)
        assert.isAbove(s!.mbPerSecond, 0, `stage ${id} MB/s`)
        assert.isAbove(s!.seconds, 0)
        assert.isAbove(s!.peakRssMb, 10, `stage ${id} RSS`)
        assert.strictEqual(s!.xmlBytes, size.input.bytes)
      }
      for (const id of ["2", "2f", "3", "4", "4p"] as const) {
        assert.strictEqual(byId.get(id)!.rows, size.input.rows, `stage ${id} rows`)
      }
      // stage 2' runs under the CLI's V8 flags (a 3 MiB young generation), stage 2 under V8's defaults
      const detail = (id: "2" | "2f") => byId.get(id)!.runs[0]!.detail!
      assert.includeMembers(detail("2f")["nodeFlags"] as Array<string>, ["--max-semi-space-size=3", "--single-threaded-gc"])
      assert.deepStrictEqual(detail("2")["nodeFlags"], [])
      // and with the malloc arenas the shebang sets
      assert.strictEqual(byId.get("2f")!.runs[0]!.detail!["mallocArenaMax"], "2")
      assert.strictEqual(byId.get("2")!.runs[0]!.detail!["mallocArenaMax"], process.env["MALLOC_ARENA_MAX"] ?? null)
      for (const key of ["4/1", "4/2", "4/2'", "4/3", "4p/2", "2/1", "2/1'"]) assert.isAbove(size.ratios[key]!, 0, key)
      // the ingest's CPU: its own (a parse of the whole file at least), the local server's for
      // the COPY, and the floor they put under its wall time on this machine's CPUs
      const ingest = byId.get("4")!
      const cpu = size.ingestCpu!
      assert.strictEqual(cpu.loaderSeconds, ingest.runs[0]!.cpuSeconds)
      assert.isAbove(cpu.loaderSeconds, byId.get("2")!.seconds * 0.5)
      assert.isBelow(cpu.loaderSeconds, ingest.seconds * result.machine.cpus + 0.05)
      assert.isAbove(cpu.serverSeconds!, 0)
      assert.strictEqual(cpu.cpus, result.machine.cpus)
      assert.closeTo(cpu.floorSeconds, (cpu.loaderSeconds + cpu.serverSeconds!) / cpu.cpus, 1e-9)
      assert.include(
        r.stdout,
        `stage 4's CPU: the loader ${cpu.loaderSeconds.toFixed(2)} s + the server ${cpu.serverSeconds!.toFixed(2)} s ` +
          `over ${cpu.cpus} CPUs = a floor of ${cpu.floorSeconds.toFixed(2)} s under its ${ingest.seconds.toFixed(2)} s`
      )
      // one round: nothing round by round
      assert.deepStrictEqual(size.ratiosByRound, [])
      assert.notInclude(r.stdout, "round by round")
      for (const id of ["5a", "5b", "5c"] as const) {
        const s = byId.get(id)!
        if (result.options.finalizeAvailable) {
          assert.isUndefined(s.skipped)
          assert.isAbove(s.seconds, 0)
        } else assert.strictEqual(s.skipped, "finalize not available")
      }
      // finalize's statements replayed by psql on a twin schema, when psql is installed
      for (const id of ["5as", "5cs"] as const) {
        const s = byId.get(id)!
        if (s.skipped !== undefined) continue
        assert.isAbove(s.seconds, 0)
        assert.isAbove(s.runs[0]!.detail!["statements"] as number, 5, `${id} replayed statements`)
      }
      if (byId.get("5as")!.skipped === undefined) {
        assert.isAbove(size.finalizeVsSql!.firstLoad!.ratio, 0)
        assert.include(r.stdout, "finalize / its SQL run by psql -f")
      }

      // the seed's Python design, where this machine's Python has lxml and psycopg2
      const seed = byId.get("6")!
      if (seed.skipped === undefined) {
        assert.strictEqual(seed.rows, size.input.rows, "the Python baseline loads the same rows")
        assert.strictEqual(seed.runs[0]!.detail!["rejects"], 0)
        assert.isAbove(size.python.measuredHere!.ingest!, 0)
        assert.include(r.stdout, "the seed's Python design on this machine (stage 6)")
      } else assert.include(seed.skipped, "python3-lxml")

      assert.isDefined(size.chart)
      const svg = fs.readFileSync(size.chart!, "utf8")
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
      assert.include(svg, "RSS MB")
      assert.include(svg, "<path d=\"M")
      assert.isAbove(size.e2eTrace!.rssMb.length, 0)

      assert.strictEqual(yield* leftSchemas(r.pid), 0, "the bench drops the schemas it creates")
      assert.isEmpty(fs.readdirSync(dir).filter((f) => f.startsWith("encoded-")))
    }), { timeout: 120_000 })

  it.live("--repeat runs the stages in rounds and reports medians over them", () =>
    Effect.gen(function*() {
      const r = yield* runBench(["--sizes", "2", "--repeat", "3", "--stages", "1,2", "--dir", dir])
      assert.strictEqual(r.code, 0, r.stderr)
      // the rounds interleave: stage 1 of round 2 starts after stage 2 of round 1
      const order = [...r.stderr.matchAll(/stage (\d): .*\(round (\d) of 3\)/g)].map((m) => `${m[1]}.${m[2]}`)
      assert.deepStrictEqual(order, ["1.1", "2.1", "1.2", "2.2", "1.3", "2.3"])
      const size = (JSON.parse(fs.readFileSync(path.join(dir, "latest.json"), "utf8")) as ResultJson).sizes[0]!
      for (const s of size.stages) {
        assert.strictEqual(s.runs.length, 3, `stage ${s.id} runs`)
        const sorted = s.runs.map((run) => run.seconds).sort((a, b) => a - b)
        assert.strictEqual(s.seconds, sorted[1], `stage ${s.id}: the median of its runs`)
      }
      assert.deepStrictEqual(size.stages.map((s) => s.id), ["1", "1n", "2", "2f"])
      // each round's ratio from its own runs, as the MB/s of one file: 2/1 = time of 1 / time of 2
      const [one, oneAsFed, two] = [size.stages[0]!, size.stages[1]!, size.stages[2]!]
      assert.deepStrictEqual(
        size.ratiosByRound.map((ratios) => ratios["2/1"]!.toFixed(6)),
        [0, 1, 2].map((i) => (one.runs[i]!.seconds / two.runs[i]!.seconds).toFixed(6))
      )
      assert.deepStrictEqual(
        size.ratiosByRound.map((ratios) => ratios["2/1'"]!.toFixed(6)),
        [0, 1, 2].map((i) => (oneAsFed.runs[i]!.seconds / two.runs[i]!.seconds).toFixed(6))
      )
      const byRound = (key: "2/1" | "2/1'") => size.ratiosByRound.map((x) => x[key]!.toFixed(2)).join(" ")
      assert.include(r.stdout, `round by round: 2/1 ${byRound("2/1")}  2/1' ${byRound("2/1'")}`)
    }), { timeout: 120_000 })
})

describe("CPU time from /proc", () => {
  const busy = (millis: number) => `const t = Date.now(); while (Date.now() - t < ${millis});`

  it.live("a child's CPU time counts its descendants, once it has ended", () =>
    Effect.gen(function*() {
      // the busy loop runs in a grandchild: time(1) runs the child when installed, and here a shell too
      const m = yield* runMeasured({
        args: ["sh", "-c", `"${process.execPath}" -e '${busy(400)}'`],
        env: process.env,
        executable: true
      })
      assert.strictEqual(m.code, 0)
      assert.isAtLeast(m.cpuSeconds!, 0.35)
      assert.isAtMost(m.cpuSeconds!, m.wallSeconds + 0.05)
    }))

  it.live("the server's CPU time counts a connection that has ended", () =>
    Effect.gen(function*() {
      const before = serverCpuSeconds()
      assert.isDefined(before, "the test database runs on this machine")
      yield* Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        await client.query("select count(*) from generate_series(1, 4000000)")
        await client.end()
      })
      // the postmaster reaps the backend soon after it exits
      let after = serverCpuSeconds()!
      for (let i = 0; i < 50 && after - before! < 0.2; i++) {
        yield* Effect.sleep("20 millis")
        after = serverCpuSeconds()!
      }
      assert.isAtLeast(after - before!, 0.2)
    }))
})
