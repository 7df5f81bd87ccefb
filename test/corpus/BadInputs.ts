/**
 * A corpus of bad inputs, each built by code with the exact outcome a recovering loader
 * must give: which groups and events load, and which records are rejected, where and why.
 * Offsets are byte offsets of the record's "<", or, for a break between records, of where
 * it is noticed. Most cases put the damage in group 2, between the good groups 1 and 3.
 */

/** A piece of a document: text (UTF-8), raw bytes, or a named position. */
type Piece = string | Uint8Array | { readonly mark: string }

export const bytes = (...values: ReadonlyArray<number>): Uint8Array => Uint8Array.from(values)

export interface Assembled {
  readonly bytes: Buffer
  /** the byte offset of a mark */
  readonly at: (mark: string) => number
}

export const assemble = (pieces: ReadonlyArray<Piece>): Assembled => {
  const buffers: Array<Buffer> = []
  const marks = new Map<string, number>()
  let length = 0
  for (const piece of pieces) {
    if (typeof piece === "object" && "mark" in piece) {
      marks.set(piece.mark, length)
      continue
    }
    const buffer = typeof piece === "string" ? Buffer.from(piece, "utf8") : Buffer.from(piece)
    buffers.push(buffer)
    length += buffer.length
  }
  return {
    bytes: Buffer.concat(buffers),
    at: (mark) => {
      const offset = marks.get(mark)
      if (offset === undefined) throw new Error(`no mark ${mark}`)
      return offset
    }
  }
}

export const mark = (name: string): Piece => ({ mark: name })

export interface ExpectedReject {
  readonly element: string
  readonly id: string | null
  /** the reason starts with this */
  readonly reason: string
  readonly offset: number
}

export interface BadInput {
  readonly name: string
  readonly bytes: Buffer
  /** group ids loaded, in file order */
  readonly groups: ReadonlyArray<string>
  /** event ids loaded, in file order */
  readonly events: ReadonlyArray<string>
  readonly rejects: ReadonlyArray<ExpectedReject>
  /** the run fails before loading anything, with an XmlParseError whose message holds this */
  readonly fatal?: string
  /** `--max-record-bytes` for this input */
  readonly maxRecordBytes?: number
  /** text that must not reach any table (a file an external entity names) */
  readonly neverLoaded?: string
}

// == records

const TS = "2026-01-01T00:00:00Z"

export const event = (id: number): string => `<event id="${id}" type="t" occurred_at="${TS}" severity="1"/>`

export const groupTag = (id: number | string): string => `<group id="${id}" code="G-${id}" created_at="${TS}">`

/** A valid group with its events. */
export const group = (id: number, events: ReadonlyArray<number> = [], inner = "<name>n</name>"): string =>
  `${groupTag(id)}${inner}${events.map(event).join("")}</group>`

const HEAD = `<?xml version="1.0" encoding="UTF-8"?>\n<groups>\n`
const TAIL = "\n</groups>\n"

/** Group 1 (events 1, 2) and group 3 (event 4) around whatever is between them. */
const around = (...middle: ReadonlyArray<Piece>): ReadonlyArray<Piece> => [
  HEAD,
  mark("g1"),
  group(1, [1, 2]),
  "\n",
  ...middle,
  "\n",
  mark("g3"),
  group(3, [4]),
  TAIL
]

const LOADED_AROUND = { groups: ["1", "3"], events: ["1", "2", "4"] } as const

const reject = (element: string, id: string | null, reason: string, offset: number): ExpectedReject => ({
  element,
  id,
  reason,
  offset
})

/**
 * Group 2 broken by `inner` (after its start tag and event 3): it is lost with the events
 * read before the break, and nothing else. `events` are the events of `inner` that are read.
 */
const brokenGroup2 = (
  name: string,
  inner: ReadonlyArray<Piece>,
  reason: string,
  events: ReadonlyArray<readonly [id: string, mark: string]> = []
): BadInput => {
  const a = assemble(around(mark("g2"), groupTag(2), mark("e3"), event(3), ...inner))
  return {
    name,
    bytes: a.bytes,
    ...LOADED_AROUND,
    rejects: [
      reject("group", "2", reason, a.at("g2")),
      ...[["3", "e3"] as const, ...events].map(([id, at]) => reject("event", id, "enclosing <group> rejected", a.at(at)))
    ]
  }
}

