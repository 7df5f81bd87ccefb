import { assert, describe, it } from "@effect/vitest"
import { SaxesParser } from "saxes"
import { attributesOf, fastSaxes } from "../src/xml/SaxesFast.js"

/** mulberry32: the same documents on every run */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * Pieces that take each path: plain runs, and what the shorter paths hand back to saxes.
 * Each list has well-formed pieces, then, after `BAD`, ones that break a rule.
 */
const BAD: unique symbol = Symbol("bad")
type Pieces = ReadonlyArray<string | typeof BAD>
const TEXT: Pieces = [
  "plain text", "Группа №2", "12345", " ", "\n    ", "\t", "a>b", "]x", "]]x", "] ]>", "x]>", "&amp;", "&lt;&gt;", "&#x41;",
  "&#1055;", "&#x0430;", "&#00065;", "&#1114111;", "&#x10FFFF;", "&apos;&quot;", "\r", "\r\n", "x\ry", "\u0085",
  "\u2028", "😀", "\ufffd", "\ue000", "{\"a\":\"b\"}", "é",
  BAD, "]]>", "\u007f\u009f", "&bogus;", "&", "&#X41;", "&#X;", "&#x;", "&#;", "&#0;", "&#xD800;", "&#x110000;",
  "&#12345678;", "&a-b;", "&#x4g;", "&a\nb;", "\u0001", "\u000b", "\ud800", "\udc00x", "\ufffe", "\uffff", "a<"
]
const NAME: Pieces = ["a", "b", "group", "event_1", "ns:x", "a-b.c", "Имя", "x😀", "a\u00b7b", BAD, "1a", "a b"]
const VALUE: Pieces = [
  "1", "G-0000001", "2026-01-01T00:00:02.819Z", "", "a>b", "&amp;", "&#9;", "&#x41;&lt;", "\t", "\n", "\r\n", "\r",
  "Москва", "😀", "]]>", "\u0085", BAD, "a<b", "x&y", "\ud800", "\ufffe", "\u0001"
]

/** a piece of `xs`: a bad one at the rate `bad` */
const piece = (rnd: () => number, xs: Pieces, bad: number): string => {
  const split = xs.indexOf(BAD)
  const k = rnd() < bad ? split + 1 + Math.floor(rnd() * (xs.length - split - 1)) : Math.floor(rnd() * split)
  return xs[k] as string
}

const pick = <A>(rnd: () => number, xs: ReadonlyArray<A>): A => xs[Math.floor(rnd() * xs.length)]!

const attributeText = (rnd: () => number, bad: number): string => {
  let s = ""
  const n = Math.floor(rnd() * 4)
  const names = new Set<string>()
  for (let k = 0; k < n; k++) {
    const name = piece(rnd, NAME, bad)
    if (names.has(name) && rnd() >= bad) continue
    names.add(name)
    const q = rnd() < 0.8 ? "\"" : "'"
    const value = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => piece(rnd, VALUE, bad)).join("")
    s += `${rnd() < 0.1 ? "\n" : " "}${name}=${q}${value.replaceAll(q, "")}${q}`
  }
  return s
}

