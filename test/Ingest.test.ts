import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { qualify } from "../src/db/Identifiers.js"
import { Xml2Pg } from "../src/Xml2Pg.js"
import { expectedRows, newSchema, settingsFor, stagedRows, TestLoader, tmpDir, writeXml } from "./utils.js"

const schema = newSchema()
const dir = tmpDir()

const count = (table: string, where = "true") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(schema, table)} where ${where}`)).pipe(
      Effect.map((rows) => rows[0]!.n)
    )

layer(TestLoader(schema), { excludeTestServices: true, timeout: 120_000 })("ingest into real PostgreSQL", (it) => {
  for (const parseWorker of [true, false]) {
    const where = parseWorker ? "on a worker thread" : "on the main thread"
    it.effect(`loads a generated file parsed ${where}: every row equals what the generator wrote`, () =>
      Effect.gen(function*() {
        const options = { groups: 3000, eventsPerGroup: 3, seed: 11 }
        const file = path.join(dir, `gen-${parseWorker}.xml`)
        writeXml(file, options)
        const loader = yield* Xml2Pg
        const [summary] = yield* loader.ingest({
          files: [file],
          settings: settingsFor(schema, dir, { batchRows: 700, writers: 3, queueSize: 2, parseWorker })
        })
        const expected = expectedRows(options)
        assert.strictEqual(summary!.state, "done")
        assert.strictEqual(summary!.rejected, 0)
        assert.strictEqual(summary!.rowsByTable["stg_group_event"], expected.groups.length)
        assert.strictEqual(summary!.rowsByTable["stg_event"], expected.events.length)
        assert.isAbove(summary!.batches, 10)
        const staged = yield* stagedRows(schema, summary!.runId)
        assert.deepStrictEqual(staged.groups, expected.groups)
        assert.deepStrictEqual(staged.events, expected.events)
        const ledger = yield* count("xml2pg_batch", `run_id = ${summary!.runId}`)
        assert.strictEqual(ledger, summary!.batches)
      }))
  }

  it.effect("several files in one call, plain and gzip in turn: each run holds exactly its file's rows", () =>
    Effect.gen(function*() {
      const inputs = [11, 12, 13, 14].map((seed, i) => {
        const options = { groups: 300 + 50 * i, eventsPerGroup: 2, seed }
        const file = path.join(dir, `many-${seed}.xml`)
        writeXml(file, options)
        if (i % 2 === 0) return { file, options }
        fs.writeFileSync(`${file}.gz`, zlib.gzipSync(fs.readFileSync(file)))
        return { file: `${file}.gz`, options }
      })
      const loader = yield* Xml2Pg
      const summaries = yield* loader.ingest({
        files: inputs.map((i) => i.file),
        settings: settingsFor(schema, dir, { batchRows: 150 })
      })
      assert.deepStrictEqual(summaries.map((s) => [s.file, s.state]), inputs.map((i) => [i.file, "done"]))
      for (const [k, { options }] of inputs.entries()) {
        const staged = yield* stagedRows(schema, summaries[k]!.runId)
        const expected = expectedRows(options)
        assert.deepStrictEqual(staged.groups, expected.groups)
        assert.deepStrictEqual(staged.events, expected.events)
      }
    }))

  it.effect("a gzip file loads the same rows as the plain one", () =>
    Effect.gen(function*() {
      const options = { groups: 400, eventsPerGroup: 2, seed: 5, bom: true }
      const plain = path.join(dir, "bom.xml")
      writeXml(plain, options)
      const gz = path.join(dir, "bom.xml.gz")
      fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(plain)))
      const loader = yield* Xml2Pg
      const [summary] = yield* loader.ingest({ files: [gz], settings: settingsFor(schema, dir, { batchRows: 100 }) })
      const staged = yield* stagedRows(schema, summary!.runId)
      const expected = expectedRows(options)
      assert.deepStrictEqual(staged.groups, expected.groups)
      assert.deepStrictEqual(staged.events, expected.events)
      assert.strictEqual(summary!.xmlBytes, fs.statSync(plain).size)
    }))

  it.effect("values round-trip byte-exact through COPY", () =>
    Effect.gen(function*() {
      const nasty = [
        "tab\there",
        "new\nline",
        "cr&#13;lf",
        "back\\slash \\N \\\\N \\t",
        "\\.",
        "emoji 😀👍🏽 and Cyrillic Группа №1",
        "quotes \" ' &quot; &apos;",
        "<![CDATA[a]]]]><![CDATA[>b]]>",
        "  spaces kept  ",
        ""
      ]
      const decoded = [
        "tab\there",
        "new\nline",
        "cr\rlf",
        "back\\slash \\N \\\\N \\t",
        "\\.",
        "emoji 😀👍🏽 and Cyrillic Группа №1",
        "quotes \" ' \" '",
        "a]]>b",
        "  spaces kept  ",
        ""
      ]
      const events = nasty.map((v, i) =>
        `<event id="${900 + i}" type="t" occurred_at="2026-01-01T00:00:00Z"><payload>${v}</payload></event>`
      ).join("\n")
      const file = path.join(dir, "nasty.xml")
      fs.writeFileSync(
        file,
        `<groups><group id="77" code="c" created_at="2026-01-01T00:00:00Z"><name>${nasty[3]}</name>${events}</group></groups>`
      )
      const loader = yield* Xml2Pg
      const [summary] = yield* loader.ingest({ files: [file], settings: settingsFor(schema, dir) })
      const staged = yield* stagedRows(schema, summary!.runId)
      assert.deepStrictEqual(staged.events.map((e) => e.payload), decoded)
      assert.strictEqual(staged.groups[0]!.name, decoded[3])
    }))

  it.effect("bad records are rejected with reason and offset; the rest loads", () =>
    Effect.gen(function*() {
      const records = [
        `<group id="1" code="a" created_at="2026-01-01T00:00:00Z"><name>ok</name>` +
        `<event id="1" type="x" occurred_at="2026-01-01T00:00:00Z" severity="9"/>` +
        `<event id="2" type="x" occurred_at="2026-01-01T00:00:00Z"/></group>`,
        `<group id="2" code="b" created_at="yesterday"><name>bad</name>` +
        `<event id="3" type="x" occurred_at="2026-01-01T00:00:00Z"/></group>`,
        `<group id="3" code="c" created_at="2026-01-01T24:00:00Z"><name/></group>`,
        `<group id="4" code="d" created_at="2026-02-28T23:59:59.123456-14:59"><name/></group>`
      ]
      const xml = `<?xml version="1.0"?>\n<groups>\n${records.join("\n")}\n</groups>\n`
      const file = path.join(dir, "bad.xml")
      fs.writeFileSync(file, xml)
      const rejectsPath = path.join(dir, "bad-rejects.ndjson")
      const loader = yield* Xml2Pg
      const [summary] = yield* loader.ingest({ files: [file], settings: settingsFor(schema, dir, { rejectsPath }) })
      assert.strictEqual(summary!.rejected, 4)
      assert.deepStrictEqual(summary!.rejectsByKind, {
        "event: bad attribute severity": 1,
        "group: bad attribute created_at": 2,
        "event: enclosing <group> rejected": 1
      })
      const lines = fs.readFileSync(rejectsPath, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      const at = (needle: string) => Buffer.from(xml).indexOf(needle)
      assert.deepStrictEqual(lines.map((l) => [l.offset, l.element, l.id, l.reason]), [
        [at(`<event id="1"`), "event", "1", `bad attribute severity: "9" not an integer in 0..7`],
        [
          at(`<group id="2"`),
          "group",
          "2",
          `bad attribute created_at: "yesterday" not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)`
        ],
        [at(`<event id="3"`), "event", "3", "enclosing <group> rejected"],
        [at(`<group id="3"`), "group", "3", `bad attribute created_at: "2026-01-01T24:00:00Z" not a time of day`]
      ])
      assert.isTrue(lines.every((l) => l.file === file))
      const staged = yield* stagedRows(schema, summary!.runId)
      assert.deepStrictEqual(staged.groups.map((g) => g.group_id), ["1", "4"])
      assert.deepStrictEqual(staged.events.map((e) => e.event_id), ["2"])
      assert.strictEqual(staged.groups[1]!.created_at, "2026-03-01T14:58:59.123456Z")
      assert.strictEqual(yield* count("xml2pg_reject", `run_id = ${summary!.runId}`), 4)
    }))

  it.effect("a file that is not the expected document fails and loads nothing, on either thread", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "wrong-root.xml")
      fs.writeFileSync(file, `<items><group id="1" code="a" created_at="2026-01-01T00:00:00Z"><name/></group></items>`)
      const loader = yield* Xml2Pg
      const onMain = yield* Effect.flip(
        loader.ingest({ files: [file], settings: settingsFor(schema, dir, { parseWorker: false }) })
      )
      const error = yield* Effect.flip(loader.ingest({ files: [file], settings: settingsFor(schema, dir) }))
      assert.deepStrictEqual(onMain, error)
      assert.strictEqual(error._tag, "XmlParseError")
      assert.strictEqual(error.message, `${file}: XML error at byte 0: root element is <items>, expected <groups>`)
      const sql = yield* SqlClient.SqlClient
      // the second attempt resumed the first, failed run
      const runs = yield* sql.unsafe<{ state: string; rows_loaded: string }>(
        `select state, rows_loaded::text from ${qualify(schema, "xml2pg_run")} where file = $1`,
        [file]
      )
      assert.deepStrictEqual(runs, [{ state: "failed", rows_loaded: "0" }])
    }))

  it.effect("a missing file is a ReadError naming it", () =>
    Effect.gen(function*() {
      const loader = yield* Xml2Pg
      const file = path.join(dir, "nope.xml")
      const error = yield* Effect.flip(loader.ingest({ files: [file], settings: settingsFor(schema, dir) }))
      assert.strictEqual(error._tag, "ReadError")
      assert.include(error.message, `cannot read ${file}: ENOENT`)
    }))
})
