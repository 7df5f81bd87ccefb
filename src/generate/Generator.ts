/**
 * Deterministic sample XML generator: the same options always give the same bytes.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { createWriteStream } from "node:fs"
import { mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { createGzip } from "node:zlib"
import { causeMessage } from "../Errors.js"
import { daysFromCivil, daysIn } from "../shape/Values.js"

/**
 * Shape of the generated file. Fields added later (duplicate-id rate, bad-record rate) are optional, default to
 * off, and draw from their own random streams, so a given seed keeps producing identical bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface GenerateOptions {
  readonly groups: number
  readonly eventsPerGroup: number
  readonly seed: number
  /** Start the document with a UTF-8 byte order mark. Default false. */
  readonly bom?: boolean
  /**
   * Share of groups (and, separately, of events) that reuse the id of an earlier one, with
   * new values: duplicates for finalize's last-occurrence-wins. Default 0.
   */
  readonly duplicateRate?: number
}

/**
 * A group exactly as a correct parser must read it.
 *
 * @since 0.1.0
 * @category models
 */
export interface GenGroup {
  readonly group_id: string
  readonly code: string
  readonly name: string
  readonly description: string | null
  readonly created_at: string
  readonly events: ReadonlyArray<GenEvent>
}

/**
 * An event exactly as a correct parser must read it.
 *
 * @since 0.1.0
 * @category models
 */
export interface GenEvent {
  readonly event_id: string
  readonly group_id: string
  readonly type: string
  readonly occurred_at: string
  readonly severity: string | null
  readonly source: string | null
  readonly payload: string | null
}

/**
 * What `writeSample` wrote. `bytes` is the size of the XML, `fileBytes` the size on disk (smaller for `.gz`).
 *
 * @since 0.1.0
 * @category models
 */
export interface GenerateSummary {
  readonly groups: number
  readonly events: number
  readonly bytes: number
  readonly fileBytes: number
}

/**
 * The sample file could not be written, or the options are invalid.
 *
 * @since 0.1.0
 * @category errors
 */
