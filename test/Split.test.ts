import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { qualify } from "../src/db/Identifiers.js"
import { renderXml } from "../src/generate/Generator.js"
import { parseParsers } from "../src/config/Settings.js"
import { AUTO_SPLIT_BYTES, parsersFor, rangeOf, splitPoints } from "../src/xml/Split.js"
import { Xml2Pg } from "../src/Xml2Pg.js"
import { expectedRows, newSchema, settingsFor, stagedRows, TestLoader, tmpDir } from "./utils.js"

const schema = newSchema()
const dir = tmpDir()

// ~4.6 MB: three ranges of more than MIN_RANGE_BYTES
const generated = { groups: 6000, eventsPerGroup: 2, seed: 21 }
const xml = Array.from(renderXml(generated)).join("")
const expected = expectedRows(generated)

const write = (name: string, text: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

/** The run's batch numbers by range, and the range ends it keeps. */
const runLedger = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const seqs = yield* sql.unsafe<{ seq: number }>(
      `select batch_seq as seq from ${qualify(schema, "xml2pg_batch")} where run_id = $1 order by 1`,
      [runId]
    )
    const [run] = yield* sql.unsafe<{ ranges: Array<number> }>(
      `select settings->'ranges' as ranges from ${qualify(schema, "xml2pg_run")} where run_id = $1`,
      [runId]
    )
    return { ranges: [...new Set(seqs.map((r) => rangeOf(r.seq)))], ends: run!.ranges }
  })

/**
 * `xml` with a comment put between two records so that it spans the file's middle, holding
 * bytes that look like a record's end and the next one's start: where a split into two
 * ranges guesses the first range ends.
 */
const withFalseEnd = (): string => {
  const cut = xml.indexOf("</group>\n", Math.floor(xml.length * 0.4)) + "</group>\n".length
  const pad = Buffer.byteLength(xml) - 2 * Buffer.byteLength(xml.slice(0, cut)) + 100
  const comment = `<!--${"x".repeat(pad)} </group>\n  <group id="1" code="G-fake" created_at="2026-01-01T00:00:00Z"> -->\n`
  return xml.slice(0, cut) + comment + xml.slice(cut)
}

describe("how many ranges", () => {
  it("the parsers setting: auto, or a whole number in 1..64", () => {
    assert.deepStrictEqual(["auto", "1", "2", "64"].map(parseParsers), ["auto", 1, 2, 64])
    for (const bad of ["0", "65", "01", "2.5", "-2", "", "Auto", "two"]) assert.isUndefined(parseParsers(bad), bad)
  })

  it("auto splits a file of 64 MiB or more in two on 2 CPUs or more; a number is taken as given", () => {
    assert.strictEqual(AUTO_SPLIT_BYTES, 64 * 2 ** 20)
    const auto = (size: number, cpus: number) => parsersFor("auto", size, cpus)
    assert.deepStrictEqual([auto(0, 8), auto(AUTO_SPLIT_BYTES - 1, 8), auto(AUTO_SPLIT_BYTES, 2), auto(2 ** 40, 1)], [1, 1, 2, 1])
    assert.deepStrictEqual([parsersFor(1, 2 ** 40, 8), parsersFor(3, 1000, 1)], [1, 3])
    // this machine's CPUs by default
    assert.strictEqual(parsersFor("auto", AUTO_SPLIT_BYTES), os.availableParallelism() >= 2 ? 2 : 1)
  })
})