const documentText = (rnd: () => number, bad: number): string => {
  const parts: Array<string> = []
  if (rnd() < 0.15) parts.push("<?xml version=\"1.1\"?>")
  else if (rnd() < 0.3) parts.push("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
  parts.push("<root>")
  const open: Array<string> = []
  const n = 5 + Math.floor(rnd() * 40)
  for (let k = 0; k < n; k++) {
    const r = rnd()
    if (r < 0.25) {
      const name = piece(rnd, NAME, bad)
      open.push(name)
      parts.push(`<${name}${attributeText(rnd, bad)}${rnd() < 0.05 ? " " : ""}>`)
    } else if (r < 0.4 && open.length > 0) {
      parts.push(`</${rnd() < bad ? piece(rnd, NAME, 0) : open.pop()}${rnd() < 0.05 ? " " : ""}>`)
    } else if (r < 0.45) {
      parts.push(`<${piece(rnd, NAME, bad)}${attributeText(rnd, bad)}/>`)
    } else if (r < 0.48) {
      parts.push(`<![CDATA[${piece(rnd, TEXT, bad)}]]>`)
    } else if (r < 0.5) {
      parts.push(`<!--${piece(rnd, TEXT, bad).replaceAll("-", "")}-->`)
    } else {
      parts.push(piece(rnd, TEXT, bad))
    }
  }
  while (open.length > 0) parts.push(`</${open.pop()}>`)
  parts.push("</root>")
  if (rnd() < bad) parts.push(pick(rnd, ["<root/>", "<second a=\"1\">x</second>", "text after", "<!-- c -->", "\n"]))
  return parts.join("")
}

type Log = Array<string>

/** Everything a parser reports, attributes as saxes' dictionary would hold them. */
const run = (sax: SaxesParser, fast: boolean, text: string, cuts: ReadonlyArray<number>, withText: boolean): Log => {
  const log: Log = []
  sax.on("error", (e) => log.push(`error ${e.message}`))
  sax.on("opentagstart", (t) => log.push(`start ${t.name}`))
  sax.on("opentag", (t) => {
    const attributes: Record<string, string> = Object.create(null)
    if (fast) for (const { name, value } of attributesOf(t)) attributes[name] = value
    else Object.assign(attributes, t.attributes)
    log.push(`open ${t.name} ${JSON.stringify(Object.entries(attributes))}`)
  })
  sax.on("closetag", (t) => log.push(`close ${t.name}`))
  sax.on("cdata", (t) => log.push(`cdata ${JSON.stringify(t)}`))
  if (withText) sax.on("text", (t) => log.push(`text ${JSON.stringify(t)}`))
  let at = 0
  for (const cut of [...cuts, text.length]) {
    sax.write(text.slice(at, cut))
    at = cut
  }
  sax.close()
  log.push(`position ${sax.position}`)
  return log
}

describe("fastSaxes", () => {
  it("reports the same events, attributes and errors as saxes, however the text is cut", () => {
    const rnd = random(20261207)
    let errors = 0
    const cleanErrors: Array<string> = []
    for (let d = 0; d < 3000; d++) {
      const text = documentText(rnd, d % 3 === 0 ? 0.1 : 0)
      const cuts = Array.from({ length: Math.floor(rnd() * 4) }, () => Math.floor(rnd() * text.length)).sort((a, b) => a - b)
      const withText = d % 2 === 0
      const expected = run(new SaxesParser({ xmlns: false, position: false }), false, text, cuts, withText)
      const actual = run(fastSaxes(), true, text, cuts, withText)
      assert.deepStrictEqual(actual, expected, JSON.stringify({ text, cuts }))
      const error = expected.find((e) => e.startsWith("error "))
      if (error !== undefined) errors++
      if (error !== undefined && d % 3 !== 0) cleanErrors.push(error + " " + JSON.stringify(text))
    }
    // a third of the documents have bad pieces, the rest are well formed
    assert.deepStrictEqual(cleanErrors, [])
    assert.isAbove(errors, 800)
    assert.isBelow(errors, 1100)
  })

  it("keeps the attributes in document order, a repeated one reported", () => {
    const sax = fastSaxes()
    const seen: Array<string> = []
    sax.on("error", (e) => seen.push(e.message))
    sax.on("opentag", (t) => seen.push(JSON.stringify(attributesOf(t))))
    sax.write("<r b=\"2\" a='1' b=\"3\"/>").close()
    assert.deepStrictEqual(seen, [
      "duplicate attribute: b.",
      JSON.stringify([{ name: "b", value: "2" }, { name: "a", value: "1" }, { name: "b", value: "3" }])
    ])
  })

  it("finds a repeated name among many attributes", () => {
    const sax = fastSaxes()
    const errors: Array<string> = []
    sax.on("error", (e) => errors.push(e.message))
    const many = Array.from({ length: 20 }, (_, k) => ` a${k}="${k}"`).join("")
    sax.write(`<r${many} a7="x"/>`).close()
    assert.deepStrictEqual(errors, ["duplicate attribute: a7."])
  })
})
