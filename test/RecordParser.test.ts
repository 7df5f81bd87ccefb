import { assert, describe, it } from "@effect/vitest"
import { XmlParseError } from "../src/Errors.js"
import { type Batch, tableFormats } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import {
  attribute,
  child,
  type DocumentShape,
  parentKey,
  type RecordShape,
  recordShapes,
  ValueType
} from "../src/shape/Shape.js"
import { type Reject, RecordParser } from "../src/xml/RecordParser.js"
import { Producer } from "../src/xml/Producer.js"
import { copyRows } from "./copyText.js"

type Row = Record<string, string | number | null>

interface Parsed {
  readonly group: Array<Row>
  readonly event: Array<Row>
  readonly rejects: Array<Reject>
}

interface RunOptions {
  readonly maxRecordChars?: number
  readonly recover?: boolean
}

const shapes = recordShapes(GroupsDocument)

const formats = tableFormats(GroupsDocument)

/** COPY data back to rows keyed by column name; run_id and batch_seq are checked, then dropped. */
const decodeTable = (batch: Batch, table: number): Array<Row> => {
  const columns = shapes[table]!.columns
  const rows = copyRows(batch.tables[table]!.chunks, formats[table]!)
  assert.strictEqual(rows.length, batch.tables[table]!.rows)
  return rows.map((fields) => {
    assert.strictEqual(fields.length, 3 + columns.length)
    assert.strictEqual(fields[0], "7")
    assert.strictEqual(fields[1], String(batch.seq))
    const row: Row = { ord: Number(fields[2]) }
    columns.forEach((c, i) => {
      row[c.name] = fields[3 + i]!
    })
    return row
  })
}

const toBytes = (input: string | Uint8Array): Buffer =>
  typeof input === "string" ? Buffer.from(input, "utf8") : Buffer.from(input)

const producer = (options: RunOptions) =>
  new Producer({
    file: "in.xml",
    doc: GroupsDocument,
    runId: 7,
    limits: { rows: 1_000_000, bytes: 1 << 30 },
    ...options
  })

const collect = (batches: Array<Batch>): Parsed => ({
  group: batches.flatMap((b) => decodeTable(b, 0)),
  event: batches.flatMap((b) => decodeTable(b, 1)),
  rejects: batches.flatMap((b) => [...b.rejects])
})

/** Feeds the pieces to a Producer, then ends it. */
const runPieces = (pieces: Array<Buffer>, options: RunOptions = {}): Parsed => {
  const p = producer(options)
  const batches: Array<Batch> = []
  for (const piece of pieces) batches.push(...p.write(piece))
  batches.push(...p.end())
  return collect(batches)
}

const chunked = (bytes: Buffer, size: number): Array<Buffer> => {
  const out: Array<Buffer> = []
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size))
  return out
}

const run = (input: string | Uint8Array, size: number, options: RunOptions = {}): Parsed => {
  const bytes = toBytes(input)
  return runPieces(chunked(bytes, size), options)
}

const CHUNK_SIZES = [1, 3, 7]

/** Parses `input` whole and in 1-, 3- and 7-byte chunks; all must agree. */
const parse = (input: string | Uint8Array, options: RunOptions = {}): Parsed => {
  const whole = run(input, Number.MAX_SAFE_INTEGER, options)
  for (const size of CHUNK_SIZES) assert.deepStrictEqual(run(input, size, options), whole, `chunk size ${size}`)
  return whole
}

const parseError = (input: string | Uint8Array, size = Number.MAX_SAFE_INTEGER, options: RunOptions = {}): XmlParseError => {
  try {
    run(input, size, options)
  } catch (e) {
    assert.instanceOf(e, XmlParseError)
    return e as XmlParseError
  }
  return assert.fail("expected an XmlParseError")
}

const doc = (body: string): string => `<?xml version="1.0" encoding="UTF-8"?>\n<groups>\n${body}\n</groups>\n`

const G = `id="1" code="G-1" created_at="2026-01-01T00:00:00Z"`

const group = (fields: Partial<Row> & { ord: number }): Row => ({
  group_id: "1",
  code: "G-1",
  name: "n",
  description: null,
  created_at: "2026-01-01T00:00:00Z",
  ...fields
})

const event = (fields: Partial<Row> & { ord: number; event_id: string }): Row => ({
  group_id: "1",
  type: "t",
  occurred_at: "2026-01-01T00:00:01Z",
  severity: null,
  source: null,
  payload: null,
  ...fields
})

/** A single group's field values, parsed through every chunking. */
const groupField = (inner: string): Row => {
  const r = parse(doc(`<group ${G}>${inner}</group>`))
  assert.strictEqual(r.rejects.length, 0, JSON.stringify(r.rejects))
  assert.strictEqual(r.group.length, 1)
  return r.group[0]!
}

