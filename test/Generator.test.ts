import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { SaxesParser } from "saxes"
import {
  canonicalTimestamp,
  generateGroups,
  type GenerateOptions,
  type GenEvent,
  type GenGroup,
  renderXml,
  writeSample
} from "../src/generate/Generator.js"

const render = (options: GenerateOptions): string => Array.from(renderXml(options)).join("")

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
type MutableEvent = Mutable<GenEvent>
type MutableGroup = Mutable<Omit<GenGroup, "events">> & { events: Array<GenEvent> }

/** Reference reader: unknown elements are skipped with everything inside them; comments and PIs are dropped. */
const parse = (xml: string): Array<GenGroup> => {
  const parser = new SaxesParser()
  const groups: Array<GenGroup> = []
  const path: Array<string> = []
  let skipBelow = Infinity
  let group: MutableGroup | undefined
  let event: MutableEvent | undefined
  let value: string | undefined
  parser.on("error", (e) => {
    throw e
  })
  parser.on("opentag", (node) => {
    path.push(node.name)
    const depth = path.length
    if (depth > skipBelow) return
    const a = node.attributes as Record<string, string>
    const at = path.slice(1).join("/")
    if (depth === 1 && node.name === "groups") return
    if (at === "group") {
      group = {
        group_id: a.id!,
        code: a.code!,
        created_at: a.created_at!,
        name: "\u0000missing",
        description: null,
        events: []
      }
    } else if (at === "group/event") {
      event = {
        event_id: a.id!,
        group_id: group!.group_id,
        type: a.type!,
        occurred_at: a.occurred_at!,
        severity: a.severity ?? null,
        source: null,
        payload: null
      }
    } else if (["group/name", "group/description", "group/event/source", "group/event/payload"].includes(at)) {
      value = ""
    } else skipBelow = depth
  })
  const onText = (t: string) => {
    if (value !== undefined && path.length <= skipBelow) value += t
  }
  parser.on("text", onText)
  parser.on("cdata", onText)
  parser.on("closetag", () => {
    const depth = path.length
    const at = path.slice(1).join("/")
    path.pop()
    if (depth === skipBelow) skipBelow = Infinity
    if (depth > skipBelow) return
    if (at === "group/name") group!.name = value!
    else if (at === "group/description") group!.description = value!
    else if (at === "group/event/source") event!.source = value!
    else if (at === "group/event/payload") event!.payload = value!
    else if (at === "group/event") group!.events.push(event!)
    else if (at === "group") groups.push(group!)
    if (at.endsWith("name") || at.endsWith("description") || at.endsWith("source") || at.endsWith("payload")) {
      value = undefined
    }
  })
  parser.write(xml).close()
  return groups
}

const count = (haystack: string, needle: string): number => haystack.split(needle).length - 1