// == the corpus

export const RECORD_LIMIT = 4096

const utf8Cases = (): Array<BadInput> => {
  const inValue = assemble(
    around(mark("g2"), groupTag(2), mark("e3"), event(3), "<name>ok ", mark("bad"), bytes(0xff, 0xfe), " ok</name></group>")
  )
  const inTagName = assemble(
    around(mark("g2"), groupTag(2), "<name>n</name><na", mark("bad"), bytes(0xc3), "me>x</na", bytes(0xc3), "me></group>")
  )
  const between = assemble([
    HEAD,
    group(1, [1, 2]),
    "\n<!-- ",
    mark("bad"),
    bytes(0xe2, 0x82),
    " -->\n",
    group(2, [3]),
    "\n",
    group(3, [4]),
    TAIL
  ])
  return [
    {
      name: "invalid UTF-8 bytes inside a value",
      bytes: inValue.bytes,
      ...LOADED_AROUND,
      rejects: [
        reject("group", "2", `invalid UTF-8: at byte ${inValue.at("bad")}`, inValue.at("g2")),
        reject("event", "3", "enclosing <group> rejected", inValue.at("e3"))
      ]
    },
    {
      name: "invalid UTF-8 bytes inside a tag name",
      bytes: inTagName.bytes,
      ...LOADED_AROUND,
      rejects: [reject("group", "2", `invalid UTF-8: at byte ${inTagName.at("bad")}`, inTagName.at("g2"))]
    },
    {
      name: "invalid UTF-8 bytes between records",
      bytes: between.bytes,
      groups: ["1", "2", "3"],
      events: ["1", "2", "3", "4"],
      rejects: [reject("groups", null, "invalid UTF-8 outside records", between.at("bad"))]
    }
  ]
}

const truncatedCases = (): Array<BadInput> => {
  const midGroup = assemble([
    HEAD,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>n</name>",
    mark("e3"),
    event(3),
    `<event id="4" type="t" occ`
  ])
  const afterGroup = assemble([HEAD, group(1, [1, 2]), "\n", group(2, [3]), "\n"])
  const inStartTag = assemble([HEAD, group(1, [1, 2]), "\n", mark("g2"), `<group id="2" code="G-2" crea`])
  return [
    {
      name: "a file truncated mid-group",
      bytes: midGroup.bytes,
      groups: ["1"],
      events: ["1", "2"],
      rejects: [
        reject("group", "2", "input ends inside <group> (truncated?)", midGroup.at("g2")),
        reject("event", "3", "enclosing <group> rejected", midGroup.at("e3"))
      ]
    },
    {
      name: "a file truncated inside a group's start tag",
      bytes: inStartTag.bytes,
      groups: ["1"],
      events: ["1", "2"],
      rejects: [reject("group", null, "input ends inside <group> (truncated?)", inStartTag.at("g2"))]
    },
    {
      name: "a file truncated after a complete group, before </groups>",
      bytes: afterGroup.bytes,
      groups: ["1", "2"],
      events: ["1", "2", "3"],
      rejects: [reject("groups", null, "input ends inside <groups> (truncated?)", afterGroup.bytes.length)]
    }
  ]
}