const SPEC_EXAMPLE = `<?xml version="1.0" encoding="UTF-8"?>
<groups>
  <group id="1" code="G-0000001" created_at="2026-01-01T00:00:00.000Z">
    <name>Группа №1 &amp; co</name>
    <description><![CDATA[free text, may hold <markup>]]></description>
    <event id="1" type="click" occurred_at="2026-01-01T00:00:01.250Z" severity="3">
      <source>web</source>
      <payload>any text: tabs, newlines, backslashes \\N, quotes, emoji</payload>
    </event>
    <event id="2" type="view" occurred_at="2026-01-01T00:00:02+03:00"/>
  </group>
</groups>
`

/** A document of `<item>` records in `<items>`, keyed by `item_id`. */
const itemsShape = (columns: RecordShape["columns"], children: RecordShape["children"] = []): DocumentShape => ({
  root: "items",
  record: { element: "item", table: "item", stagingTable: "stg_item", key: "item_id", columns, children }
})

/** The rows `xml` gives, each with its table's index; a reject fails the test. */
const rowsOf = (shape: DocumentShape, xml: string): Array<[number, Array<string | null>]> => {
  const rows: Array<[number, Array<string | null>]> = []
  const parser = new RecordParser(shape, {
    row: (table, values) => rows.push([table, [...values]]),
    reject: (reject) => assert.fail(reject.reason),
    recordEnd: () => {}
  }, { file: "in.xml" })
  parser.write(xml)
  parser.end()
  return rows
}