export class GenerateError extends Data.TaggedError("GenerateError")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot write sample ${this.path}: ${causeMessage(this.cause)}`
  }
}

// == random streams

const mix32 = (x: number): number => {
  let h = x | 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed | 0
  }
  /** mulberry32 */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }
  next(): number {
    return this.uint32() / 4294967296
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<A>(items: ReadonlyArray<A>): A {
    return items[this.int(items.length)] as A
  }
}

/** Each feature draws from its own stream so that adding one does not shift the others. */
const Streams = { group: 1, topLevel: 2, duplicate: 3 } as const

const rngFor = (seed: number, stream: number, n: number): Rng => {
  const s = Math.trunc(seed)
  let h = mix32((s >>> 0) ^ Math.imul(stream, 0x9e3779b1))
  h = mix32(h ^ (Math.floor(s / 4294967296) | 0))
  h = mix32(h ^ (n >>> 0))
  h = mix32(h ^ (Math.floor(n / 4294967296) | 0))
  return new Rng(h)
}

// == rates

const EDGE_GROUP = 0.07
const EDGE_EVENT = 0.07
const TOP_LEVEL_NOISE = 0.01
const NO_DESCRIPTION = 0.08
const CDATA_DESCRIPTION = 0.08
const NO_SEVERITY = 0.15
const NO_SOURCE = 0.05
const NO_PAYLOAD = 0.08
const HUGE_PAYLOAD = 0.01

// == vocabulary

const TYPES = ["click", "view", "purchase", "login", "logout", "search", "add_to_cart", "scroll"] as const
const SOURCES = ["web", "ios", "android", "api", "email", "partner"] as const
const PATHS = ["/catalog/", "/item/", "/cart/", "/search?q=", "/profile/", "/orders/"] as const
const AGENTS = ["Mozilla/5.0", "okhttp/4.12", "curl/8.5", "Safari/17.4", "YaBrowser/24.1"] as const
const RU_WORDS = ["Отдел", "продаж", "склад", "логистика", "маркетинг", "поддержка", "клиенты", "регион"] as const
const EN_WORDS = ["Team", "north", "south", "ops", "growth", "billing", "core", "labs"] as const
const SENTENCES = [
  "Ежемесячный отчёт по активности пользователей.",
  "Группа создана автоматически при импорте.",
  "Main customer segment for the spring campaign.",
  "Events collected from the mobile and web clients.",
  "Региональное подразделение, Москва и область.",
  "Archived data, kept for audit purposes.",
  "Тестовая группа для проверки интеграции."
] as const
const CDATA_SENTENCES = [
  "Отчёт за <b>март</b> & апрель",
  "free text, may hold <markup>",
  "<p class=\"note\">HTML fragment</p>",
  "if (a < b && b > c) { return; }"
] as const

const TRICKY = [
  "Группа №1 & co",
  "tab\there",
  "two\ttabs\t",
  "line one\nline two\nline three",
  "carriage\rreturn",
  "windows\r\nline end",
  "\r\n",
  "back\\slash",
  "\\N",
  "literal \\N inside",
  "\\\\N",
  "trailing backslash\\",
  "C:\\Users\\Иван\\file.txt",
  "escape-like \\t \\n \\r \\\\ \\x41",
  "quotes \"double\" and 'single'",
  "<markup attr=\"v\">text</markup>",
  "a]]>b",
  "]]>",
  "x]]]>y]]>>z",
  "all five: & < > \" '",
  "emoji 😀🎉",
  "family 👨‍👩‍👧‍👦 flag 🇷🇺",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝄞",
  "ёжик Ёлка йод ЪЫЬ",
  "日本語のテキスト",
  "مرحبا بالعالم",
  "zero\u200bwidth",
  "nbsp\u00a0here",
  "combining e\u0301",
  "zwnbsp\ufeffinside",
  "del\u007fchar",
  "private \u{10fffd} plane",
  "  leading and trailing  ",
  " ",
  "\n",
  "\t",
  "NULL",
  "%s %d {0} ${x}",
  "semi;colon,comma|pipe"
] as const
const BLANK = [" ", "   ", "\n", "\t", "  \n\t  "] as const

const EDGE_TYPES = [
  "клик",
  "page view",
  "a&b",
  "say \"hi\"",
  "it's",
  "tab\tsep",
  "emoji🔥",
  "<script>",
  " padded "
] as const
const EDGE_CODES = ["Код-№", "G&Co-", "G\"quoted\"-", "G'apos'-", "G<lt>-", "G\tTab-", "G😀-"] as const

const OFFSETS = [
  "Z",
  "+00:00",
  "-00:00",
  "+03:00",
  "-05:00",
  "+05:30",
  "+05:45",
  "-09:30",
  "+14:00",
  "-12:00",
  "+01:00",
  "-03:00"
] as const
const LEAP_YEARS = [1996, 2000, 2004, 2020, 2024, 2028] as const

// == timestamps

const pad = (n: number, width: number): string => String(n).padStart(width, "0")

const civilFromDays = (days: number): readonly [number, number, number] => {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d]
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/

/**
 * Converts a valid timestamp (`YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±hh:mm)`) to UTC with microseconds,
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ`, with integer arithmetic only. Throws on anything else.
 *
 * @since 0.1.0
 * @category timestamps
 */
export const canonicalTimestamp = (ts: string): string => {
  const m = TIMESTAMP.exec(ts)
  if (m === null) throw new RangeError(`not a timestamp: ${JSON.stringify(ts)}`)
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m
  const offset = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om))
  const minutes = daysFromCivil(Number(y), Number(mo), Number(d)) * 1440 + Number(h) * 60 + Number(mi) - offset
  const days = Math.floor(minutes / 1440)
  const minuteOfDay = minutes - days * 1440
  const [yy, mm, dd] = civilFromDays(days)
  return `${pad(yy, 4)}-${pad(mm, 2)}-${pad(dd, 2)}T${pad(Math.floor(minuteOfDay / 60), 2)}:${
    pad(minuteOfDay % 60, 2)
  }:${s}.${(frac ?? "").padEnd(6, "0")}Z`
}

const BASE_MS = Date.UTC(2026, 0, 1)
const DAY_MS = 86_400_000
const PAD2 = Array.from({ length: 60 }, (_, i) => pad(i, 2))
const PAD3 = Array.from({ length: 1000 }, (_, i) => pad(i, 3))
let cachedDay = NaN
let cachedDayText = ""

