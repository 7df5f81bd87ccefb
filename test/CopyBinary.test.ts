import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BinaryKind, binaryKinds, fieldBound, writeField } from "../src/db/CopyBinary.js"
import { copyTargets, writeBatch } from "../src/db/Copy.js"
import { startRun } from "../src/db/Staging.js"
import { qualify } from "../src/db/Identifiers.js"
import { type Batch, BatchBuilder, type CopyFormats, tableFormats } from "../src/pipeline/Batch.js"
import { ingestFile } from "../src/pipeline/Ingest.js"
import { makeRejectsFile } from "../src/pipeline/RejectsFile.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import {
  attribute,
  child,
  type DocumentShape,
  fromWire,
  type RecordShape,
  toWire,
  ValueType
} from "../src/shape/Shape.js"
import { checkTimestamp } from "../src/shape/Values.js"
import { Producer } from "../src/xml/Producer.js"
import { inspectInput } from "../src/xml/XmlSource.js"
import { byteSpan, expectedRows, newSchema, random, settingsFor, stagedRows, TestLoader, tmpDir, writeXml } from "./utils.js"

const pad = (n: number, width: number) => String(n).padStart(width, "0")

/** Valid timestamps of every form `checkTimestamp` takes, years 1..9999, any offset it allows. */
const randomTimestamps = (count: number, seed: number): Array<string> => {
  const next = random(seed)
  const int = (n: number) => Math.floor(next() * n)
  const out: Array<string> = []
  while (out.length < count) {
    const year = 1 + int(9999)
    const month = 1 + int(12)
    const day = 1 + int(month === 2 ? 29 : 31)
    const digits = int(7)
    const fraction = digits === 0 ? "" : "." + pad(int(10 ** digits), digits)
    const zone = int(4) === 0
      ? "Z"
      : `${int(2) === 0 ? "+" : "-"}${pad(int(15), 2)}:${pad(int(60), 2)}`
    const s = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(int(24), 2)}:${pad(int(60), 2)}:${
      pad(int(60), 2)
    }${fraction}${zone}`
    if (checkTimestamp(s) === undefined) out.push(s)
  }
  return out
}

const EDGE_TIMESTAMPS = [
  "0001-01-01T00:00:00Z",
  "0001-01-01T00:00:00+14:59",
  "1899-12-31T23:59:59.999999Z",
  "1969-12-31T23:59:59.999999Z",
  "1970-01-01T00:00:00Z",
  "1999-12-31T23:59:59.999999Z",
  "2000-01-01T00:00:00Z",
  "2000-01-01T00:00:00.000001Z",
  "2000-01-01T00:00:00+00:01",
  // the low 32 bits reach 2^32 exactly before the carry into the high ones
  "2000-01-01T01:11:34.967296Z",
  "2000-02-29T12:00:00.5-03:30",
  "2024-02-29T23:59:59.123456+14:00",
  "2100-03-01T00:00:00Z",
  "9999-12-31T23:59:59.999999Z",
  "9999-12-31T23:59:59.999999-14:59"
]

/** The microseconds since 2000-01-01 UTC that PostgreSQL stores for `s`, worked out apart from the encoder. */
const referenceMicros = (s: string): bigint => {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|([+-])(\d\d):(\d\d))$/.exec(s)!
  const date = new Date(0)
  date.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  date.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]))
  const offset = m[8] === "Z" ? 0 : (m[9] === "+" ? 1 : -1) * (Number(m[10]) * 3600 + Number(m[11]) * 60)
  const micros = BigInt((m[7] ?? "").padEnd(6, "0"))
  return (BigInt(date.getTime()) / 1000n - BigInt(offset) - 946684800n) * 1000000n + micros
}

/** One field written by `writeField`, read back as its length word and its bytes. */
const field = (kind: BinaryKind, value: string | null) => {
  const b = Buffer.alloc(fieldBound(kind, value) + 8, 0xee)
  const n = writeField(b, 4, kind, value)
  assert.isAtMost(n, fieldBound(kind, value))
  assert.strictEqual(b[3], 0xee, "nothing written before the field")
  assert.strictEqual(b[4 + n], 0xee, "nothing written after the field")
  const length = b.readInt32BE(4)
  return { length, bytes: b.subarray(8, 4 + n) }
}

/** A record of an id and one value of `type`. */
const shape = (type: ValueType): RecordShape => ({
  element: "r",
  table: "r",
  stagingTable: "stg_r",
  key: "id",
  columns: [attribute("id", "id", ValueType.id), child("v", "v", type)],
  children: []
})
const doc = (type: ValueType): DocumentShape => ({ root: "rs", record: shape(type) })

describe("binary COPY fields", () => {
  it("timestamptz: the microseconds since 2000-01-01 UTC, for every form and range checkTimestamp takes", () => {
    const all = [...EDGE_TIMESTAMPS, ...randomTimestamps(20_000, 1)]
    // as the producer runs: each value checked just before it is written (the check's reading is reused)
    for (const s of all) {
      assert.strictEqual(checkTimestamp(s), undefined, s)
      const f = field(BinaryKind.timestamptz, s)
      assert.strictEqual(f.length, 8)
      assert.strictEqual(f.bytes.readBigInt64BE(0), referenceMicros(s), s)
    }
    // written without being the last one checked: read again, same instant
    for (const s of all) {
      checkTimestamp("2001-02-03T04:05:06.7+08:00")
      assert.strictEqual(field(BinaryKind.timestamptz, s).bytes.readBigInt64BE(0), referenceMicros(s), s)
    }
    // a check that fails at its last test leaves the last good reading as it was
    const good = "2024-02-29T12:00:00.25-03:30"
    assert.strictEqual(checkTimestamp(good), undefined)
    assert.strictEqual(checkTimestamp("2026-01-01T24:00:00.5+01:00"), "not a time of day")
    assert.strictEqual(field(BinaryKind.timestamptz, good).bytes.readBigInt64BE(0), referenceMicros(good))
    // and a string that never passed is not written
    assert.throws(() => field(BinaryKind.timestamptz, "2023-02-29T12:00:00Z"), /not a valid timestamp/)
    assert.throws(() => field(BinaryKind.timestamptz, ""), /not a valid timestamp/)
  })

  it("int8 ids up to 2^63-1, past 2^53 too; int2 with its sign; UTF-8 text; NULL", () => {
    for (const id of ["1", "42", "999999999999999", "1000000000000000", "9007199254740993", "9223372036854775807"]) {
      assert.strictEqual(field(BinaryKind.int8, id).bytes.readBigInt64BE(0), BigInt(id))
    }
    for (const n of [-32768, -300, -1, 0, 7, 255, 256, 32767]) {
      const f = field(BinaryKind.int2, String(n))
      assert.strictEqual(f.length, 2)
      assert.strictEqual(f.bytes.readInt16BE(0), n)
    }
    for (const text of ["", "tab\there\\N", "Группа 😀 漢字", "x".repeat(70_000)]) {
      const f = field(BinaryKind.text, text)
      assert.strictEqual(f.length, Buffer.byteLength(text))
      assert.strictEqual(f.bytes.toString("utf8"), text)
    }
    assert.deepStrictEqual(field(BinaryKind.text, null), { length: -1, bytes: Buffer.alloc(0) })
  })

  it("only built-in types whose SQL type is their own are binary; any other table stays COPY text", () => {
    assert.deepStrictEqual(binaryKinds(shape(ValueType.smallint(-5, 5))), [BinaryKind.int8, BinaryKind.int2])
    assert.deepStrictEqual(binaryKinds(shape(ValueType.smallint(-32768, 32767))), [BinaryKind.int8, BinaryKind.int2])
    assert.deepStrictEqual(binaryKinds(shape(ValueType.nonEmptyText)), [BinaryKind.int8, BinaryKind.text])
    // a range past int2's: 40000 passes the check, and binary would wrap it where the server rejects the text
    assert.isUndefined(binaryKinds(shape(ValueType.smallint(0, 40000))))
    assert.isUndefined(binaryKinds(shape(ValueType.smallint(-40000, 0))))
    // a check of one's own: the server parses the text, whatever the type
    assert.isUndefined(binaryKinds(shape({ sql: "numeric", check: () => undefined })))
    // a built-in check on another SQL type: binary int8 would not be that type's wire form
    assert.isUndefined(binaryKinds(shape({ ...ValueType.id, sql: "numeric" })))
    // a built-in type with a check of one's own: the encoders rely on the built-in check
    assert.isUndefined(binaryKinds(shape({ ...ValueType.timestamptz, check: () => undefined })))
    assert.isUndefined(binaryKinds(shape({ ...ValueType.smallint(0, 7), spec: { _tag: "smallint", min: 0, max: 9 } })))
    assert.deepStrictEqual(tableFormats(GroupsDocument).map((f) => f._tag), ["binary", "binary"])
    assert.deepStrictEqual(tableFormats(GroupsDocument, ["text", "binary"]).map((f) => f._tag), ["text", "binary"])
  })

  it("the worker, which rebuilds a shape from its specs, encodes every table as the main thread's writer expects", () => {
    for (const type of [ValueType.timestamptz, ValueType.smallint(1, 5), ValueType.nonEmptyText]) {
      const wire = toWire(doc(type))
      assert.isDefined(wire)
      assert.deepStrictEqual(tableFormats(fromWire(wire!)), tableFormats(doc(type)))
    }
    // types that only look built-in stay on the main thread, with their own check and SQL type
    for (
      const type of [
        { ...ValueType.id, sql: "numeric" },
        { ...ValueType.text, sql: "varchar(20)" },
        { ...ValueType.timestamptz, check: () => undefined },
        { ...ValueType.text, plain: true }
      ]
    ) assert.isUndefined(toWire(doc(type)))
    assert.deepStrictEqual(tableFormats(fromWire(toWire(GroupsDocument)!)), tableFormats(GroupsDocument))
  })
})

const schema = newSchema()
const RUN = 9

layer(TestLoader(schema))("binary COPY into staging", (it) => {
  it.effect("lands every value as PostgreSQL reads the same text: timestamps, ids, small integers, text, NULLs", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const timestamps = [...EDGE_TIMESTAMPS, ...randomTimestamps(5_000, 2)]
      const texts = ["", "tab\there", "line\nbreak\r\n", "back\\slash \\N", "Группа 😀 漢字", "ж".repeat(30_000), null]
      const ids = ["1", "999999999999999", "1000000000000000", "9007199254740993", "9223372036854775807"]
      const out: Array<Batch> = []
      const b = new BatchBuilder(tableFormats(GroupsDocument), RUN, { rows: 1000, bytes: 1 << 20 }, (x) => out.push(x))
      const expected: Array<{ ord: number; id: string; ts: string; severity: string | null; payload: string | null }> =
        []
      let ord = 0
      timestamps.forEach((ts, i) => {
        const groupOrd = ++ord
        const groupId = ids[i % ids.length]!
        b.row(0, [groupId, `G-${i}`, texts[i % texts.length] ?? "n", texts[(i + 1) % texts.length]!, ts], groupOrd)
        const eventOrd = ++ord
        const severity = i % 9 === 8 ? null : String(i % 8)
        const payload = texts[(i + 2) % texts.length]!
        b.row(1, [String(i + 1), groupId, "t", ts, severity, null, payload], eventOrd)
        expected.push({ ord: eventOrd, id: String(i + 1), ts, severity, payload })
        b.recordEnd(byteSpan(i * 10, i * 10 + 10))
      })
      b.finish()
      assert.isAbove(out.length, 5, "several batches, several pieces")
      const targets = copyTargets(GroupsDocument, schema)
      let rows = 0
      for (const batch of out) rows += yield* writeBatch(targets, RUN, batch)
      assert.strictEqual(rows, 2 * timestamps.length)

      // every timestamp and id compared, in the database, with PostgreSQL's own parse of the text
      const events = qualify(schema, "stg_event")
      const groups = qualify(schema, "stg_group_event")
      const mismatched = yield* sql.unsafe<{ n: number }>(
        `select count(*)::int as n from ${events} e
         join unnest($1::text[], $2::text[]) as x(id, ts) on e.event_id = x.id::bigint
         where e.occurred_at is distinct from x.ts::timestamptz or e.run_id <> ${RUN}`,
        [expected.map((e) => e.id), expected.map((e) => e.ts)]
      )
      assert.strictEqual(mismatched[0]!.n, 0)
      const groupMismatch = yield* sql.unsafe<{ n: number }>(
        `select count(*)::int as n from ${groups} g
         join unnest($1::bigint[], $2::text[], $3::text[]) as x(ord, id, ts) on g.ord = x.ord
         where g.created_at is distinct from x.ts::timestamptz or g.group_id <> x.id::bigint`,
        [expected.map((e) => e.ord - 1), timestamps.map((_, i) => ids[i % ids.length]!), timestamps]
      )
      assert.strictEqual(groupMismatch[0]!.n, 0)

      // the text of each group row, exactly
      const groupTexts = yield* sql.unsafe<{ code: string; name: string; description: string | null }>(
        `select code, name, description from ${groups} order by ord`
      )
      assert.deepStrictEqual(
        groupTexts,
        timestamps.map((_, i) => ({
          code: `G-${i}`,
          name: texts[i % texts.length] ?? "n",
          description: texts[(i + 1) % texts.length]!
        }))
      )

      // the rest of each event row, exactly
      const loaded = yield* sql.unsafe<
        { ord: number; id: string; severity: number | null; source: string | null; payload: string | null }
      >(`select ord::int, event_id::text as id, severity, source, payload from ${events} order by ord`)
      assert.deepStrictEqual(
        loaded,
        expected.map((e) => ({
          ord: e.ord,
          id: e.id,
          severity: e.severity === null ? null : Number(e.severity),
          source: null,
          payload: e.payload
        }))
      )
      const counts = yield* sql.unsafe<{ batches: number; seqs: number }>(
        `select count(distinct batch_seq)::int as seqs,
                (select count(*)::int from ${qualify(schema, "xml2pg_batch")}) as batches from ${events}`
      )
      assert.deepStrictEqual(counts, [{ seqs: out.length, batches: out.length }])
    }))
})

const resumeSchema = newSchema()
const resumeDir = tmpDir()

layer(TestLoader(resumeSchema))("a run begun before binary COPY", (it) => {
  it.effect("resumes as COPY text, so its batches are cut as they were and no record is lost or loaded twice", () =>
    Effect.gen(function*() {
      const file = path.join(resumeDir, "groups.xml")
      const generated = { groups: 400, eventsPerGroup: 2, seed: 9 }
      writeXml(file, generated)
      const input = fs.readFileSync(file)
      // cut by bytes only, so the encoding decides where batches end
      const limits = { rows: 1_000_000, bytes: 20_000 }
      const cuts = (formats: CopyFormats, runId: number) => {
        const p = new Producer({ file, doc: GroupsDocument, runId, limits, formats })
        return [...p.write(input), ...p.end()]
      }
      const binaryCuts = cuts(["binary", "binary"], 1).map((b) => b.byteEnd)

      // what an earlier build did: a run whose settings name no formats, batches 1-3 and 5
      // committed (5 before 4, as concurrent writers can), then the process died
      const info = yield* inspectInput(file)
      const runId = yield* startRun(resumeSchema, {
        file,
        fileSize: info.size,
        fingerprint: info.fingerprint,
        settings: { batchRows: limits.rows, batchBytes: limits.bytes, writers: 2, queueSize: 4 }
      })
      const text = cuts(["text", "text"], runId)
      assert.isAbove(text.length, 5)
      assert.notDeepEqual(text.map((b) => b.byteEnd), binaryCuts, "the two encodings must cut differently")
      const oldTargets = copyTargets(GroupsDocument, resumeSchema, ["text", "text"])
      for (const seq of [1, 2, 3, 5]) yield* writeBatch(oldTargets, runId, text[seq - 1]!)

      const rejects = yield* makeRejectsFile(path.join(resumeDir, "rejects.ndjson"))
      const summary = yield* ingestFile(file, {
        doc: GroupsDocument,
        settings: settingsFor(resumeSchema, resumeDir, { batchRows: limits.rows, batchBytes: limits.bytes }),
        rejects,
        resume: "require"
      })
      assert.strictEqual(summary.runId, runId)
      assert.strictEqual(summary.state, "done")
      assert.deepStrictEqual(yield* stagedRows(resumeSchema, runId), expectedRows(generated))
      const sql = yield* SqlClient.SqlClient
      const ledger = yield* sql.unsafe<{ seq: number; byte_end: string }>(
        `select batch_seq as seq, byte_end::text from ${qualify(resumeSchema, "xml2pg_batch")}
         where run_id = $1 order by batch_seq`,
        [runId]
      )
      assert.deepStrictEqual(ledger.map((b) => Number(b.byte_end)), text.map((b) => b.byteEnd))
    }).pipe(Effect.scoped))
})