describe("RecordParser", () => {
  describe("values", () => {
    it("the spec example gives exactly the expected rows", () => {
      const r = parse(SPEC_EXAMPLE)
      assert.deepStrictEqual(r, {
        group: [{
          ord: 1,
          group_id: "1",
          code: "G-0000001",
          name: "Группа №1 & co",
          description: "free text, may hold <markup>",
          // timestamps load as binary timestamptz: the instant, shown here in UTC
          created_at: "2026-01-01T00:00:00Z"
        }],
        event: [
          {
            ord: 2,
            event_id: "1",
            group_id: "1",
            type: "click",
            occurred_at: "2026-01-01T00:00:01.250000Z",
            severity: "3",
            source: "web",
            payload: "any text: tabs, newlines, backslashes \\N, quotes, emoji"
          },
          {
            ord: 3,
            event_id: "2",
            group_id: "1",
            type: "view",
            occurred_at: "2025-12-31T21:00:02Z",
            severity: null,
            source: null,
            payload: null
          }
        ],
        rejects: []
      })
    })

    it("multibyte text split at every byte position", () => {
      const input = doc(
        `<group id="1" code="Код-😀" created_at="2026-01-01T00:00:00Z">` +
          `<name>Привет, мир 😀🎉 ж</name><description>é😀\t\\N<![CDATA[ё😀]]>&#x1F600;</description>` +
          `<event id="2" type="щелчок" occurred_at="bad"/>` +
          `<event id="3" type="t" occurred_at="2026-01-01T00:00:01Z"><payload>𝄞 ü 中文</payload></event>` +
          `</group>`
      )
      const bytes = Buffer.from(input)
      const whole = run(input, bytes.length)
      assert.deepStrictEqual(whole.group[0]!["name"], "Привет, мир 😀🎉 ж")
      assert.deepStrictEqual(whole.group[0]!["code"], "Код-😀")
      assert.deepStrictEqual(whole.group[0]!["description"], "é😀\t\\Nё😀😀")
      assert.deepStrictEqual(whole.event, [event({ ord: 3, event_id: "3", payload: "𝄞 ü 中文" })])
      assert.strictEqual(whole.rejects.length, 1)
      assert.strictEqual(whole.rejects[0]!.offset, bytes.indexOf("<event id=\"2\""))
      for (let cut = 1; cut < bytes.length; cut++) {
        const split = runPieces([bytes.subarray(0, cut), bytes.subarray(cut)])
        assert.deepStrictEqual(split, whole, `cut at byte ${cut}`)
      }
      for (const size of CHUNK_SIZES) assert.deepStrictEqual(run(input, size), whole, `chunk size ${size}`)
    })

    it("entities, character references and CDATA concatenate with text", () => {
      assert.strictEqual(
        groupField(`<name>a &amp; b &lt;c&gt; &quot;&apos; &#x1F600;&#128512; x&#13;y&#10;z&#9;w</name>`)["name"],
        "a & b <c> \"' 😀😀 x\ry\nz\tw"
      )
      assert.strictEqual(
        groupField(`<name>n</name><description>pre<![CDATA[<raw> & &amp; ]]>mid<![CDATA[]]>&amp;post</description>`)[
          "description"
        ],
        "pre<raw> & &amp; mid&post"
      )
    })

    it("a CDATA section split around ]]> rejoins exactly", () => {
      assert.strictEqual(groupField(`<name><![CDATA[a]]]]><![CDATA[>b]]></name>`)["name"], "a]]>b")
    })

    it("comments and processing instructions inside a value are dropped", () => {
      assert.strictEqual(groupField(`<name>a<!--x-->b<?pi x?>c</name>`)["name"], "abc")
      assert.strictEqual(groupField(`<name><!--only a comment--></name>`)["name"], "")
    })

    it("values are not trimmed", () => {
      const g = groupField(`<name>  two spaces\n</name><description>\n\n  lines  \n</description>`)
      assert.strictEqual(g["name"], "  two spaces\n")
      assert.strictEqual(g["description"], "\n\n  lines  \n")
      assert.strictEqual(groupField(`<name> </name>`)["name"], " ")
    })

    it("a literal CR LF is read as LF (XML line-end normalization); &#13; stays CR", () => {
      assert.strictEqual(groupField(`<name>a\r\nb\rc&#13;&#10;d</name>`)["name"], "a\nb\nc\r\nd")
    })

    it("<description/> is the empty string, no <description> is null", () => {
      assert.strictEqual(groupField(`<name>n</name><description/>`)["description"], "")
      assert.strictEqual(groupField(`<name>n</name><description></description>`)["description"], "")
      assert.strictEqual(groupField(`<name>n</name>`)["description"], null)
      assert.strictEqual(groupField(`<name/>`)["name"], "")
    })

    it("unknown attributes are ignored", () => {
      const r = parse(doc(
        `<group ${G} extra="x" xmlns:q="urn:q" q:id="99"><name>n</name>` +
          `<event id="5" type="t" occurred_at="2026-01-01T00:00:01Z" color="red"/></group>`
      ))
      assert.deepStrictEqual(r.group, [group({ ord: 1 })])
      assert.deepStrictEqual(r.event, [event({ ord: 2, event_id: "5" })])
      assert.deepStrictEqual(r.rejects, [])
    })

    it("unknown elements are ignored with everything inside them, events included", () => {
      const r = parse(doc(
        `<meta><group id="9" code="X" created_at="2026-01-01T00:00:00Z"><name>hidden</name></group></meta>` +
          `<group ${G}><extra><name>not me</name><event id="8" type="t" occurred_at="2026-01-01T00:00:01Z"/></extra>` +
          `<name>n</name><wrap><wrap><event id="7" type="t" occurred_at="bad"/></wrap></wrap>` +
          `<event id="5" type="t" occurred_at="2026-01-01T00:00:01Z"><unknown><source>no</source></unknown></event>` +
          `</group>` +
          `<event id="6" type="t" occurred_at="2026-01-01T00:00:01Z"/>`
      ))
      assert.deepStrictEqual(r.group, [group({ ord: 1 })])
      assert.deepStrictEqual(r.event, [event({ ord: 2, event_id: "5" })])
      assert.deepStrictEqual(r.rejects, [])
    })

    it("an element nested inside a value element is skipped with its content", () => {
      assert.strictEqual(groupField(`<name>a<b>x</b>c</name>`)["name"], "ac")
      assert.strictEqual(groupField(`<name>a<b>x<c>y</c></b>c<br/>d</name>`)["name"], "acd")
      const r = parse(doc(
        `<group ${G}><name>a<event id="5" type="t" occurred_at="2026-01-01T00:00:01Z"/>c</name></group>`
      ))
      assert.deepStrictEqual(r.group, [group({ ord: 1, name: "ac" })])
      assert.deepStrictEqual(r.event, [])
    })

    it("attribute and child order is free", () => {
      const r = parse(doc(
        `<group created_at="2026-01-01T00:00:00Z" code="G-1" id="1">` +
          `<event occurred_at="2026-01-01T00:00:01Z" severity="0" type="t" id="5">` +
          `<payload>p</payload><source>s</source></event>` +
          `<description>d</description><event type="t" id="6" occurred_at="2026-01-01T00:00:01Z"/><name>n</name>` +
          `</group>`
      ))
      assert.deepStrictEqual(r.group, [group({ ord: 1, description: "d" })])
      assert.deepStrictEqual(r.event, [
        event({ ord: 2, event_id: "5", severity: "0", source: "s", payload: "p" }),
        event({ ord: 3, event_id: "6" })
      ])
    })

    it("whitespace, comments and PIs around records and before the root are ignored", () => {
      const input = `<?xml version="1.0"?>\n<!-- head -->\n<?style x?>\n\n` +
        `<groups>\n  <!-- c -->\n  <?pi?>\n  text between\n` +
        `<group ${G}>\n  <!-- in group -->\n  <?pi y?>\n  stray text\n  <name>n</name>\n</group>\n<!-- c2 -->` +
        `<group id="2" code="G-2" created_at="2026-01-01T00:00:00Z"><name>m</name></group>\n</groups>\n<!-- tail -->\n`
      const r = parse(input)
      assert.deepStrictEqual(r.group, [group({ ord: 1 }), group({ ord: 2, group_id: "2", code: "G-2", name: "m" })])
      assert.deepStrictEqual(r.rejects, [])
    })

    it("a document without an XML declaration and with an empty root gives nothing", () => {
      assert.deepStrictEqual(parse("<groups/>"), { group: [], event: [], rejects: [] })
      assert.deepStrictEqual(parse("<groups></groups>"), { group: [], event: [], rejects: [] })
    })

    it("ord numbers records in document order across groups and events", () => {
      const r = parse(doc(
        `<group ${G}><name>n</name><event id="1" type="t" occurred_at="2026-01-01T00:00:01Z"/>` +
          `<event id="2" type="t" occurred_at="2026-01-01T00:00:01Z"/></group>` +
          `<group id="2" code="G-2" created_at="2026-01-01T00:00:00Z"><name>n</name></group>` +
          `<group id="3" code="G-3" created_at="2026-01-01T00:00:00Z">` +
          `<event id="3" type="t" occurred_at="2026-01-01T00:00:01Z"/>` +
          `<name>n</name></group>`
      ))
      assert.deepStrictEqual(r.group.map((g) => [g["ord"], g["group_id"]]), [[1, "1"], [4, "2"], [5, "3"]])
      assert.deepStrictEqual(r.event.map((e) => [e["ord"], e["event_id"], e["group_id"]]), [
        [2, "1", "1"],
        [3, "2", "1"],
        [6, "3", "3"]
      ])
    })

    it("a shape naming a child element twice: the last column reads it, and a field hides a nested record", () => {
      const note: RecordShape = {
        element: "note",
        table: "note",
        stagingTable: "stg_note",
        key: "note_id",
        columns: [attribute("id", "note_id", ValueType.id, true), parentKey("item_id")],
        children: []
      }
      const shape = itemsShape([
        attribute("id", "item_id", ValueType.id, true),
        child("note", "first_note", ValueType.text),
        child("note", "last_note", ValueType.text)
      ], [note])
      const rows = rowsOf(shape, `<items><item id="1"><note id="5">hello</note></item></items>`)
      assert.deepStrictEqual(rows, [[0, ["1", null, "hello"]]])
    })

    it("attributes in any order, one read into two columns, others passed over", () => {
      const shape = itemsShape([
        attribute("id", "item_id", ValueType.id, true),
        attribute("code", "code", ValueType.text),
        attribute("id", "id_again", ValueType.text),
        attribute("kind", "kind", ValueType.text)
      ])
      const rows = rowsOf(shape, `<items><item extra="x" kind="k" code="c&amp;d" id="7"/><item id="8"></item></items>`)
      assert.deepStrictEqual(rows, [[0, ["7", "c&d", "7", "k"]], [0, ["8", null, "8", null]]])
    })
  })

  describe("rejects", () => {
    const rejectsOf = (body: string) => {
      const input = doc(body)
      const r = parse(input)
      return { ...r, bytes: Buffer.from(input) }
    }

    it("group rules", () => {
      const cases: Array<readonly [string, string | null, string, string]> = [
        [
          `<group code="G" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`,
          null,
          "group: missing attribute id",
          "missing attribute id"
        ],
        [
          `<group id="01" code="G" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`,
          "01",
          "group: bad attribute id",
          `bad attribute id: "01" not an id in 1..2^63-1`
        ],
        [
          `<group id="2" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`,
          "2",
          "group: missing attribute code",
          "missing attribute code"
        ],
        [
          `<group id="3" code="" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`,
          "3",
          "group: bad attribute code",
          `bad attribute code: "" empty`
        ],
        [
          `<group id="4" code="G" created_at="2026-02-30T00:00:00Z"><name>n</name></group>`,
          "4",
          "group: bad attribute created_at",
          `bad attribute created_at: "2026-02-30T00:00:00Z" not a calendar date`
        ],
        [
          `<group id="5" code="G"><name>n</name></group>`,
          "5",
          "group: missing attribute created_at",
          "missing attribute created_at"
        ],
        [
          `<group id="6" code="G" created_at="2026-01-01T00:00:00Z"><description>d</description></group>`,
          "6",
          "group: missing element <name>",
          "missing element <name>"
        ],
        [
          `<group id="7" code="G" created_at="2026-01-01T00:00:00Z"><name>a</name><name>b</name></group>`,
          "7",
          "group: duplicate element <name>",
          "duplicate element <name>"
        ],
        [
          `<group id="8" code="G" created_at="2026-01-01T00:00:00Z">` +
          `<name>n</name><description/><description>d</description></group>`,
          "8",
          "group: duplicate element <description>",
          "duplicate element <description>"
        ]
      ]
      const { bytes, group: rows, rejects } = rejectsOf(cases.map(([xml]) => xml).join("\n"))
      assert.deepStrictEqual(rows, [])
      assert.deepStrictEqual(
        rejects,
        cases.map(([xml, id, kind, reason], i) => ({
          file: "in.xml",
          offset: bytes.indexOf(xml),
          element: "group",
          id,
          kind,
          reason,
          ord: i + 1
        }))
      )
    })

    it("event rules; events of a valid group still load", () => {
      const events: Array<readonly [string, string | null, string, string]> = [
        [
          `<event id="1" type="t" occurred_at="2026-01-01T00:00:01Z" severity="8"/>`,
          "1",
          "event: bad attribute severity",
          `bad attribute severity: "8" not an integer in 0..7`
        ],
        [
          `<event id="2" occurred_at="2026-01-01T00:00:01Z"/>`,
          "2",
          "event: missing attribute type",
          "missing attribute type"
        ],
        [
          `<event id="3" type="" occurred_at="2026-01-01T00:00:01Z"/>`,
          "3",
          "event: bad attribute type",
          `bad attribute type: "" empty`
        ],
        [
          `<event id="4" type="t" occurred_at="2026-01-01 00:00:01Z"/>`,
          "4",
          "event: bad attribute occurred_at",
          `bad attribute occurred_at: "2026-01-01 00:00:01Z" not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)`
        ],
        [`<event id="5" type="t"/>`, "5", "event: missing attribute occurred_at", "missing attribute occurred_at"],
        [
          `<event type="t" occurred_at="2026-01-01T00:00:01Z"/>`,
          null,
          "event: missing attribute id",
          "missing attribute id"
        ],
        [
          `<event id="0" type="t" occurred_at="2026-01-01T00:00:01Z"/>`,
          "0",
          "event: bad attribute id",
          `bad attribute id: "0" not an id in 1..2^63-1`
        ],
        [
          `<event id="6" type="t" occurred_at="2026-01-01T00:00:01Z"><source>a</source><source>b</source></event>`,
          "6",
          "event: duplicate element <source>",
          "duplicate element <source>"
        ]
      ]
      const good = `<event id="100" type="t" occurred_at="2026-01-01T00:00:01Z" severity="7"/>`
      const { bytes, event: rows, group: groups, rejects } = rejectsOf(
        `<group ${G}><name>n</name>\n${events.map(([xml]) => xml).join("\n")}\n${good}\n</group>`
      )
      assert.deepStrictEqual(groups, [group({ ord: 1 })])
      assert.deepStrictEqual(rows, [event({ ord: events.length + 2, event_id: "100", severity: "7" })])
      assert.deepStrictEqual(
        rejects,
        events.map(([xml, id, kind, reason], i) => ({
          file: "in.xml",
          offset: bytes.indexOf(xml),
          element: "event",
          id,
          kind,
          reason,
          ord: i + 2
        }))
      )
    })

    it("the events of a rejected group are rejected, naming the enclosing group", () => {
      const bad = `<group id="1" code="" created_at="2026-01-01T00:00:00Z">`
      const e1 = `<event id="10" type="t" occurred_at="2026-01-01T00:00:01Z"/>`
      const e2 = `<event id="11" type="" occurred_at="2026-01-01T00:00:01Z"/>`
      const e3 = `<event id="12" type="t" occurred_at="2026-01-01T00:00:01Z"/>`
      const { bytes, event: rows, group: groups, rejects } = rejectsOf(
        `${bad}<name>n</name>${e1}${e2}</group>\n` +
          `<group id="2" code="G-2" created_at="2026-01-01T00:00:00Z"><name>n</name>${e3}</group>`
      )
      assert.deepStrictEqual(groups, [group({ ord: 4, group_id: "2", code: "G-2" })])
      assert.deepStrictEqual(rows, [event({ ord: 5, event_id: "12", group_id: "2" })])
      assert.deepStrictEqual(rejects, [
        {
          file: "in.xml",
          offset: bytes.indexOf(bad),
          element: "group",
          id: "1",
          kind: "group: bad attribute code",
          reason: `bad attribute code: "" empty`,
          ord: 1
        },
        {
          file: "in.xml",
          offset: bytes.indexOf(e1),
          element: "event",
          id: "10",
          kind: "event: enclosing <group> rejected",
          reason: "enclosing <group> rejected",
          ord: 2
        },
        {
          file: "in.xml",
          offset: bytes.indexOf(e2),
          element: "event",
          id: "11",
          kind: "event: enclosing <group> rejected",
          reason: "enclosing <group> rejected",
          ord: 3
        }
      ])
    })

    const offsetBody = `<group id="1" code="Ж" created_at="2026-01-01T00:00:00Z"><name>Щ😀</name>` +
      `<event id="2" type="" occurred_at="2026-01-01T00:00:01Z"/></group>\n<!-- ё -->` +
      `<group id="x" code="😀" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`

    const checkOffsets = (input: string, r: Parsed) => {
      const bytes = Buffer.from(input)
      assert.deepStrictEqual(r.rejects.map((j) => [j.id, j.offset]), [
        ["2", bytes.indexOf("<event id=\"2\"")],
        ["x", bytes.indexOf("<group id=\"x\"")]
      ])
      assert.deepStrictEqual(r.group.map((g) => g["name"]), ["Щ😀"])
    }

    it("offsets are UTF-8 byte offsets of the record's <", () => {
      const input = doc(offsetBody)
      checkOffsets(input, parse(input))
    })

    it("offsets count a UTF-8 BOM", () => {
      const input = "\uFEFF" + doc(offsetBody)
      assert.strictEqual(Buffer.from(input)[0], 0xef)
      checkOffsets(input, run(input, Number.MAX_SAFE_INTEGER))
      checkOffsets(input, run(input, 3))
      checkOffsets(input, run(input, 7))
    })

    it("offsets count a UTF-8 BOM split across the first chunks", () => {
      const input = "\uFEFF" + doc(offsetBody)
      checkOffsets(input, run(input, 1))
      checkOffsets(input, run(input, 2))
    })

    // A record is measured when it ends, and while open after each written slice (32 KiB or
    // a smaller chunk), which bounds what saxes buffers. Records of HUGE are caught while open
    // whatever the chunking, so the events after the point of detection are never read.
    const LIMIT = 4096
    const HUGE = 40_000

    it("a record over maxRecordChars is rejected with the events read so far; the next record loads", () => {
      const big = `<group id="1" code="G" created_at="2026-01-01T00:00:00Z">`
      const e1 = `<event id="10" type="t" occurred_at="2026-01-01T00:00:01Z"/>`
      const input = doc(
        `${big}${e1}<name>${"x".repeat(HUGE)}</name><event id="11" type="t" occurred_at="2026-01-01T00:00:01Z"/></group>\n` +
          `<group id="2" code="G-2" created_at="2026-01-01T00:00:00Z"><name>y</name></group>`
      )
      const bytes = Buffer.from(input)
      const r = parse(input, { maxRecordChars: LIMIT })
      assert.deepStrictEqual(r.group, [group({ ord: 3, group_id: "2", code: "G-2", name: "y" })])
      assert.deepStrictEqual(r.event, [])
      assert.deepStrictEqual(r.rejects, [
        {
          file: "in.xml",
          offset: bytes.indexOf(big),
          element: "group",
          id: "1",
          kind: `group: larger than ${LIMIT} characters`,
          reason: `larger than ${LIMIT} characters`,
          ord: 1
        },
        {
          file: "in.xml",
          offset: bytes.indexOf(e1),
          element: "event",
          id: "10",
          kind: "event: enclosing <group> rejected",
          reason: "enclosing <group> rejected",
          ord: 2
        }
      ])
    })

    it("a record is measured whole, markup included: records up to the limit load", () => {
      const record = (id: number, name: string) =>
        `<group id="${id}" code="G" created_at="2026-01-01T00:00:00Z"><name>${name}</name>` +
        `<event id="${id}" type="t" occurred_at="2026-01-01T00:00:01Z"/></group>`
      const exact = record(1, "x".repeat(LIMIT - record(1, "").length))
      assert.strictEqual(exact.length, LIMIT)
      const over = record(2, "x".repeat(LIMIT - record(2, "").length + 1))
      const input = doc(`${exact}\n${over}\n${record(3, "z")}`)
      const r = parse(input, { maxRecordChars: LIMIT })
      assert.deepStrictEqual(r.group.map((g) => g["group_id"]), ["1", "3"])
      assert.deepStrictEqual(r.event.map((e) => e["event_id"]), ["1", "3"])
      assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.offset, j.reason]), [
        ["group", "2", Buffer.from(input).indexOf(over), `larger than ${LIMIT} characters`],
        ["event", "2", Buffer.from(input).indexOf(`<event id="2"`), "enclosing <group> rejected"]
      ])
    })

    it("attribute values count toward maxRecordChars: a start tag over it is rejected before it ends", () => {
      const tag = `<group id="1" code="${"c".repeat(HUGE)}" created_at="2026-01-01T00:00:00Z">`
      const input = doc(`${tag}<name>n</name></group>\n<group ${G.replace(`"1"`, `"2"`)}><name>n</name></group>`)
      const r = parse(input, { maxRecordChars: LIMIT })
      assert.deepStrictEqual(r.group, [group({ ord: 2, group_id: "2" })])
      assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.offset, j.reason, j.ord]), [
        ["group", null, Buffer.from(input).indexOf(tag), `larger than ${LIMIT} characters`, 1]
      ])
    })

    it("text over maxRecordChars inside an event rejects the whole group with its events", () => {
      const e1 = `<event id="10" type="t" occurred_at="2026-01-01T00:00:01Z">`
      const input = doc(
        `<group ${G}><name>n</name>${e1}<payload>${"p".repeat(HUGE)}</payload></event></group>\n` +
          `<group id="2" code="G-2" created_at="2026-01-01T00:00:00Z"><name>y</name></group>`
      )
      const r = parse(input, { maxRecordChars: LIMIT })
      assert.deepStrictEqual(r.group, [group({ ord: 3, group_id: "2", code: "G-2", name: "y" })])
      assert.deepStrictEqual(r.event, [])
      const bytes = Buffer.from(input)
      assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.offset, j.reason]), [
        ["group", "1", bytes.indexOf(`<group ${G}>`), `larger than ${LIMIT} characters`],
        ["event", "10", bytes.indexOf(e1), "enclosing <group> rejected"]
      ])
    })

    it("markup over maxRecordChars counts too: many attributes, deep nesting", () => {
      const attrs = Array.from({ length: 5000 }, (_, i) => ` a${i}="${i}"`).join("")
      const deep = "<x>".repeat(5000) + "</x>".repeat(5000)
      const input = doc(
        `<group ${G}${attrs}><name>n</name></group>\n` +
          `<group id="2" code="G" created_at="2026-01-01T00:00:00Z"><name>n</name>${deep}</group>\n` +
          `<group id="3" code="G" created_at="2026-01-01T00:00:00Z"><name>n</name></group>`
      )
      const r = parse(input, { maxRecordChars: LIMIT })
      assert.deepStrictEqual(r.group.map((g) => g["group_id"]), ["3"])
      assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.reason]), [
        ["group", null, `larger than ${LIMIT} characters`],
        ["group", "2", `larger than ${LIMIT} characters`]
      ])
      // without the limit, deep nesting in an unknown element is just skipped
      assert.deepStrictEqual(run(input, Number.MAX_SAFE_INTEGER).group.map((g) => g["group_id"]), ["1", "2", "3"])
    })
  })

  describe("errors", () => {
    it("a wrong root element", () => {
      for (const size of [1, 3, 1000]) {
        const e = parseError(`<?xml version="1.0"?>\n<events><group ${G}><name>n</name></group></events>`, size)
        assert.include(e.reason, "<groups>")
        assert.include(e.reason, "<events>")
        assert.strictEqual(e.file, "in.xml")
      }
    })

    it("malformed XML after the root opened loses the broken record only; strict mode fails", () => {
      const cases: Array<readonly [string, Array<Array<string | null>>]> = [
        [`<groups><group ${G}><name>n</name>`, [["group", "1", "input ends inside <group> (truncated?)"]]],
        [doc(`<group ${G}><name>n</name>`), [["group", "1", "malformed XML: unexpected close tag."]]],
        [`<groups><group ${G}><name>n</name></grop></groups>`, [["group", "1", "malformed XML: unexpected close tag."]]],
        [`<groups><group ${G}><name>n</group></groups>`, [["group", "1", "malformed XML: unexpected close tag."]]],
        [`<groups><group ${G} id="2"><name>n</name></group></groups>`, [[
          "group",
          null,
          "malformed XML: duplicate attribute: id."
        ]]],
        [`<groups><group ${G}><name>a & b;</name></group></groups>`, [[
          "group",
          "1",
          "malformed XML: disallowed character in entity name."
        ]]],
        [`<groups></groups><groups></groups>`, [["groups", null, "malformed XML: documents may contain only one root."]]],
        [`<groups></groups>trailing`, [["groups", null, "malformed XML: text data outside of root node."]]],
        [`<groups><group`, [["groups", null, "input ends inside <groups> (truncated?)"]]],
        [`<groups><group id="1" code=`, [["group", null, "input ends inside <group> (truncated?)"]]]
      ]
      for (const [input, rejects] of cases) {
        for (const size of [1, 3, Number.MAX_SAFE_INTEGER]) {
          const r = run(input, size)
          assert.deepStrictEqual(r.group, [], input)
          // where saxes notices a break between records depends on the chunking: offsets are not compared
          assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.reason]), rejects, input)
          assert.include(parseError(input, size, { recover: false }).message, "in.xml: XML error at byte ", input)
        }
      }
    })

    it("recovery restarts at the next <group>; offsets stay exact", () => {
      const g1 = `<group ${G}><name>ok</name></group>`
      const g2 = `<group id="2" code="G" created_at="2026-01-01T00:00:00Z"><name>Ж &bad; ж</name>` +
        `<event id="5" type="t" occurred_at="2026-01-01T00:00:01Z"/></group>`
      const g3 = `<group id="3" code="Ж" created_at="2026-01-01T00:00:00Z"><name>ok</name><event id="6" type=""/></group>`
      const input = doc(`${g1}\n<!-- between --> stray </oops> text\n${g2}\n${g3}`)
      const bytes = Buffer.from(input)
      const r = parse(input)
      assert.deepStrictEqual(r.group.map((g) => [g["group_id"], g["ord"]]), [["1", 1], ["3", 3]])
      assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.offset, j.reason, j.ord]), [
        ["groups", null, bytes.indexOf("</oops>") + "</oops>".length, "malformed XML: unexpected close tag.", 0],
        ["group", "2", bytes.indexOf("<group id=\"2\""), "malformed XML: undefined entity.", 2],
        ["event", "6", bytes.indexOf("<event id=\"6\""), `bad attribute type: "" empty`, 4]
      ])
    })

    it("not a <groups> document fails even in recover mode", () => {
      for (const input of ["", "   ", "hello, not XML", `{"groups": []}`, "<?xml version=\"1.0\"?>", "\u0000\u0001"]) {
        for (const size of [1, 3, Number.MAX_SAFE_INTEGER]) {
          assert.include(parseError(input, size).reason, "not a <groups> document: ", JSON.stringify(input))
        }
      }
    })

    it("a break saxes notices past the text read is reported no further than the input's end", () => {
      // read whole, text outside the root is noticed at the end of the input
      for (const input of ["hello, not XML\n", "\uFEFFhello, not XML\n", "\uFEFFЖЖ not XML, 😀"]) {
        assert.strictEqual(parseError(input).offset, Buffer.byteLength(input), JSON.stringify(input))
        for (const size of [1, 3]) assert.isAtMost(parseError(input, size).offset, Buffer.byteLength(input))
      }
    })

    it("bytes that are not UTF-8 reject the record holding them; strict mode fails", () => {
      const g2 = `<group id="2" code="G" created_at="2026-01-01T00:00:00Z">`
      const input = Buffer.concat([
        Buffer.from(`<groups><group ${G}><name>ok</name></group>${g2}<name>ok `),
        Buffer.from([0xff]),
        Buffer.from(`</name></group><group id="3" code="Ж" created_at="2026-01-01T00:00:00Z"><name>ok</name></group>`),
        Buffer.from([0xc3, 0x28]),
        Buffer.from(`<group id="x" code="G" created_at="2026-01-01T00:00:00Z"><name>n</name></group></groups>`)
      ])
      for (const size of [1, 2, 3, 7, input.length]) {
        const r = run(input, size)
        assert.deepStrictEqual(r.group.map((g) => g["group_id"]), ["1", "3"], `chunk size ${size}`)
        // offsets after the invalid bytes are still exact
        assert.deepStrictEqual(r.rejects.map((j) => [j.element, j.id, j.offset, j.reason]), [
          ["group", "2", input.indexOf(g2), `invalid UTF-8: at byte ${input.indexOf(0xff)}`],
          ["groups", null, input.indexOf(0xc3), "invalid UTF-8 outside records"],
          ["group", "x", input.indexOf(`<group id="x"`), `bad attribute id: "x" not an id in 1..2^63-1`]
        ])
        const e = parseError(input, size, { recover: false })
        assert.deepStrictEqual([e.reason, e.offset], ["input is not valid UTF-8", input.indexOf(0xff)])
      }
      const truncated = Buffer.concat([Buffer.from(`<groups><group ${G}><name>`), Buffer.from("Ж").subarray(0, 1)])
      assert.deepStrictEqual(parse(truncated).rejects.map((j) => [j.id, j.reason]), [
        ["1", "input ends inside <group> (truncated?)"]
      ])
      assert.strictEqual(parseError(truncated, 1, { recover: false }).reason, "input ends inside a UTF-8 character")
    })

    it("a U+FFFD written in the input is a character like any other, however the bytes are split", () => {
      const input = doc(`<group ${G}><name>a\uFFFDb</name></group>`)
      const bytes = Buffer.from(input)
      for (let cut = 1; cut < bytes.length; cut++) {
        for (const size of [1, 2]) {
          const r = runPieces([bytes.subarray(0, cut), ...chunked(bytes.subarray(cut), size)])
          assert.deepStrictEqual(r.rejects, [], `cut ${cut}, then chunks of ${size}`)
          assert.strictEqual(r.group[0]!["name"], "a\uFFFDb")
        }
      }
    })

    it("an invalid byte at the end of a decode slice is caught", () => {
      const head = Buffer.from(`<groups><group ${G}><name>`)
      for (const at of [32 * 1024 - 1, 32 * 1024, 32 * 1024 + 1]) {
        const input = Buffer.concat([
          head,
          Buffer.alloc(at - head.length, "a"),
          Buffer.from([0xff]),
          Buffer.from(`</name></group></groups>`)
        ])
        assert.strictEqual(input[at], 0xff)
        const r = run(input, Number.MAX_SAFE_INTEGER)
        assert.deepStrictEqual(r.rejects.map((j) => j.reason), [`invalid UTF-8: at byte ${at}`], `at ${at}`)
      }
    })

    it("a declared encoding other than UTF-8", () => {
      const e = parseError(`<?xml version="1.0" encoding="ISO-8859-1"?>\n<groups/>`)
      assert.include(e.reason, "ISO-8859-1")
      assert.include(e.reason, "UTF-8")
      assert.deepStrictEqual(parse(`<?xml version="1.0" encoding="utf-8"?><groups/>`).rejects, [])
    })
  })
})
