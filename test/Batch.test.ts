import { assert, describe, it } from "@effect/vitest"
import { type Batch, BatchBuilder, type BatchLimits, type TableFormat, tableFormats } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import type { Reject } from "../src/xml/RecordParser.js"
import { Producer } from "../src/xml/Producer.js"
import { copyRows } from "./copyText.js"
import { byteSpan } from "./utils.js"

const NO_LIMIT = 1 << 30

const lines = (batch: Batch, table: number): Array<Array<string>> => {
  const text = batch.tables[table]!.chunks.join("")
  const out = text.split("\n")
  assert.strictEqual(out.pop(), "")
  return out.map((l) => l.split("\t"))
}

const reject = (ord: number): Reject => ({
  file: "f",
  offset: ord * 100,
  element: "group",
  id: String(ord),
  kind: "group: missing element <name>",
  reason: "missing element <name>",
  ord
})

/** COPY text, no column known to be plain */
const TEXT: TableFormat = { _tag: "text", plain: [] }

const builder = (limits: BatchLimits, firstSeq = 1) => {
  const batches: Array<Batch> = []
  const b = new BatchBuilder([TEXT, TEXT], 5, limits, (batch) => batches.push(batch), firstSeq)
  return { b, batches }
}

describe("BatchBuilder", () => {
  it("cuts by rows after the record that reaches the limit; finish emits the rest", () => {
    const { b, batches } = builder({ rows: 3, bytes: NO_LIMIT })
    for (let ord = 1; ord <= 7; ord++) {
      b.row(0, [String(ord)], ord)
      b.recordEnd(byteSpan(ord * 10, ord * 10 + 8))
    }
    assert.strictEqual(batches.length, 2)
    b.finish()
    assert.deepStrictEqual(
      batches.map((x) => [x.seq, x.rows, x.byteStart, x.byteEnd, x.firstOrd, x.lastOrd]),
      [[1, 3, 10, 38, 1, 3], [2, 3, 40, 68, 4, 6], [3, 1, 70, 78, 7, 7]]
    )
    assert.deepStrictEqual(lines(batches[1]!, 0), [["5", "2", "4", "4"], ["5", "2", "5", "5"], ["5", "2", "6", "6"]])
    assert.deepStrictEqual(batches[1]!.tables[1], { chunks: [], rows: 0 })
  })

  it("cuts by approximate bytes: the encoded COPY text length", () => {
    const { b, batches } = builder({ rows: NO_LIMIT, bytes: 25 })
    for (let ord = 1; ord <= 7; ord++) {
      b.row(0, ["abc"], ord)
      b.recordEnd(byteSpan(ord, ord + 1))
    }
    b.finish()
    assert.strictEqual("5\t1\t1\tabc\n".length, 10)
    assert.deepStrictEqual(batches.map((x) => [x.rows, x.bytes]), [[3, 30], [3, 30], [1, 10]])
    for (const x of batches) assert.strictEqual(x.tables[0]!.chunks.join("").length, x.bytes)
  })

  it("a record is never split: all its rows, in every table, stay in one batch", () => {
    const { b, batches } = builder({ rows: 2, bytes: NO_LIMIT })
    let ord = 0
    for (const events of [5, 0, 1, 3]) {
      b.row(0, ["g"], ++ord)
      for (let e = 0; e < events; e++) b.row(1, ["e"], ++ord)
      b.recordEnd(byteSpan(ord, ord + 1))
    }
    b.finish()
    assert.deepStrictEqual(batches.map((x) => [x.tables[0]!.rows, x.tables[1]!.rows, x.firstOrd, x.lastOrd]), [
      [1, 5, 1, 6],
      [2, 1, 7, 9],
      [1, 3, 10, 13]
    ])
  })

  it("a record over the byte limit is kept whole and closes its batch", () => {
    const { b, batches } = builder({ rows: NO_LIMIT, bytes: 100 })
    const big = "x".repeat(500)
    b.row(0, [big], 1)
    b.recordEnd(byteSpan(0, 10))
    b.row(0, ["s"], 2)
    b.recordEnd(byteSpan(10, 20))
    b.row(0, [big], 3)
    b.recordEnd(byteSpan(20, 30))
    b.row(0, ["s"], 4)
    b.recordEnd(byteSpan(30, 40))
    b.finish()
    // the check runs after each record, so a batch ends at the first record that reaches a limit
    assert.deepStrictEqual(batches.map((x) => [x.firstOrd, x.lastOrd, x.byteStart, x.byteEnd]), [
      [1, 1, 0, 10],
      [2, 3, 10, 30],
      [4, 4, 30, 40]
    ])
    assert.deepStrictEqual(lines(batches[0]!, 0), [["5", "1", "1", big]])
  })

  it("rejects travel in the batch of the record they belong to, count toward the row limit, and move firstOrd/lastOrd", () => {
    const { b, batches } = builder({ rows: 2, bytes: NO_LIMIT })
    b.reject(reject(1))
    b.recordEnd(byteSpan(0, 10))
    b.row(0, ["a"], 2)
    b.recordEnd(byteSpan(10, 20))
    b.row(0, ["b"], 3)
    b.recordEnd(byteSpan(20, 30))
    b.row(0, ["c"], 4)
    b.recordEnd(byteSpan(30, 40))
    b.reject(reject(5))
    b.recordEnd(byteSpan(40, 50))
    b.finish()
    assert.deepStrictEqual(batches.map((x) => [x.seq, x.rows, x.rejects.map((r) => r.ord), x.firstOrd, x.lastOrd]), [
      [1, 1, [1], 1, 2],
      [2, 2, [], 3, 4],
      [3, 0, [5], 5, 5]
    ])
  })

  it("numbers batches from firstSeq and writes run id, seq and ord in front of each row", () => {
    const { b, batches } = builder({ rows: 1, bytes: NO_LIMIT }, 41)
    b.row(1, ["x", null, "a\tb"], 9)
    b.recordEnd(byteSpan(0, 1))
    b.row(0, [""], 10)
    b.recordEnd(byteSpan(1, 2))
    b.finish()
    assert.deepStrictEqual(batches.map((x) => x.seq), [41, 42])
    assert.strictEqual(batches[0]!.tables[1]!.chunks.join(""), "5\t41\t9\tx\t\\N\ta\\tb\n")
    assert.strictEqual(batches[1]!.tables[0]!.chunks.join(""), "5\t42\t10\t\n")
  })

  it("finish emits nothing when nothing is pending", () => {
    const { b, batches } = builder({ rows: 1, bytes: NO_LIMIT })
    b.finish()
    assert.deepStrictEqual(batches, [])
    b.row(0, ["a"], 1)
    b.recordEnd(byteSpan(0, 1))
    b.finish()
    assert.strictEqual(batches.length, 1)
  })

  it("keeps big table text in pieces that end at row boundaries", () => {
    const { b, batches } = builder({ rows: NO_LIMIT, bytes: NO_LIMIT })
    const value = "v".repeat(1000)
    for (let ord = 1; ord <= 300; ord++) b.row(0, [value], ord)
    b.recordEnd(byteSpan(0, 1))
    b.finish()
    const chunks = batches[0]!.tables[0]!.chunks
    assert.isAbove(chunks.length, 1)
    for (const c of chunks) assert.strictEqual(c[c.length - 1], 0x0a)
    assert.strictEqual(lines(batches[0]!, 0).length, 300)
    assert.strictEqual(batches[0]!.tables[0]!.rows, 300)
  })
})