describe("Generator", () => {
  const options: GenerateOptions = { groups: 3000, eventsPerGroup: 2, seed: 7 }
  const xml = render(options)
  const expected = Array.from(generateGroups(options))

  it("is deterministic per seed", () => {
    assert.strictEqual(render(options), xml)
    assert.notStrictEqual(render({ ...options, seed: 8 }), xml)
    assert.isTrue(render({ ...options, bom: true }) === "\ufeff" + xml)
  })

  it("counts and ids", () => {
    assert.strictEqual(expected.length, 3000)
    assert.deepStrictEqual(expected.map((g) => g.group_id).slice(0, 3), ["1", "2", "3"])
    assert.strictEqual(expected[2999]!.group_id, "3000")
    const events = expected.flatMap((g) => g.events)
    assert.strictEqual(events.length, 6000)
    assert.strictEqual(new Set(events.map((e) => e.event_id)).size, 6000)
    for (const e of events) assert.match(e.event_id, /^[1-9][0-9]{0,18}$/)
    assert.isTrue(events.some((e) => e.event_id.length === 19))
    assert.isTrue(events.every((e) => BigInt(e.event_id) <= 9223372036854775807n))
    for (const g of expected) {
      assert.isTrue(g.code.length > 0)
      for (const e of g.events) {
        assert.strictEqual(e.group_id, g.group_id)
        assert.isTrue(e.type.length > 0)
        assert.isTrue(e.severity === null || /^[0-7]$/.test(e.severity))
      }
    }
    assert.strictEqual(Array.from(generateGroups({ groups: 0, eventsPerGroup: 5, seed: 1 })).length, 0)
    assert.strictEqual(render({ groups: 0, eventsPerGroup: 5, seed: 1 }).split("\n").length, 4)
  })

  it("renders well-formed XML that a correct reader reads back as generateGroups", () => {
    assert.deepStrictEqual(parse(xml), expected)
  })

  it("keeps most records plain and near 150-300 bytes per event", () => {
    const perEvent = Buffer.byteLength(xml) / 6000
    assert.isTrue(perEvent > 150 && perEvent < 400, `bytes per event ${perEvent}`)
    const plain = count(xml, "\n  <group id=\"")
    assert.isTrue(plain / 3000 > 0.88 && plain / 3000 < 0.97, `plain groups ${plain}`)
  })

  it("emits the edge cases", () => {
    const values = expected.flatMap((g) => [
      g.name,
      g.description ?? "",
      ...g.events.flatMap((e) => [e.source ?? "", e.payload ?? ""])
    ])
    const some = (p: (v: string) => boolean) => values.some(p)
    assert.isTrue(xml.includes("]]]]><![CDATA[>"), "split CDATA")
    assert.isTrue(some((v) => v.includes("]]>")), "]]> in a value")
    assert.isTrue(some((v) => v.includes("\\N")), "literal \\N")
    assert.isTrue(some((v) => v.includes("\\")), "backslash")
    assert.isTrue(some((v) => /\p{Extended_Pictographic}/u.test(v) && /[\ud800-\udbff]/.test(v)), "emoji")
    assert.isTrue(some((v) => v.includes("\t")), "tab")
    assert.isTrue(some((v) => v.includes("\n")), "newline")
    assert.isTrue(some((v) => v.includes("\r")), "carriage return")
    assert.isTrue(some((v) => /[а-яё]/i.test(v)), "Cyrillic")
    assert.isTrue(xml.includes("&#13;") || xml.includes("&#xD;"), "CR as a reference")
    assert.isTrue(/&#x[0-9a-fA-F]+;/.test(xml) && /&#[0-9]+;/.test(xml), "numeric character references")
    for (const e of ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]) assert.isTrue(xml.includes(e), e)
    assert.isTrue(/<(name|description|source|payload)>[^<]*<!--[^>]*-->/.test(xml), "comment inside a value")
    assert.isTrue(/<(name|description|source|payload)>[^<]*<\?[^>]*\?>/.test(xml), "PI inside a value")
    assert.isTrue(expected.some((g) => g.name === ""), "empty name")
    assert.isTrue(expected.some((g) => g.name !== "" && g.name.trim() === ""), "blank name")
    assert.isTrue(xml.includes("<name/>") || xml.includes("<name />"), "<name/>")
    assert.isTrue(expected.some((g) => g.description === ""), "empty description")
    assert.isTrue(expected.some((g) => g.description === null), "missing description")
    assert.isTrue(xml.includes("<description/>") || xml.includes("<description />"), "<description/>")
    const events = expected.flatMap((g) => g.events)
    assert.isTrue(events.some((e) => e.severity === null) && events.some((e) => e.severity === "0"))
    assert.isTrue(events.some((e) => e.source === null) && events.some((e) => e.source === ""))
    assert.isTrue(events.some((e) => e.payload === null) && events.some((e) => e.payload === ""))
    assert.isTrue(events.some((e) => e.source === null && e.payload === null), "event without children")
    assert.isTrue(/<archive><event /.test(xml), "event nested in an unknown element")
    assert.isTrue(xml.includes("<meta><name>"), "name nested in an unknown element")
    assert.isTrue(/ (lang|xml:lang|revision|status|data-x|note)=/.test(xml), "unknown attribute")
    assert.isTrue(/<event (severity|occurred_at|type)/.test(xml), "attribute order varies")
    assert.isTrue(/<\/event>\n {4}<name/.test(xml), "name after an event")
    assert.isTrue(/=\s*'/.test(xml), "single-quoted attribute")
    assert.isTrue(/\n {2}<!-- checkpoint/.test(xml), "comment between records")
    assert.isTrue(expected.some((g) => g.code !== `G-${g.group_id.padStart(7, "0")}`), "unusual code")
    assert.isTrue(events.some((e) => e.type === "tab sep"), "attribute whitespace normalization")
    const stamps = [...expected.map((g) => g.created_at), ...events.map((e) => e.occurred_at)]
    for (const ts of stamps) canonicalTimestamp(ts)
    assert.isTrue(stamps.some((t) => /-02-29T/.test(t)), "Feb 29")
    assert.isTrue(stamps.some((t) => /[+-]\d\d:\d\d$/.test(t)), "offset")
    assert.isTrue(stamps.some((t) => /:\d\d[+-Z]/.test(t)), "no fraction")
    assert.isTrue(stamps.some((t) => /\.\d{6}[+-Z]/.test(t)), "6 fraction digits")
  })

  it("yields chunks of about 64 KiB", () => {
    const chunks = Array.from(renderXml(options))
    assert.isTrue(chunks.length > 5)
    for (const c of chunks.slice(0, -1)) assert.isTrue(c.length >= 65536 && c.length < 65536 + 200_000)
  })

  it("rejects invalid options", () => {
    assert.throws(() => generateGroups({ groups: -1, eventsPerGroup: 1, seed: 1 }).next())
    assert.throws(() => renderXml({ groups: 1, eventsPerGroup: 1.5, seed: 1 }).next())
  })
})

describe("canonicalTimestamp", () => {
  it("converts to UTC microseconds", () => {
    const cases: Array<[string, string]> = [
      ["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000000Z"],
      ["2026-01-01T00:00:02+03:00", "2025-12-31T21:00:02.000000Z"],
      ["2025-12-31T23:30:00.5-05:00", "2026-01-01T04:30:00.500000Z"],
      ["2024-02-28T23:10:00.123456-03:00", "2024-02-29T02:10:00.123456Z"],
      ["2023-02-28T23:10:00.1-03:00", "2023-03-01T02:10:00.100000Z"],
      ["2024-03-01T01:00:00+03:00", "2024-02-29T22:00:00.000000Z"],
      ["2100-03-01T00:59:59.999999+05:45", "2100-02-28T19:14:59.999999Z"],
      ["2000-02-29T12:00:00.000001-00:00", "2000-02-29T12:00:00.000001Z"],
      ["1999-12-31T23:59:59.99-12:00", "2000-01-01T11:59:59.990000Z"],
      ["2030-06-15T10:20:30.05+14:00", "2030-06-14T20:20:30.050000Z"],
      ["2030-06-15T10:20:30+05:30", "2030-06-15T04:50:30.000000Z"]
    ]
    for (const [input, output] of cases) assert.strictEqual(canonicalTimestamp(input), output, input)
  })

  it("agrees with Date where Date is exact", () => {
    for (const g of generateGroups({ groups: 500, eventsPerGroup: 3, seed: 3 })) {
      for (const ts of [g.created_at, ...g.events.map((e) => e.occurred_at)]) {
        const ms = new Date(ts).toISOString().slice(0, 23)
        assert.strictEqual(canonicalTimestamp(ts).slice(0, 23), ms, ts)
      }
    }
  })

  it("rejects what is not a timestamp", () => {
    for (const bad of ["2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00.1234567Z", "2026-01-01 00:00:00Z"]) {
      assert.throws(() => canonicalTimestamp(bad))
    }
  })
})

describe("writeSample", () => {
  const withDir = <A, E>(f: (dir: string) => Effect.Effect<A, E>) =>
    Effect.acquireUseRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "xml2pg-gen-"))),
      f,
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
  const options: GenerateOptions = { groups: 2000, eventsPerGroup: 3, seed: 11 }

  it.effect("writes the rendered bytes, creating directories", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const path = join(dir, "a", "b", "sample.xml")
        const summary = yield* writeSample(path, options)
        const bytes = yield* Effect.promise(() => readFile(path))
        assert.strictEqual(bytes.toString("utf8"), render(options))
        assert.deepStrictEqual(summary, { groups: 2000, events: 6000, bytes: bytes.length, fileBytes: bytes.length })
      })
    ))

  it.effect("gzips .gz paths, with a BOM on request", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const path = join(dir, "sample.xml.gz")
        const summary = yield* writeSample(path, { ...options, bom: true })
        const gz = yield* Effect.promise(() => readFile(path))
        const xml = gunzipSync(gz)
        assert.deepStrictEqual([...xml.subarray(0, 3)], [0xef, 0xbb, 0xbf])
        assert.strictEqual(xml.toString("utf8"), "\ufeff" + render(options))
        assert.strictEqual(summary.bytes, xml.length)
        assert.strictEqual(summary.fileBytes, gz.length)
        assert.isTrue(gz.length < xml.length / 3)
      })
    ))

  it.effect("fails with GenerateError", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const invalid = yield* Effect.flip(writeSample(join(dir, "x.xml"), { ...options, groups: -5 }))
        assert.strictEqual(invalid._tag, "GenerateError")
        assert.match(invalid.message, /groups must be/)
        yield* writeSample(join(dir, "x.xml"), { ...options, groups: 1 })
        const blocked = yield* Effect.flip(writeSample(join(dir, "x.xml", "y.xml"), options))
        assert.strictEqual(blocked._tag, "GenerateError")
      })
    ))
})