const hostileCases = (): Array<BadInput> => {
  const hugeText = assemble(
    around(mark("g2"), groupTag(2), mark("e3"), event(3), `<name>${"x".repeat(RECORD_LIMIT * 10)}</name></group>`)
  )
  const hugeAttribute = assemble(
    around(mark("g2"), `<group id="2" code="${"c".repeat(RECORD_LIMIT * 10)}" created_at="${TS}">`, "<name/></group>")
  )
  const attributes = Array.from({ length: 1_000_000 }, (_, i) => ` a${i}="${i}"`).join("")
  const manyAttributes = assemble(around(mark("g2"), `<group id="2" code="G-2"${attributes} created_at="${TS}"><name/></group>`))
  const levels = 100_000
  const deep = assemble(
    around(
      mark("g2"),
      groupTag(2),
      "<name>n</name>",
      mark("e3"),
      event(3),
      "<x>".repeat(levels),
      event(99),
      "</x>".repeat(levels),
      "</group>"
    )
  )
  const laughs = Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join("\n")
  const billionLaughs = assemble([
    `<?xml version="1.0"?>\n<!DOCTYPE groups [\n<!ENTITY lol0 "lol">\n${laughs}\n]>\n<groups>\n`,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>&lol9;</name></group>\n",
    group(3, [4]),
    TAIL
  ])
  const external = assemble([
    `<?xml version="1.0"?>\n<!DOCTYPE groups [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n` +
    `<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">\n]>\n<groups>\n`,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>&xxe;</name><description>&xxe;</description></group>\n",
    group(3, [4]),
    TAIL
  ])
  const tooLarge = `larger than ${RECORD_LIMIT} characters`
  return [
    {
      name: "a huge text node over --max-record-bytes",
      bytes: hugeText.bytes,
      ...LOADED_AROUND,
      maxRecordBytes: RECORD_LIMIT,
      rejects: [
        reject("group", "2", tooLarge, hugeText.at("g2")),
        reject("event", "3", "enclosing <group> rejected", hugeText.at("e3"))
      ]
    },
    {
      name: "a huge attribute over --max-record-bytes",
      bytes: hugeAttribute.bytes,
      ...LOADED_AROUND,
      maxRecordBytes: RECORD_LIMIT,
      rejects: [reject("group", null, tooLarge, hugeAttribute.at("g2"))]
    },
    {
      name: "a million attributes",
      bytes: manyAttributes.bytes,
      ...LOADED_AROUND,
      maxRecordBytes: RECORD_LIMIT,
      rejects: [reject("group", null, tooLarge, manyAttributes.at("g2"))]
    },
    {
      name: "100k levels of nesting",
      bytes: deep.bytes,
      ...LOADED_AROUND,
      maxRecordBytes: RECORD_LIMIT,
      rejects: [
        reject("group", "2", tooLarge, deep.at("g2")),
        reject("event", "3", "enclosing <group> rejected", deep.at("e3"))
      ]
    },
    {
      name: "100k levels of nesting within the limit: skipped as an unknown element",
      bytes: deep.bytes,
      groups: ["1", "2", "3"],
      events: ["1", "2", "3", "4"],
      rejects: []
    },
    {
      name: "a billion-laughs DTD: entities are never expanded",
      bytes: billionLaughs.bytes,
      ...LOADED_AROUND,
      rejects: [reject("group", "2", "malformed XML: undefined entity", billionLaughs.at("g2"))]
    },
    {
      name: "an external entity DTD: nothing is fetched or read",
      bytes: external.bytes,
      ...LOADED_AROUND,
      rejects: [reject("group", "2", "malformed XML: undefined entity", external.at("g2"))],
      neverLoaded: "root:"
    }
  ]
}