// == through the Producer

/** 40 groups with 0..3 events, Cyrillic text, every 7th group and every 5th event rejected. */
const sampleXml = (): string => {
  const parts: Array<string> = [`<?xml version="1.0" encoding="UTF-8"?>\n<!-- sample -->\n<groups>\n`]
  let eventId = 0
  for (let g = 1; g <= 40; g++) {
    const code = g % 7 === 0 ? "" : `G-${g}`
    parts.push(`  <group id="${g}" code="${code}" created_at="2026-01-01T00:00:00Z">\n    <name>Группа ${g} 😀</name>\n`)
    for (let e = 0; e < g % 4; e++) {
      const id = ++eventId
      const severity = id % 5 === 0 ? "9" : String(id % 8)
      parts.push(
        `    <event id="${id}" type="t" occurred_at="2026-01-01T00:00:01Z" severity="${severity}">` +
          `<payload>событие ${id}\tтаб</payload></event>\n`
      )
    }
    parts.push(`  </group>\n`)
  }
  parts.push(`</groups>\n`)
  return parts.join("")
}

const produce = (input: Buffer, limits: BatchLimits, size: number) => {
  const p = new Producer({ file: "sample.xml", doc: GroupsDocument, runId: 3, limits })
  const written: Array<Batch> = []
  for (let i = 0; i < input.length; i += size) written.push(...p.write(input.subarray(i, i + size)))
  const ended = p.end()
  return { written, ended, all: [...written, ...ended] }
}

const formats = tableFormats(GroupsDocument)

/** The Producer's rows of `table` in `batch`, fields as strings (see `copyRows`). */
const rows = (batch: Batch, table: number) => copyRows(batch.tables[table]!.chunks, formats[table]!)

