import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as zlib from "node:zlib"
import { afterAll } from "vitest"
import { qualify } from "../src/db/Identifiers.js"
import type { IngestSettings } from "../src/config/Settings.js"
import { renderXml } from "../src/generate/Generator.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { Producer } from "../src/xml/Producer.js"
import { Xml2Pg } from "../src/Xml2Pg.js"
import { type BadInput, badInputs, type ExpectedReject, lateBreaks } from "./corpus/BadInputs.js"
import { databaseUrl, expectedRows, newSchema, settingsFor, stagedRows, TestLoader, tmpDir, userEnv } from "./utils.js"

const schema = newSchema()
const dir = tmpDir()
const bin = path.resolve("dist/bin.js")

interface RejectRow {
  readonly element: string
  readonly id: string | null
  readonly reason: string
  readonly offset: number
}

const byOffset = <A extends { readonly offset: number; readonly element: string }>(rows: ReadonlyArray<A>): Array<A> =>
  [...rows].sort((a, b) => a.offset - b.offset || a.element.localeCompare(b.element))

const rejectRows = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ element: string; record_id: string | null; reason: string; byte_offset: string }>(
      `select element, record_id, reason, byte_offset::text from ${qualify(schema, "xml2pg_reject")}
       where run_id = $1`,
      [runId]
    )).pipe(
      Effect.map((rows) =>
        byOffset(rows.map((r): RejectRow => ({
          element: r.element,
          id: r.record_id,
          reason: r.reason,
          offset: Number(r.byte_offset)
        })))
      )
    )

const readRejectsFile = (file: string): Array<RejectRow> =>
  fs.existsSync(file)
    ? byOffset(
      fs.readFileSync(file, "utf8").trim().split("\n").filter((l) => l !== "").map((l) => {
        const r = JSON.parse(l) as { element: string; id: string | null; reason: string; offset: number }
        return { element: r.element, id: r.id, reason: r.reason, offset: r.offset }
      })
    )
    : []

const assertRejects = (actual: ReadonlyArray<RejectRow>, expected: ReadonlyArray<ExpectedReject>, what: string) => {
  assert.deepStrictEqual(
    actual.map((r) => [r.element, r.id, r.offset]),
    byOffset(expected).map((r) => [r.element, r.id, r.offset]),
    what
  )
  byOffset(expected).forEach((e, i) => {
    assert.isTrue(actual[i]!.reason.startsWith(e.reason), `${what}: ${JSON.stringify(actual[i]!.reason)} starts with ${e.reason}`)
  })
}

const runOf = (file: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ run_id: number; state: string; message: string | null }>(
      `select run_id, state, message from ${qualify(schema, "xml2pg_run")} where file = $1 order by run_id`,
      [file]
    ))

const stagedCount = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(
      `select (select count(*) from ${qualify(schema, "stg_group_event")} where run_id = $1)::int +
              (select count(*) from ${qualify(schema, "stg_event")} where run_id = $1)::int as n`,
      [runId]
    )).pipe(Effect.map((rows) => rows[0]!.n))

/** Ingests `input` (plain or gzip) and checks exactly what was loaded and rejected. */
const checkInput = (input: BadInput, index: number, gzip: boolean) =>
  Effect.gen(function*() {
    const file = path.join(dir, `case-${index}.xml${gzip ? ".gz" : ""}`)
    fs.writeFileSync(file, gzip ? zlib.gzipSync(input.bytes) : input.bytes)
    const rejectsPath = `${file}.rejects.ndjson`
    const settings = settingsFor(schema, dir, {
      rejectsPath,
      batchRows: 3,
      ...(input.maxRecordBytes === undefined ? {} : { maxRecordBytes: input.maxRecordBytes })
    })
    const loader = yield* Xml2Pg
    if (input.fatal !== undefined) {
      const error = yield* Effect.flip(loader.ingest({ files: [file], settings }))
      assert.strictEqual(error._tag, "XmlParseError")
      assert.include(error.message, input.fatal)
      const [run] = yield* runOf(file)
      assert.strictEqual(run!.state, "failed")
      assert.strictEqual(yield* stagedCount(run!.run_id), 0)
      assert.isFalse(fs.existsSync(rejectsPath))
      return
    }
    const [summary] = yield* loader.ingest({ files: [file], settings })
    assert.strictEqual(summary!.state, "done")
    const staged = yield* stagedRows(schema, summary!.runId)
    assert.deepStrictEqual(staged.groups.map((g) => g.group_id), input.groups)
    assert.deepStrictEqual(staged.events.map((e) => e.event_id), input.events)
    assert.strictEqual(summary!.rejected, input.rejects.length)
    assertRejects(yield* rejectRows(summary!.runId), input.rejects, "xml2pg_reject")
    assertRejects(readRejectsFile(rejectsPath), input.rejects, "rejects file")
    if (input.neverLoaded !== undefined) {
      assert.notInclude(JSON.stringify(staged), input.neverLoaded)
      assert.notInclude(fs.readFileSync(rejectsPath, "utf8"), input.neverLoaded)
    }
  })