const structureCases = (): Array<BadInput> => {
  const fake = `<group id="9" code="fake" created_at="${TS}"><name>fake</name><event id="99" type="t" occurred_at="${TS}"/></group>`
  const cdata = assemble(around(group(2, [3], `<name>n</name><description><![CDATA[${fake}]]></description>`)))
  const cdataAfterBreak = assemble([
    HEAD,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>a < b</name></group>\n",
    group(3, [4], `<name>n</name><description><![CDATA[${fake}]]></description>`),
    TAIL
  ])
  const nested = assemble([
    HEAD,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>n</name>",
    mark("e3"),
    event(3),
    "\n",
    group(3, [4]),
    "\n",
    group(5, [5]),
    TAIL
  ])
  const quote = assemble(around(mark("g2"), `<group id="2 code="G-2" created_at="${TS}"><name>n</name>`, event(3), "</group>"))
  const between = assemble([HEAD, group(1, [1, 2]), "\n</oops>", mark("after"), " text\n", group(2, [3]), "\n", group(3, [4]), TAIL])
  const afterRoot = assemble([HEAD, group(1, [1, 2]), "\n</groups>", mark("after"), "\n", group(2, [3]), "\n"])
  return [
    brokenGroup2(
      "an unclosed tag",
      [mark("e5"), `<event id="5" type="t" occurred_at="${TS}"><source>s</source></group>`],
      "malformed XML: unexpected close tag",
      [["5", "e5"]]
    ),
    brokenGroup2("a stray <", ["<name>a < b</name></group>"], "malformed XML: disallowed character in tag name"),
    brokenGroup2("an undefined entity", ["<name>&nbsp;</name></group>"], "malformed XML: undefined entity"),
    brokenGroup2("a misspelt end tag", ["<name>n</name></grop>"], "malformed XML: unexpected close tag"),
    {
      name: "a broken attribute quote",
      bytes: quote.bytes,
      ...LOADED_AROUND,
      rejects: [reject("group", null, "malformed XML: no whitespace between attributes", quote.at("g2"))]
    },
    {
      name: "CDATA holding <group> text",
      bytes: cdata.bytes,
      groups: ["1", "2", "3"],
      events: ["1", "2", "3", "4"],
      rejects: []
    },
    {
      name: "CDATA holding <group> text in the group after a broken one",
      bytes: cdataAfterBreak.bytes,
      ...LOADED_AROUND,
      rejects: [reject("group", "2", "malformed XML: disallowed character in tag name", cdataAfterBreak.at("g2"))]
    },
    {
      name: "a <group> directly inside a <group>",
      bytes: nested.bytes,
      groups: ["1", "3", "5"],
      events: ["1", "2", "4", "5"],
      rejects: [
        reject("group", "2", "malformed XML: <group> inside <group>: missing </group>?", nested.at("g2")),
        reject("event", "3", "enclosing <group> rejected", nested.at("e3"))
      ]
    },
    {
      name: "a stray end tag between records",
      bytes: between.bytes,
      groups: ["1", "2", "3"],
      events: ["1", "2", "3", "4"],
      rejects: [reject("groups", null, "malformed XML: unexpected close tag", between.at("after"))]
    },
    {
      name: "records after the end of the root",
      bytes: afterRoot.bytes,
      groups: ["1"],
      events: ["1", "2"],
      // saxes sees the second root one character after its name
      rejects: [reject("groups", null, "malformed XML: documents may contain only one root", afterRoot.at("after") + 8)]
    }
  ]
}

const fatalCases = (): Array<BadInput> => {
  const fatal = (name: string, text: string | Buffer, message: string): BadInput => ({
    name,
    bytes: typeof text === "string" ? Buffer.from(text) : text,
    groups: [],
    events: [],
    rejects: [],
    fatal: message
  })
  return [
    fatal("not XML at all: prose", "This is a plain text file, not XML.\n", "not a <groups> document"),
    fatal("not XML at all: JSON", `{"groups": [{"id": 1}]}`, "not a <groups> document"),
    fatal("not XML at all: binary", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), "not a <groups> document"),
    fatal("an empty file", "", "not a <groups> document"),
    fatal("a wrong root", `<?xml version="1.0"?>\n<items>${group(1)}</items>\n`, "root element is <items>, expected <groups>")
  ]
}

export const badInputs = (): Array<BadInput> => [
  ...structureCases(),
  ...utf8Cases(),
  ...truncatedCases(),
  ...hostileCases(),
  ...fatalCases()
]

/**
 * Inputs on which the loader is known to be wrong: each states the right outcome.
 * A stray "&": saxes reads an entity name up to the next ";", however far, so the groups
 * between (3 and 4, up to the "&amp;" in group 4) are lost without a reject.
 */
export const lateBreaks = (): Array<BadInput> => {
  const a = assemble([
    HEAD,
    group(1, [1, 2]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>fish & chips</name></group>\n",
    group(3, [3]),
    "\n",
    group(4, [4], "<name>salt &amp; vinegar</name>"),
    "\n",
    group(5, [5]),
    TAIL
  ])
  const comment = assemble([
    HEAD,
    group(1, [1]),
    "\n",
    mark("g2"),
    groupTag(2),
    "<name>x</name><!-- never closed </group>\n",
    group(3, [3]),
    "\n",
    group(4, [4]),
    TAIL
  ])
  return [{
    name: "a stray &",
    bytes: a.bytes,
    groups: ["1", "3", "4", "5"],
    events: ["1", "2", "3", "4", "5"],
    rejects: [reject("group", "2", "malformed XML: ", a.at("g2"))]
  }, {
    name: "an unterminated comment",
    bytes: comment.bytes,
    groups: ["1", "3", "4"],
    events: ["1", "3", "4"],
    rejects: [reject("group", "2", "input ends inside <group>", comment.at("g2"))]
  }]
}