describe("Producer batches", () => {
  const input = Buffer.from(sampleXml())
  const limits = { rows: 10, bytes: NO_LIMIT }
  const { all: batches, ended } = produce(input, limits, input.length)

  it("are numbered 1..n and the last partial one comes from end()", () => {
    assert.deepStrictEqual(batches.map((b) => b.seq), Array.from({ length: batches.length }, (_, i) => i + 1))
    assert.isAbove(batches.length, 3)
    assert.isAtMost(ended.length, 1)
    for (const b of ended) assert.isBelow(b.rows + b.rejects.length, 10)
    for (const b of batches.slice(0, -1)) assert.isAtLeast(b.rows + b.rejects.length, 10)
  })

  it("cover the records with contiguous byte ranges cut between top-level records", () => {
    assert.strictEqual(batches[0]!.byteStart, input.indexOf("<group "))
    assert.strictEqual(batches.at(-1)!.byteEnd, input.lastIndexOf("</group>") + "</group>".length)
    batches.forEach((b, i) => {
      const text = input.subarray(b.byteStart, b.byteEnd).toString("utf8")
      assert.isTrue(text.startsWith("<group "), text.slice(0, 20))
      assert.isTrue(text.endsWith("</group>"))
      const next = batches[i + 1]
      if (next !== undefined) {
        assert.isAbove(next.byteStart, b.byteEnd)
        assert.strictEqual(input.subarray(b.byteEnd, next.byteStart).toString().trim(), "")
      }
    })
  })

  it("never split a group from its events", () => {
    for (const b of batches) {
      const groups = new Set(rows(b, 0).map((f) => f[3]))
      for (const r of b.rejects) if (r.element === "group") groups.add(r.id!)
      for (const e of rows(b, 1)) assert.isTrue(groups.has(e[4]), `event ${e[3]} of group ${e[4]} in batch ${b.seq}`)
    }
  })

  it("have firstOrd/lastOrd spanning their rows and rejects, contiguous across batches", () => {
    let expected = 1
    for (const b of batches) {
      const ords = [...rows(b, 0), ...rows(b, 1)].map((f) => Number(f[2])).concat(b.rejects.map((r) => r.ord))
      assert.strictEqual(b.firstOrd, expected)
      assert.strictEqual(Math.min(...ords), b.firstOrd)
      assert.strictEqual(Math.max(...ords), b.lastOrd)
      assert.strictEqual(ords.length, b.lastOrd - b.firstOrd + 1)
      for (const f of [...rows(b, 0), ...rows(b, 1)]) assert.deepStrictEqual(f.slice(0, 2), ["3", String(b.seq)])
      expected = b.lastOrd + 1
    }
  })

  it("carry each reject in the batch whose byte range holds it", () => {
    const rejects = batches.flatMap((b) => b.rejects)
    assert.strictEqual(rejects.filter((r) => r.element === "group").length, 5)
    assert.isAbove(rejects.filter((r) => r.reason.startsWith("bad attribute severity")).length, 0)
    for (const b of batches) {
      for (const r of b.rejects) {
        assert.isAtLeast(r.offset, b.byteStart)
        assert.isBelow(r.offset, b.byteEnd)
        assert.isTrue(input.subarray(r.offset).toString().startsWith(`<${r.element} id="${r.id}"`))
      }
    }
  })

  it("cut by bytes too", () => {
    const byBytes = produce(input, { rows: NO_LIMIT, bytes: 300 }, input.length).all
    assert.isAbove(byBytes.length, 5)
    for (const b of byBytes.slice(0, -1)) assert.isAtLeast(b.bytes, 300)
    for (const b of byBytes) {
      const rejectBytes = b.rejects.reduce((n, r) => n + r.reason.length, 0)
      assert.strictEqual(b.bytes, rejectBytes + b.tables.reduce((n, t) => n + Buffer.concat(t.chunks).length, 0))
    }
    const all = (bs: Array<Batch>) =>
      bs.flatMap((b) => [0, 1].flatMap((t) => rows(b, t).map((f) => f.slice(2))))
        .sort((x, y) => Number(x[0]) - Number(y[0]))
    assert.deepStrictEqual(all(byBytes), all(batches))
  })

  it("end the last batch where its last record ends, even after long junk read while skipping a broken record", () => {
    // the broken last group is skipped while searching on for a record start: the chunks
    // searched are let go, the one where the last batch ends included
    const broken = `  <group id="99" code="G-99" created_at="2026-01-01T00:00:00Z"><name>Ж</nam></group>\n`
    const junk = `Ж${"ё".repeat(20_000)}\n`
    const text = sampleXml().replace("</groups>", `${broken}${junk}</groups>`)
    const input = Buffer.from(text)
    const expectedEnd = Buffer.byteLength(text.slice(0, text.indexOf(`<group id="99"`))) + 1
    for (const size of [input.length, 1000, 4096]) {
      const all = produce(input, limits, size).all
      assert.strictEqual(all.at(-1)!.byteEnd, expectedEnd, `chunk size ${size}`)
      assert.strictEqual(all.at(-1)!.rejects.at(-1)!.reason, "malformed XML: unexpected close tag.")
    }
  })

  it("are identical whatever the chunking", () => {
    for (const l of [limits, { rows: NO_LIMIT, bytes: 300 }, { rows: 1, bytes: 1 }]) {
      const whole = produce(input, l, input.length).all
      for (const size of [1, 3, 7, 4096]) {
        assert.deepStrictEqual(produce(input, l, size).all, whole, `chunk size ${size}`)
      }
    }
  })
})