layer(TestLoader(schema), { excludeTestServices: true, timeout: 120_000 })("one file parsed in ranges", (it) => {
  it("range ends fall just past a record's end tag, before the next tag", () => {
    const file = write("points.xml", xml)
    const points = splitPoints(file, Buffer.byteLength(xml), 3, "group")
    assert.strictEqual(points.length, 2)
    const bytes = fs.readFileSync(file)
    for (const p of points) {
      assert.strictEqual(bytes.subarray(p - 8, p).toString(), "</group>")
      assert.match(bytes.subarray(p, p + 20).toString(), /^\s*<group /)
    }
    // too small to split: every range would be under MIN_RANGE_BYTES
    assert.deepStrictEqual(splitPoints(file, 1_500_000, 3, "group"), [])
  })

  for (const parseRanges of [2, 3]) {
    it.effect(`${parseRanges} ranges load the rows of one, in document order, each once`, () =>
      Effect.gen(function*() {
        const file = write(`whole-${parseRanges}.xml`, xml)
        const loader = yield* Xml2Pg
        const [summary] = yield* loader.ingest({
          files: [file],
          settings: settingsFor(schema, dir, { batchRows: 700, parsers: parseRanges })
        })
        assert.strictEqual(summary!.state, "done")
        assert.strictEqual(summary!.rowsLoaded, expected.groups.length + expected.events.length)
        assert.strictEqual(summary!.xmlBytes, Buffer.byteLength(xml))
        const staged = yield* stagedRows(schema, summary!.runId)
        assert.deepStrictEqual(staged.groups, expected.groups)
        assert.deepStrictEqual(staged.events, expected.events)
        const ledger = yield* runLedger(summary!.runId)
        assert.deepStrictEqual(ledger.ranges, Array.from({ length: parseRanges }, (_, k) => k))
        assert.strictEqual(ledger.ends.length, parseRanges - 1)
      }))
  }

  for (const strict of [false, true]) {
    it.effect(
      `a range end guessed inside a comment is found out: the range after it is dropped and parsed again (${
        strict ? "strict" : "recovering"
      })`,
      () =>
        Effect.gen(function*() {
          const text = withFalseEnd()
          const file = write(`false-end-${strict}.xml`, text)
          const [guess] = splitPoints(file, Buffer.byteLength(text), 2, "group")
          const before = Buffer.from(text).subarray(0, guess!).toString()
          assert.isAbove(before.lastIndexOf("<!--"), before.lastIndexOf("-->"), "the guess lies in the comment")
          const loader = yield* Xml2Pg
          const rejectsPath = path.join(dir, `false-end-${strict}.ndjson`)
          const [summary] = yield* loader.ingest({
            files: [file],
            settings: settingsFor(schema, dir, { batchRows: 700, parsers: 2, strict, rejectsPath })
          })
          assert.strictEqual(summary!.state, "done")
          assert.strictEqual(summary!.rejected, 0)
          assert.strictEqual(summary!.rowsLoaded, expected.groups.length + expected.events.length)
          const staged = yield* stagedRows(schema, summary!.runId)
          assert.deepStrictEqual(staged.groups, expected.groups)
          assert.deepStrictEqual(staged.events, expected.events)
          // the second range's batches are gone, and a resume would parse the file as one range
          assert.deepStrictEqual(yield* runLedger(summary!.runId), { ranges: [0], ends: [] })
          assert.isFalse(fs.existsSync(rejectsPath) && fs.readFileSync(rejectsPath, "utf8").trim() !== "")
        })
    )
  }

  // a group's name end tag misspelt three quarters into the file: in the third range
  const brokenAt = xml.indexOf("</name>", Math.floor(xml.length * 0.75))
  const broken = `${xml.slice(0, brokenAt)}</nme>${xml.slice(brokenAt + "</name>".length)}`
  const brokenByte = Buffer.byteLength(xml.slice(0, brokenAt))

  it.effect("a real break in a later range fails a strict load, at its byte offset", () =>
    Effect.gen(function*() {
      const file = write("broken-strict.xml", broken)
      const loader = yield* Xml2Pg
      const error = yield* loader.ingest({
        files: [file],
        settings: settingsFor(schema, dir, { batchRows: 700, parsers: 3, strict: true })
      }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "XmlParseError")
      assert.include(error.message, "broken-strict.xml")
      const offset = (error as { offset?: number }).offset!
      assert.isAtLeast(offset, brokenByte)
      assert.isBelow(offset, brokenByte + 20)
    }))

  it.effect("a broken record in a later range is rejected, filed once in the rejects file; the rest loads", () =>
    Effect.gen(function*() {
      const file = write("broken.xml", broken)
      const rejectsPath = path.join(dir, "broken.ndjson")
      const loader = yield* Xml2Pg
      const [summary] = yield* loader.ingest({
        files: [file],
        settings: settingsFor(schema, dir, { batchRows: 700, parsers: 3, rejectsPath })
      })
      assert.strictEqual(summary!.rejected, 1)
      const lines = fs.readFileSync(rejectsPath, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      assert.strictEqual(lines.length, 1)
      assert.strictEqual(lines[0].element, "group")
      const groupStart = Buffer.byteLength(xml.slice(0, xml.lastIndexOf("<group ", brokenAt)))
      assert.strictEqual(lines[0].offset, groupStart)
      const staged = yield* stagedRows(schema, summary!.runId)
      const lost = expected.groups.filter((g) => !staged.groups.some((s) => s.group_id === g.group_id))
      assert.strictEqual(lost.length, 1)
      assert.strictEqual(staged.groups.length, expected.groups.length - 1)
    }))
})