// == helpers for generated files with bad records

/** The end of the start tag beginning at `from`, skipping quoted attribute values. */
const startTagEnd = (xml: string, from: number): number => {
  let quote = ""
  for (let i = from; i < xml.length; i++) {
    const c = xml[i]!
    if (quote !== "") {
      if (c === quote) quote = ""
    } else if (c === "\"" || c === "'") {
      quote = c
    } else if (c === ">") {
      return i
    }
  }
  throw new Error("unterminated start tag")
}

/**
 * The generated document with every `every`-th top-level group made invalid (a second
 * <name>), and the ids of those groups.
 */
const withBadGroups = (xml: string, every: number): { xml: string; bad: Set<number> } => {
  const parts = xml.split("\n  <group")
  const bad = new Set<number>()
  for (let i = 1; i < parts.length; i++) {
    if (i % every !== 0) continue
    const end = startTagEnd(parts[i]!, 0)
    parts[i] = `${parts[i]!.slice(0, end + 1)}<name>second</name>${parts[i]!.slice(end + 1)}`
    bad.add(i - 1)
  }
  return { xml: parts.join("\n  <group"), bad }
}

const cli = (args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [bin, ...args], {
    env: userEnv({ DATABASE_URL: Redacted.value(databaseUrl()) }),
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Peak RSS (VmHWM, KiB) of a CLI run, sampled from /proc while it runs. */
const peakRss = (args: ReadonlyArray<string>) =>
  Effect.promise(() =>
    new Promise<{ code: number | null; peakKb: number; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], {
        env: userEnv({ DATABASE_URL: Redacted.value(databaseUrl()) }),
        cwd: dir
      })
      let stderr = ""
      let peakKb = 0
      child.stderr.on("data", (b) => (stderr += b))
      const sample = () => {
        try {
          const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8")
          peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0))
        } catch {
          return
        }
      }
      const timer = setInterval(sample, 20)
      child.on("exit", (code) => {
        clearInterval(timer)
        resolve({ code, peakKb, stderr })
      })
    })
  )

function* readChunks(file: string): Generator<Buffer> {
  const fd = fs.openSync(file, "r")
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(256 * 1024)
      const n = fs.readSync(fd, chunk)
      if (n === 0) return
      yield chunk.subarray(0, n)
    }
  } finally {
    fs.closeSync(fd)
  }
}