/** `new Date(ms).toISOString()` for years 0..9999, at a fraction of the cost. */
const isoMs = (ms: number): string => {
  const day = Math.floor(ms / DAY_MS)
  if (day !== cachedDay) {
    cachedDay = day
    cachedDayText = new Date(day * DAY_MS).toISOString().slice(0, 11)
  }
  let rest = ms - day * DAY_MS
  const h = Math.floor(rest / 3_600_000)
  rest -= h * 3_600_000
  const m = Math.floor(rest / 60_000)
  rest -= m * 60_000
  const sec = Math.floor(rest / 1000)
  return `${cachedDayText}${PAD2[h]}:${PAD2[m]}:${PAD2[sec]}.${PAD3[rest - sec * 1000]}Z`
}

const fraction = (rng: Rng): string => {
  const digits = rng.int(7)
  return digits === 0 ? "" : "." + pad(rng.int(10 ** digits), digits)
}

const edgeTimestamp = (rng: Rng): string => {
  let y = rng.between(1990, 2040)
  let mo = rng.between(1, 12)
  let d = rng.between(1, daysIn(y, mo))
  let h = rng.int(24)
  let offset: string = rng.pick(OFFSETS)
  switch (rng.int(6)) {
    case 0: {
      y = rng.pick(LEAP_YEARS)
      mo = 2
      d = 29
      break
    }
    case 1: {
      mo = 12
      d = 31
      h = rng.between(20, 23)
      offset = rng.pick(["-05:00", "-09:30", "-12:00", "-03:00"])
      break
    }
    case 2: {
      mo = 1
      d = 1
      h = rng.int(4)
      offset = rng.pick(["+05:30", "+14:00", "+03:00", "+05:45"])
      break
    }
    case 3: {
      y = rng.pick([2023, 2024, 2000, 2100])
      mo = rng.pick([2, 3])
      d = mo === 2 ? 28 : 1
      h = mo === 2 ? 23 : 0
      offset = mo === 2 ? "-03:00" : "+03:00"
      break
    }
    case 4: {
      return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${
        rng.pick(["23:59:59.999999", "00:00:00.000001", "00:00:00.0", "12:00:00"])
      }${offset}`
    }
  }
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(rng.int(60), 2)}:${pad(rng.int(60), 2)}${
    fraction(rng)
  }${offset}`
}

// == escaping

const TEXT_SPECIAL = /[&<>\r]/
const TEXT_SPECIALS = /[&<>\r]/g
const textEntity = (c: string): string => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&#13;"

const escapeText = (s: string): string => TEXT_SPECIAL.test(s) ? s.replace(TEXT_SPECIALS, textEntity) : s

const charRef = (rng: Rng, cp: number): string =>
  rng.chance(0.5) ? `&#${cp};` : `&#x${rng.chance(0.5) ? cp.toString(16) : cp.toString(16).toUpperCase()};`

/** Escapes text content; `refs` is the probability of writing a non-ASCII or special char as a char reference. */
const escapeTextVariant = (rng: Rng, s: string, refs: number): string => {
  const rawGt = rng.chance(0.5)
  const entQuote = rng.chance(0.5)
  let out = ""
  let prev = ""
  let first = true
  for (const c of s) {
    const cp = c.codePointAt(0) as number
    if (c === "\r") out += rng.chance(0.5) ? "&#13;" : "&#xD;"
    else if (refs > 0 && (cp > 126 || c === "\t" || c === "\n") && rng.chance(refs)) out += charRef(rng, cp)
    else if (c === "&") out += "&amp;"
    else if (c === "<") out += "&lt;"
    else if (c === ">") out += rawGt && !first && prev !== "]" ? ">" : "&gt;"
    else if (c === "\"") out += entQuote ? "&quot;" : c
    else if (c === "'") out += entQuote ? "&apos;" : c
    else out += c
    prev = c
    first = false
  }
  return out
}

/** CDATA cannot hold "]]>" (split it over two sections) nor a raw CR (XML turns it into LF), so CR is a reference. */
const cdata = (s: string): string =>
  s.split("\r").map((part) => `<![CDATA[${part.split("]]>").join("]]]]><![CDATA[>")}]]>`).join("&#13;")

const SEPARATORS = ["", "<!-- note -->", "<!---->", "<?audit step=\"1\"?>", "<?pi?>", "<!-- Комментарий -->"] as const

/** Content of an element whose value is `s`, in one of several equivalent encodings. */
const content = (rng: Rng, s: string): string => {
  switch (rng.int(4)) {
    case 0:
      return escapeTextVariant(rng, s, 0)
    case 1:
      return escapeTextVariant(rng, s, 0.6)
    case 2:
      return cdata(s)
    default: {
      const chars = Array.from(s)
      const cuts = new Set<number>()
      const pieces = rng.between(2, 4)
      for (let i = 1; i < pieces; i++) cuts.add(rng.int(chars.length + 1))
      const bounds = [0, ...Array.from(cuts).sort((a, b) => a - b), chars.length]
      let out = ""
      for (let i = 0; i + 1 < bounds.length; i++) {
        const part = chars.slice(bounds[i], bounds[i + 1]).join("")
        if (i > 0) out += rng.pick(SEPARATORS)
        const mode = rng.int(3)
        out += mode === 2 ? cdata(part) : escapeTextVariant(rng, part, mode === 1 ? 0.6 : 0)
      }
      return out
    }
  }
}

const attrValue = (rng: Rng | undefined, s: string, quote: "\"" | "'"): string => {
  let out = ""
  for (const c of s) {
    const cp = c.codePointAt(0) as number
    if (c === "&") out += "&amp;"
    else if (c === "<") out += "&lt;"
    else if (c === quote) out += quote === "\"" ? "&quot;" : "&apos;"
    else if (c === "\t") out += "&#9;"
    else if (c === "\n") out += "&#10;"
    else if (c === "\r") out += "&#13;"
    else if (rng !== undefined && cp > 126 && rng.chance(0.3)) out += charRef(rng, cp)
    else out += c
  }
  return out
}

const ATTR_SPECIAL = /[&<"\t\n\r]/
const plainAttr = (name: string, value: string): string =>
  ATTR_SPECIAL.test(value) ? ` ${name}="${attrValue(undefined, value, "\"")}"` : ` ${name}="${value}"`

// == edge values

interface Attr {
  readonly name: string
  readonly value: string
  /** Literal attribute text, when it differs from the escaped value (whitespace normalization). */
  readonly literal?: string
}

const UNKNOWN_ATTRS: ReadonlyArray<Attr> = [
  { name: "lang", value: "ru" },
  { name: "xml:lang", value: "en" },
  { name: "revision", value: "2" },
  { name: "status", value: "active" },
  { name: "data-x", value: "<&>\"'" },
  { name: "note", value: "примечание" }
]

const SPACES = [" ", "  ", "\n      ", "\t", "\n\t"] as const
const EQUALS = ["=", " = ", "=\n  ", "\t="] as const

const renderAttrs = (rng: Rng, attrs: Array<Attr>): string => {
  const all = attrs.slice()
  if (rng.chance(0.3)) all.splice(rng.int(all.length + 1), 0, rng.pick(UNKNOWN_ATTRS))
  if (rng.chance(0.4)) {
    for (let i = all.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      const t = all[i] as Attr
      all[i] = all[j] as Attr
      all[j] = t
    }
  }
  const fancy = rng.chance(0.3)
  let out = ""
  for (const a of all) {
    const space = fancy ? rng.pick(SPACES) : " "
    const eq = fancy ? rng.pick(EQUALS) : "="
    if (a.literal !== undefined) out += `${space}${a.name}${eq}"${a.literal}"`
    else {
      const quote = rng.chance(0.2) ? "'" : "\""
      out += `${space}${a.name}${eq}${quote}${attrValue(rng, a.value, quote)}${quote}`
    }
  }
  return fancy && rng.chance(0.5) ? out + rng.pick(SPACES) : out
}

const trickyValue = (rng: Rng): string => {
  const first = rng.pick(TRICKY)
  switch (rng.int(4)) {
    case 0:
      return first
    case 1:
      return first + " " + rng.pick(TRICKY)
    case 2:
      return rng.pick(SENTENCES) + " " + first
    default:
      return first + rng.pick(TRICKY) + rng.pick(TRICKY)
  }
}

const emptyElement = (rng: Rng, tag: string): string =>
  rng.pick([
    `<${tag}/>`,
    `<${tag}></${tag}>`,
    `<${tag} />`,
    `<${tag}><![CDATA[]]></${tag}>`,
    `<${tag}><!-- empty --></${tag}>`,
    `<${tag}><?pi?></${tag}>`
  ])

const edgeElement = (rng: Rng, tag: string, value: string): string => {
  if (value === "") return emptyElement(rng, tag)
  const open = rng.chance(0.1) ? `<${tag} >` : `<${tag}>`
  const close = rng.chance(0.1) ? `</${tag}\n>` : `</${tag}>`
  return open + content(rng, value) + close
}

const hugePayload = (rng: Rng): string => {
  const lines: Array<string> = []
  const n = rng.between(200, 1500)
  for (let i = 0; i < n; i++) lines.push(`строка ${i}\t${rng.pick(TRICKY)} ${rng.pick(SENTENCES)}`)
  return lines.join("\n")
}

// == records

interface Rendered {
  readonly group: GenGroup
  readonly xml: string
}

const plainPayload = (rng: Rng): string =>
  rng.chance(0.8)
    ? `{"user_id":${rng.between(1, 999_999)},"session":"${rng.uint32().toString(16).padStart(8, "0")}","path":"${
      rng.pick(PATHS)
    }${rng.int(10_000)}","ua":"${rng.pick(AGENTS)}"}`
    : `Пользователь ${rng.between(1, 99_999)} открыл ${rng.pick(PATHS)}${rng.int(10_000)}`

const plainName = (rng: Rng, groupNo: number): string => {
  switch (rng.int(5)) {
    case 0:
      return `Group ${groupNo}`
    case 1:
      return `${rng.pick(RU_WORDS)} ${rng.pick(RU_WORDS)} ${groupNo}`
    case 2:
      return `${rng.pick(EN_WORDS)} ${rng.pick(EN_WORDS)} ${groupNo}`
    case 3:
      return `Группа №${groupNo} & co`
    default:
      return `Группа №${groupNo}`
  }
}

const eventUnknownChildren = [
  "<tags><tag>x</tag><tag>тег</tag></tags>",
  "<context><source>not-the-source</source><payload>not the payload</payload></context>",
  "<metrics cpu=\"0.5\" mem=\"128\"/>"
] as const

const renderEvent = (rng: Rng, eventSeq: number, groupId: string, groupMs: number, k: number): {
  readonly event: GenEvent
  readonly xml: string
} => {
  const edgy = rng.chance(EDGE_EVENT)
  const ms = groupMs + (k + 1) * 1000 + rng.int(5000)
  const type: string = edgy && rng.chance(0.2) ? rng.pick(EDGE_TYPES) : rng.pick(TYPES)
  const occurredAt = edgy && rng.chance(0.4) ? edgeTimestamp(rng) : isoMs(ms)
  const severity = rng.chance(NO_SEVERITY) ? null : String(edgy && rng.chance(0.3) ? rng.pick([0, 7]) : rng.int(8))
  let source: string | null = rng.chance(NO_SOURCE) ? null : rng.pick(SOURCES)
  let payload: string | null = rng.chance(NO_PAYLOAD) ? null : plainPayload(rng)
  const eventId = edgy && rng.chance(0.1) ? (9223372036854775807n - BigInt(eventSeq)).toString() : String(eventSeq)
  if (!edgy) {
    let xml = `    <event${plainAttr("id", eventId)}${plainAttr("type", type)}${plainAttr("occurred_at", occurredAt)}${
      severity === null ? "" : plainAttr("severity", severity)
    }`
    if (source === null && payload === null) xml += "/>\n"
    else {
      xml += ">\n"
      if (source !== null) xml += `      <source>${escapeText(source)}</source>\n`
      if (payload !== null) xml += `      <payload>${escapeText(payload)}</payload>\n`
      xml += "    </event>\n"
    }
    const event = { event_id: eventId, group_id: groupId, type, occurred_at: occurredAt, severity, source, payload }
    return { event, xml }
  }
  switch (rng.int(4)) {
    case 0:
      source = rng.chance(0.5) ? "" : trickyValue(rng)
      break
    case 1:
      payload = rng.chance(0.3) ? "" : rng.chance(HUGE_PAYLOAD) ? hugePayload(rng) : trickyValue(rng)
      break
    case 2:
      source = null
      payload = rng.chance(0.5) ? null : trickyValue(rng)
      break
  }
  const attrs: Array<Attr> = [{ name: "id", value: eventId }, { name: "occurred_at", value: occurredAt }]
  let typeValue = type
  if (type === "tab\tsep" && rng.chance(0.5)) {
    attrs.push({ name: "type", value: "tab sep", literal: "tab\tsep" })
    typeValue = "tab sep"
  } else attrs.push({ name: "type", value: type })
  if (severity !== null) attrs.push({ name: "severity", value: severity })
  const children: Array<string> = []
  if (source !== null) children.push(source === "" ? emptyElement(rng, "source") : edgeElement(rng, "source", source))
  if (payload !== null) {
    children.push(payload === "" ? emptyElement(rng, "payload") : edgeElement(rng, "payload", payload))
  }
  if (rng.chance(0.3)) children.reverse()
  if (rng.chance(0.25)) children.splice(rng.int(children.length + 1), 0, rng.pick(eventUnknownChildren))
  const oneLine = rng.chance(0.3)
  let xml = `    <event${renderAttrs(rng, attrs)}`
  if (children.length === 0) xml += rng.chance(0.5) ? "/>\n" : "></event>\n"
  else if (oneLine) xml += `>${children.join("")}</event>\n`
  else xml += `>\n${children.map((c) => `      ${c}\n`).join("")}    </event>\n`
  const event = {
    event_id: eventId,
    group_id: groupId,
    type: typeValue,
    occurred_at: occurredAt,
    severity,
    source,
    payload
  }
  return { event, xml }
}

const groupUnknownChildren = (rng: Rng, fakeEventId: string): string =>
  rng.pick([
    "<meta><name>not the group name</name><description>nor its description</description></meta>",
    `<archive><event id="${fakeEventId}" type="archived" occurred_at="2020-01-01T00:00:00Z" severity="1">` +
    "<source>old</source><payload>must be ignored</payload></event></archive>",
    "<tags><tag>alpha</tag><tag>бета</tag></tags>",
    "<notes/>",
    "<extra kind=\"x\">text &amp; more <b>bold</b> <![CDATA[<raw>]]></extra>",
    "<group-info><group id=\"999999999\" code=\"fake\" created_at=\"2020-01-01T00:00:00Z\"><name>fake</name></group>" +
    "</group-info>"
  ])

interface Reuse {
  readonly groupNo: number | undefined
  readonly eventSeq: (k: number) => number | undefined
}

const noReuse: Reuse = { groupNo: undefined, eventSeq: () => undefined }

const renderGroup = (
  seed: number,
  groupNo: number,
  eventsPerGroup: number,
  firstEventSeq: number,
  reuse: Reuse = noReuse
): Rendered => {
  const rng = rngFor(seed, Streams.group, groupNo)
  const edgy = rng.chance(EDGE_GROUP)
  const groupId = String(reuse.groupNo ?? groupNo)
  const groupMs = BASE_MS + (groupNo - 1) * 10_000 + rng.int(10_000)
  const code = edgy && rng.chance(0.2) ? `${rng.pick(EDGE_CODES)}${groupNo}` : `G-${pad(groupNo, 7)}`
  const createdAt = edgy && rng.chance(0.3) ? edgeTimestamp(rng) : isoMs(groupMs)
  let name = plainName(rng, groupNo)
  let description: string | null = rng.chance(NO_DESCRIPTION) ? null : rng.pick(SENTENCES)
  const descriptionCdata = description !== null && rng.chance(CDATA_DESCRIPTION)
  if (descriptionCdata) description = rng.pick(CDATA_SENTENCES)
  const events: Array<GenEvent> = []
  const eventXml: Array<string> = []
  for (let k = 0; k < eventsPerGroup; k++) {
    const r = renderEvent(rng, reuse.eventSeq(k) ?? firstEventSeq + k, groupId, groupMs, k)
    events.push(r.event)
    eventXml.push(r.xml)
  }
  if (!edgy) {
    let xml = `  <group${plainAttr("id", groupId)}${plainAttr("code", code)}${plainAttr("created_at", createdAt)}>\n`
    xml += `    <name>${escapeText(name)}</name>\n`
    if (description !== null) {
      xml += descriptionCdata
        ? `    <description>${cdata(description)}</description>\n`
        : `    <description>${escapeText(description)}</description>\n`
    }
    xml += eventXml.join("")
    xml += "  </group>\n"
    return { group: { group_id: groupId, code, name, description, created_at: createdAt, events }, xml }
  }
  switch (rng.int(5)) {
    case 0:
      name = rng.chance(0.5) ? "" : rng.pick(BLANK)
      break
    case 1:
      name = trickyValue(rng)
      break
    case 2:
      description = rng.chance(0.5) ? "" : null
      break
    case 3:
      description = trickyValue(rng)
      break
    default:
      name = trickyValue(rng)
      description = rng.chance(0.3) ? "" : trickyValue(rng)
  }
  const attrs: Array<Attr> = [
    { name: "id", value: groupId },
    { name: "code", value: code, ...(code.includes("\t") && rng.chance(0.5) ? { literal: code } : {}) },
    { name: "created_at", value: createdAt }
  ]
  const finalCode = attrs[1]?.literal !== undefined ? code.replace(/\t/g, " ") : code
  const children: Array<string> = [...eventXml]
  const nameXml = `    ${edgeElement(rng, "name", name)}\n`
  const descriptionXml = description === null ? undefined : `    ${edgeElement(rng, "description", description)}\n`
  const layout = rng.int(4)
  if (layout === 0) {
    children.push(nameXml)
    if (descriptionXml !== undefined) children.push(descriptionXml)
  } else if (layout === 1) {
    if (descriptionXml !== undefined) children.splice(rng.int(children.length + 1), 0, descriptionXml)
    children.splice(rng.int(children.length + 1), 0, nameXml)
  } else if (layout === 2 && descriptionXml !== undefined) children.unshift(descriptionXml, nameXml)
  else children.unshift(nameXml, ...(descriptionXml === undefined ? [] : [descriptionXml]))
  if (rng.chance(0.4)) {
    const fake = events.length > 0 ? (events[rng.int(events.length)] as GenEvent).event_id : String(firstEventSeq)
    children.splice(rng.int(children.length + 1), 0, `    ${groupUnknownChildren(rng, fake)}\n`)
  }
  if (rng.chance(0.2)) children.splice(rng.int(children.length + 1), 0, "    <!-- between children -->\n")
  const xml = `  <group${renderAttrs(rng, attrs)}>\n${children.join("")}  </group${rng.chance(0.1) ? " " : ""}>\n`
  return { group: { group_id: groupId, code: finalCode, name, description, created_at: createdAt, events }, xml }
}

const topLevelNoise = (rng: Rng, groupNo: number): string =>
  rng.pick([
    `  <!-- checkpoint ${groupNo} -->\n`,
    `  <?progress ${groupNo}?>\n`,
    "\n\n\t\n",
    `  <checkpoint at="${groupNo}"/>\n`,
    `  <meta><count>${groupNo}</count></meta>\n`,
    `  <orphans><event id="${groupNo}" type="orphan" occurred_at="2020-01-01T00:00:00Z"/></orphans>\n`
  ])

const validate = (options: GenerateOptions): void => {
  const check = (name: string, n: number, min: number) => {
    if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${n}`)
  }
  check("groups", options.groups, 0)
  check("eventsPerGroup", options.eventsPerGroup, 0)
  if (!Number.isSafeInteger(options.seed)) throw new RangeError(`seed must be an integer, got ${options.seed}`)
}

interface Counts {
  groups: number
  events: number
  bytes: number
}

/** Which earlier ids a group and its events reuse; draws nothing when the rate is 0. */
const reuseFor = (options: GenerateOptions, groupNo: number, firstEventSeq: number): Reuse => {
  const rate = options.duplicateRate ?? 0
  if (rate <= 0 || groupNo === 1) return noReuse
  const rng = rngFor(options.seed, Streams.duplicate, groupNo)
  const reusedGroup = rng.chance(rate) ? 1 + rng.int(groupNo - 1) : undefined
  const events = Array.from(
    { length: options.eventsPerGroup },
    () => (rng.chance(rate) ? 1 + rng.int(firstEventSeq - 1) : undefined)
  )
  return { groupNo: reusedGroup, eventSeq: (k) => events[k] }
}

function* records(options: GenerateOptions): Generator<Rendered> {
  validate(options)
  let eventSeq = 1
  for (let groupNo = 1; groupNo <= options.groups; groupNo++) {
    const noiseRng = rngFor(options.seed, Streams.topLevel, groupNo)
    const noise = noiseRng.chance(TOP_LEVEL_NOISE) ? topLevelNoise(noiseRng, groupNo) : ""
    const rendered = renderGroup(options.seed, groupNo, options.eventsPerGroup, eventSeq, reuseFor(options, groupNo, eventSeq))
    eventSeq += rendered.group.events.length
    yield noise === "" ? rendered : { group: rendered.group, xml: noise + rendered.xml }
  }
}

/**
 * The records of the file described by `options`, in document order, lazily.
 *
 * @since 0.1.0
 * @category generators
 */
export function* generateGroups(options: GenerateOptions): Generator<GenGroup> {
  for (const r of records(options)) yield r.group
}

const CHUNK = 64 * 1024

const header = (options: GenerateOptions): string =>
  `${options.bom === true ? "\ufeff" : ""}<?xml version="1.0" encoding="UTF-8"?>\n<groups>\n`
const FOOTER = "</groups>\n"

/**
 * The XML document for `options`, in chunks of about 64 KiB.
 *
 * @since 0.1.0
 * @category generators
 */
export function* renderXml(options: GenerateOptions): Generator<string> {
  let buf = header(options)
  for (const r of records(options)) {
    buf += r.xml
    if (buf.length >= CHUNK) {
      yield buf
      buf = ""
    }
  }
  yield buf + FOOTER
}

/** Encodes record by record into fresh buffers: cheaper than encoding big strings concatenated from small ones. */
function* renderBuffers(options: GenerateOptions, counts: Counts): Generator<Buffer> {
  let buf = Buffer.allocUnsafeSlow(CHUNK)
  let offset = 0
  const fits = (text: string) => offset + text.length * 3 <= buf.length
  const flush = (text: string) => {
    const full = buf.subarray(0, offset)
    counts.bytes += offset
    buf = Buffer.allocUnsafeSlow(Math.max(CHUNK, text.length * 3))
    offset = 0
    return full
  }
  offset += buf.write(header(options), offset)
  for (const r of records(options)) {
    counts.groups++
    counts.events += r.group.events.length
    if (!fits(r.xml)) yield flush(r.xml)
    offset += buf.write(r.xml, offset)
  }
  if (!fits(FOOTER)) yield flush(FOOTER)
  offset += buf.write(FOOTER, offset)
  counts.bytes += offset
  yield buf.subarray(0, offset)
}

/**
 * Writes the sample file, gzip-compressed when `path` ends in `.gz`, creating parent directories.
 *
 * @since 0.1.0
 * @category writing
 */
export const writeSample = Effect.fn("Generator.writeSample")(
  function*(path: string, options: GenerateOptions) {
    const fail = (cause: unknown) => new GenerateError({ path, cause })
    yield* Effect.try({ try: () => validate(options), catch: fail })
    yield* Effect.tryPromise({ try: () => mkdir(dirname(path), { recursive: true }), catch: fail })
    const counts: Counts = { groups: 0, events: 0, bytes: 0 }
    const fileBytes = yield* Effect.tryPromise({
      try: async (signal) => {
        const source = Readable.from(renderBuffers(options, counts), {
          objectMode: false,
          highWaterMark: 1 << 20
        })
        const file = createWriteStream(path, { highWaterMark: 1 << 20 })
        if (path.endsWith(".gz")) await pipeline(source, createGzip(), file, { signal })
        else await pipeline(source, file, { signal })
        return file.bytesWritten
      },
      catch: fail
    })
    return { groups: counts.groups, events: counts.events, bytes: counts.bytes, fileBytes } satisfies GenerateSummary
  }
)