const writeStreamed = (file: string, pieces: Iterable<string>) => {
  const fd = fs.openSync(file, "w")
  try {
    for (const piece of pieces) fs.writeSync(fd, piece)
  } finally {
    fs.closeSync(fd)
  }
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

layer(TestLoader(schema), { excludeTestServices: true, timeout: 300_000 })("recover mode", (it) => {
  badInputs().forEach((input, index) => {
    it.effect(`${input.name}: exactly the right records load and are rejected (plain and gzip)`, () =>
      Effect.gen(function*() {
        yield* checkInput(input, index, false)
        yield* checkInput(input, index, true)
      }))
  })

  lateBreaks().forEach((input, index) => {
    it.effect(`a break saxes notices late: ${input.name}: only the broken group is lost`, () =>
      checkInput(input, 1000 + index, false))
  })

  it.effect("--strict fails at the first break, with its byte offset", () =>
    Effect.gen(function*() {
      const loader = yield* Xml2Pg
      const byName = new Map(badInputs().map((c) => [c.name, c]))
      const cases: Array<readonly [string, string]> = [
        ["an unclosed tag", "unexpected close tag"],
        ["invalid UTF-8 bytes inside a value", "input is not valid UTF-8"],
        ["a file truncated mid-group", "unclosed tag"]
      ]
      for (const [name, reason] of cases) {
        const input = byName.get(name)!
        const file = path.join(dir, `strict-${name.replace(/\W+/g, "-")}.xml`)
        fs.writeFileSync(file, input.bytes)
        const settings: IngestSettings = settingsFor(schema, dir, { strict: true, rejectsPath: `${file}.ndjson` })
        const error = yield* Effect.flip(loader.ingest({ files: [file], settings }))
        assert.strictEqual(error._tag, "XmlParseError", name)
        assert.match(error.message, new RegExp(`^${file}: XML error at byte \\d+: .*${reason}`), name)
        const [run] = yield* runOf(file)
        assert.strictEqual(run!.state, "failed")
        assert.include(run!.message, reason)
      }
    }))

  it.effect("--max-errors stops the run with exit 1; running it again resumes and loads the rest once", () =>
    Effect.gen(function*() {
      const options = { groups: 3000, eventsPerGroup: 2, seed: 21 }
      const { bad, xml } = withBadGroups(Array.from(renderXml(options)).join(""), 20)
      const file = path.join(dir, "max-errors.xml")
      fs.writeFileSync(file, xml)
      const rejects = path.join(dir, "max-errors.ndjson")
      const args = ["ingest", "--schema", schema, "--batch-rows", "500", "--writers", "1", "--rejects", rejects]

      const first = cli([...args, "--max-errors", "40", file])
      assert.strictEqual(first.code, 1, first.stderr)
      assert.include(first.stderr, "stopped after more than 40 rejected records (--max-errors)")
      assert.include(first.stderr, "run the same ingest again to resume")
      assert.notInclude(first.stderr, "    at ")
      const [stopped] = yield* runOf(file)
      assert.strictEqual(stopped!.state, "failed")
      const partial = yield* stagedCount(stopped!.run_id)
      assert.isAbove(partial, 0)

      const second = cli([...args, file])
      assert.strictEqual(second.code, 3, second.stderr)
      assert.include(second.stderr, `run ${stopped!.run_id}: resuming`)
      const runs = yield* runOf(file)
      assert.deepStrictEqual(runs.map((r) => [r.run_id, r.state]), [[stopped!.run_id, "done"]])

      const all = expectedRows(options)
      const badIds = new Set(all.groups.filter((_, i) => bad.has(i)).map((g) => g.group_id))
      const staged = yield* stagedRows(schema, stopped!.run_id)
      assert.deepStrictEqual(staged.groups, all.groups.filter((g) => !badIds.has(g.group_id)))
      assert.deepStrictEqual(staged.events, all.events.filter((e) => !badIds.has(e.group_id)))
      const rejectedEvents = all.events.filter((e) => badIds.has(e.group_id)).length
      const expectedRejects = badIds.size + rejectedEvents
      assert.strictEqual((yield* rejectRows(stopped!.run_id)).length, expectedRejects)
      assert.strictEqual(readRejectsFile(rejects).length, expectedRejects)
    }))

  it.effect("a 256 MiB text node streams through in bounded memory", () =>
    Effect.gen(function*() {
      const textMib = 256
      const limit = 1 << 20
      const file = path.join(dir, "huge-text.xml")
      const mib = "x".repeat(1 << 20)
      writeStreamed(file, (function*() {
        yield `<?xml version="1.0" encoding="UTF-8"?>\n<groups>\n`
        yield `<group id="1" code="a" created_at="2026-01-01T00:00:00Z"><name>one</name></group>\n`
        yield `<group id="2" code="b" created_at="2026-01-01T00:00:00Z"><name>`
        for (let i = 0; i < textMib; i++) yield mib
        yield `</name></group>\n<group id="3" code="c" created_at="2026-01-01T00:00:00Z"><name>three</name></group>\n</groups>\n`
      })())
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(file, { force: true })))

      // in this process: what the producer keeps alive (heap and buffers after a full GC) stays small
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      // the second collection starts by finishing the first's sweeps, which V8 runs on other
      // threads: read after one only, a loaded machine showed up to 8.6 MiB still unswept
      const retained = () => {
        gc()
        gc()
        const m = process.memoryUsage()
        return m.heapUsed + m.arrayBuffers
      }
      const before = retained()
      let most = 0
      const producer = new Producer({
        file,
        doc: GroupsDocument,
        runId: 1,
        limits: { rows: 1000, bytes: 1 << 22 },
        maxRecordChars: limit
      })
      let chunks = 0
      for (const chunk of readChunks(file)) {
        producer.write(chunk)
        if (++chunks % 64 === 0) most = Math.max(most, retained() - before)
      }
      const rejects = producer.end().flatMap((b) => b.rejects)
      assert.deepStrictEqual(rejects.map((r) => [r.id, r.reason]), [["2", `larger than ${limit} characters`]])
      assert.isBelow(most / 2 ** 20, 8, "MiB retained while parsing")

      // the CLI's peak RSS grows by far less than the text node
      const small = path.join(dir, "small-text.xml")
      fs.writeFileSync(
        small,
        `<groups><group id="1" code="a" created_at="2026-01-01T00:00:00Z"><name>one</name></group></groups>`
      )
      const args = ["ingest", "--schema", schema, "--max-record-bytes", String(limit), "--rejects", `${file}.ndjson`]
      const baseline = yield* peakRss([...args, small])
      assert.strictEqual(baseline.code, 0, baseline.stderr)
      const huge = yield* peakRss([...args, file])
      assert.strictEqual(huge.code, 3, huge.stderr)
      const growthMib = (huge.peakKb - baseline.peakKb) / 1024
      yield* Effect.logInfo(
        `retained while parsing: ${(most / 2 ** 20).toFixed(1)} MiB; CLI peak RSS: ` +
          `${(baseline.peakKb / 1024).toFixed(0)} MiB on a tiny file, ` +
          `${(huge.peakKb / 1024).toFixed(0)} MiB with a ${textMib} MiB text node (+${growthMib.toFixed(0)} MiB)`
      )
      assert.isBelow(growthMib, textMib / 2)
      const [run] = yield* runOf(file)
      const staged = yield* stagedRows(schema, run!.run_id)
      assert.deepStrictEqual(staged.groups.map((g) => g.group_id), ["1", "3"])
      assert.deepStrictEqual((yield* rejectRows(run!.run_id)).map((r) => [r.element, r.id, r.reason]), [
        ["group", "2", `larger than ${limit} characters`]
      ])
    }).pipe(Effect.scoped))
})
