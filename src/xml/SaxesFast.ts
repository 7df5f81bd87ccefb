/**
 * Shorter paths through saxes 6's hottest loops, for a parser made with `position: false`.
 *
 * saxes reads every character through `getCode`, which stores three fields per character,
 * reads a character number with two regular expressions, and collects each tag's attributes
 * into a fresh dictionary-mode object. Here a run of plain characters in text, a name, a
 * quoted attribute value or an entity reference is read in a local loop, and where it ends
 * at the usual character (text's `<`, the closing quote, the space, `=` or `>` after a name,
 * an entity's `;`) that character is handled here as saxes would; a character number is read
 * digit by digit; attributes stay the list saxes builds anyway. Anything else (CR, `]]>`,
 * surrogates, characters XML forbids, bad references, XML 1.1's rules, the end of a chunk)
 * goes to saxes' own method, so its checks and messages are unchanged:
 * test/SaxesFast.test.ts compares events and errors with stock saxes on generated documents.
 *
 * The producer's time (stage 2, interleaved pairs against the build before each step): the
 * runs of text, names and values with the attribute list −19 %; entity references −1.4 and
 * −3.2 % (~390 000 per 100 MB); `write` calling the common states directly −2.1 and −2.5 %;
 * no attribute dictionary per start tag −3.0 and −2.8 %. Each reader has its loop written
 * out: one shared helper took 1.5 % more.
 * Line and column, which saxes uses only in messages when `position` is on, are not kept.
 */
import { SaxesParser, type SaxesTagPlain } from "saxes"

/** The options of every `fastSaxes` parser: the shorter paths assume them. */
type FastOptions = { xmlns: false; position: false }

/** One attribute of a start tag, in document order. */
export interface Attribute {
  readonly name: string
  readonly value: string
}

/** saxes 6's private members used here */
interface Internals {
  chunk: string
  i: number
  prevI: number
  state: number
  q: number | null
  text: string
  name: string
  forbiddenState: number
  currentXMLVersion: string
  textHandler: ((text: string) => void) | undefined
  attribList: Array<Attribute>
  pushAttrib: (name: string, value: string) => void
  processAttribs: (this: Internals) => void
  stateTable: Array<(this: Internals) => void>
  fail: (message: string) => void
  handleTextInRoot: (this: Internals) => void
  captureNameChars: (this: Internals) => number
  sAttribValueQuoted: (this: Internals) => void
  entity: string
  entityReturnState: number
  isChar: (c: number) => boolean
  sEntity: (this: Internals) => void
  parseEntity: (this: Internals, entity: string) => string
  readonly closed: boolean
  carriedFromPrevious: string | undefined
  chunkPosition: number
  end: () => unknown
  sText: (this: Internals) => void
  sOpenWaka: (this: Internals) => void
  sOpenTag: (this: Internals) => void
  sOpenTagSlash: (this: Internals) => void
  sAttrib: (this: Internals) => void
  sAttribName: (this: Internals) => void
  sAttribValue: (this: Internals) => void
  sAttribValueClosed: (this: Internals) => void
  sCloseTag: (this: Internals) => void
  tag: { name: string; attributes: unknown }
  sawRoot: boolean
  fragmentOpt: boolean
  closedRoot: boolean
  openTagStartHandler: ((tag: unknown) => void) | undefined
  openTag: () => void
}

const stock = SaxesParser.prototype as unknown as Internals
const handleTextInRoot = stock.handleTextInRoot
const captureNameChars = stock.captureNameChars
const sAttribValueQuoted = stock.sAttribValueQuoted
const sEntity = stock.sEntity
const parseEntity = stock.parseEntity

/** saxes 6's methods called here, checked once: another saxes fails here, not mid-parse */
const CALLED = [
  "handleTextInRoot", "captureNameChars", "sAttribValueQuoted", "sEntity", "parseEntity", "sText", "sOpenWaka",
  "sOpenTagSlash", "sAttrib", "sAttribName", "sAttribValue", "sAttribValueClosed", "sCloseTag", "openTag", "end",
  "processAttribsPlain"
] as const
const missing = CALLED.filter((m) => typeof (stock as unknown as Record<string, unknown>)[m] !== "function")
if (missing.length > 0) throw new Error(`saxes is not the version 6 xml2pg was written against: no ${missing.join(", ")}`)

/** saxes 6's states and codes used here */
const S_TEXT = 13
const S_ENTITY = 14
const S_OPEN_WAKA = 15
const S_OPEN_TAG = 34
const S_OPEN_TAG_SLASH = 35
const S_ATTRIB = 36
const S_ATTRIB_NAME = 37
const S_ATTRIB_VALUE = 39
const S_ATTRIB_VALUE_QUOTED = 40
const S_ATTRIB_VALUE_CLOSED = 41
const S_CLOSE_TAG = 43
const LESS = 0x3c
const GREATER = 0x3e
const FORWARD_SLASH = 0x2f
/** saxes' "end of chunk" */
const EOC = -1
const CR = 0x0d
const SEMICOLON = 0x3b
/** saxes' state after `]]` in text: a `>` next is an error its own loop must see */
const FORBIDDEN_BRACKET_BRACKET = 2
const FORBIDDEN_START = 0

const table = (size: number, from: number, to: number, except: string, also = ""): Uint8Array => {
  const t = new Uint8Array(size)
  t.fill(1, from, to)
  for (const c of except) t[c.charCodeAt(0)] = 0
  for (const c of also) t[c.charCodeAt(0)] = 1
  return t
}
/** characters below `^` that text reading passes over: all but `&`, `<`, `]` and controls other than tab and LF */
const TEXT = table(0x5e, 0x20, 0x5e, "&<]", "\t\n")
const NAME = table(0x80, 0, 0, "", "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
/** what ends a name and is read by saxes as itself: no CR, which saxes turns into LF */
const NAME_END = table(0x80, 0, 0, "", " \t\n>/=")
/** ASCII in a quoted attribute value that needs nothing: not a quote, `&`, `<` or a control */
const VALUE = table(0x80, 0x20, 0x80, "\"&'<")
/** what an entity reference holds between `&` and `;` in the common case: a name or a character number */
const ENTITY = table(0x80, 0, 0, "", "#0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
/** hex digit values; -1 for any other character below 0x80 */
const HEX = Int8Array.from({ length: 0x80 }, (_, c) => {
  const k = "0123456789abcdef".indexOf(String.fromCharCode(c).toLowerCase())
  return c < 0x30 || k < 0 ? -1 : k
})

/**
 * Text up to its `<`, the common case, is read here whole; anything else from the first
 * character that needs saxes' attention on is read by saxes' own method.
 */
function fastText(this: Internals): void {
  const { chunk, i: start } = this
  if (this.forbiddenState === FORBIDDEN_BRACKET_BRACKET || this.currentXMLVersion !== "1.0") {
    return handleTextInRoot.call(this)
  }
  const end = chunk.length
  let j = start
  for (; j < end; j++) {
    const c = chunk.charCodeAt(j)
    if (c > 0x5d ? c >= 0xd800 : TEXT[c] !== 1) break
  }
  const handler = this.textHandler
  if (j < end && chunk.charCodeAt(j) === LESS) {
    // saxes' own handling of "<" in text
    this.prevI = j
    this.i = j + 1
    this.state = S_OPEN_WAKA
    this.forbiddenState = FORBIDDEN_START
    if (handler !== undefined) {
      const text = this.text
      const slice = chunk.slice(start, j)
      if (text.length !== 0) {
        handler(text + slice)
        this.text = ""
      } else if (slice.length !== 0) handler(slice)
    }
    return
  }
  if (j !== start) {
    if (handler !== undefined) this.text += chunk.slice(start, j)
    this.i = j
    this.forbiddenState = FORBIDDEN_START
  }
  handleTextInRoot.call(this)
}

/** A name up to a space, tab, LF, `>`, `/` or `=`, the common case, is read here whole. */
function fastName(this: Internals): number {
  const { chunk, i: start } = this
  const end = chunk.length
  let j = start
  for (; j < end; j++) {
    const c = chunk.charCodeAt(j)
    if (c >= 0x80 || NAME[c] !== 1) break
  }
  if (j < end) {
    const c = chunk.charCodeAt(j)
    if (NAME_END[c] === 1) {
      this.name += chunk.slice(start, j)
      this.prevI = j
      this.i = j + 1
      return c
    }
  }
  if (j !== start) {
    this.name += chunk.slice(start, j)
    this.i = j
  }
  return captureNameChars.call(this)
}

/** A value up to its closing quote, the common case, is read here whole. */
function fastValue(this: Internals): void {
  const { chunk, i: start } = this
  if (this.currentXMLVersion !== "1.0") return sAttribValueQuoted.call(this)
  const end = chunk.length
  let j = start
  for (; j < end; j++) {
    const c = chunk.charCodeAt(j)
    if (c >= 0x80 ? c >= 0xd800 : VALUE[c] !== 1) break
  }
  if (j < end && chunk.charCodeAt(j) === this.q) {
    // saxes' own handling of the closing quote
    this.prevI = j
    this.i = j + 1
    this.pushAttrib(this.name, this.text + chunk.slice(start, j))
    this.name = this.text = ""
    this.q = null
    this.state = S_ATTRIB_VALUE_CLOSED
    return
  }
  if (j !== start) {
    this.text += chunk.slice(start, j)
    this.i = j
  }
  sAttribValueQuoted.call(this)
}

/**
 * An entity reference up to its `;` in one chunk, the common case, is read here whole;
 * anything else (a name with other characters, a reference cut by the chunk's end) is read by
 * saxes from its start.
 */
function fastEntity(this: Internals): void {
  const { chunk, i: start } = this
  if (this.entity !== "") return sEntity.call(this)
  const end = chunk.length
  let j = start
  for (; j < end; j++) {
    const c = chunk.charCodeAt(j)
    if (c >= 0x80 || ENTITY[c] !== 1) break
  }
  if (j === start || j === end || chunk.charCodeAt(j) !== SEMICOLON) return sEntity.call(this)
  // saxes' own handling of the ";"
  this.prevI = j
  this.i = j + 1
  const returnState = this.entityReturnState
  this.state = returnState
  const parsed = this.parseEntity(chunk.slice(start, j))
  if (returnState !== S_TEXT || this.textHandler !== undefined) this.text += parsed
}

/** A character number (`#1086`, `#x430`) read without saxes' regular expressions; the rest as saxes reads it. */
function fastParseEntity(this: Internals, entity: string): string {
  const n = entity.length
  if (entity.charCodeAt(0) === 0x23 && n > 1) {
    const hex = entity.charCodeAt(1) === 0x78
    const from = hex ? 2 : 1
    // a number too large to be exact is also too large to be a character: saxes then says so
    if (n > from) {
      let num = 0
      let k = from
      for (; k < n; k++) {
        const c = entity.charCodeAt(k)
        const digit = hex ? (c < 0x80 ? HEX[c]! : -1) : c >= 0x30 && c <= 0x39 ? c - 0x30 : -1
        if (digit < 0) break
        num = num * (hex ? 16 : 10) + digit
      }
      if (k === n && this.isChar(num)) return String.fromCodePoint(num)
    }
  }
  return parseEntity.call(this, entity)
}

/**
 * saxes' `write`, with the states of elements and text called directly: saxes calls every
 * state through its table with `Function.prototype.call`, which V8 cannot inline or predict
 * across ~10 targets. Chunk handling is saxes' own, line for line.
 */
function fastWrite(this: Internals, data: string | object | null): unknown {
  if (this.closed) return this.fail("cannot write after close; assign an onready handler.")
  let end = false
  let chunk = data
  if (chunk === null) {
    // the carried character may still need reading
    end = true
    chunk = ""
  } else if (typeof chunk === "object") chunk = String(chunk)
  if (this.carriedFromPrevious !== undefined) {
    chunk = `${this.carriedFromPrevious}${chunk}`
    this.carriedFromPrevious = undefined
  }
  let limit = chunk.length
  const lastCode = chunk.charCodeAt(limit - 1)
  // a trailing CR or high surrogate waits for the next chunk
  if (!end && (lastCode === CR || (lastCode >= 0xd800 && lastCode <= 0xdbff))) {
    this.carriedFromPrevious = chunk[limit - 1]
    limit--
    chunk = chunk.slice(0, limit)
  }
  const { stateTable } = this
  this.chunk = chunk
  this.i = 0
  while (this.i < limit) {
    switch (this.state) {
      case S_TEXT:
        this.sText()
        break
      case S_OPEN_WAKA:
        this.sOpenWaka()
        break
      case S_OPEN_TAG:
        this.sOpenTag()
        break
      case S_OPEN_TAG_SLASH:
        this.sOpenTagSlash()
        break
      case S_ATTRIB:
        this.sAttrib()
        break
      case S_ATTRIB_NAME:
        this.sAttribName()
        break
      case S_ATTRIB_VALUE:
        this.sAttribValue()
        break
      case S_ATTRIB_VALUE_QUOTED:
        this.sAttribValueQuoted()
        break
      case S_ATTRIB_VALUE_CLOSED:
        this.sAttribValueClosed()
        break
      case S_CLOSE_TAG:
        this.sCloseTag()
        break
      case S_ENTITY:
        this.sEntity()
        break
      default:
        stateTable[this.state]!.call(this)
    }
  }
  this.chunkPosition += limit
  return end ? this.end() : this
}

/** The attributes of a tag that has none: one list for all of them. */
const NONE: ReadonlyArray<Attribute> = Object.freeze([])

/**
 * saxes' `sOpenTag` (with `xmlns` off), without the `Object.create(null)` dictionary for the
 * attributes, which `listAttributes` replaces or a tag without attributes never needs.
 */
function fastOpenTag(this: Internals): void {
  const c = this.captureNameChars()
  if (c === EOC) return
  const tag = this.tag = { name: this.name, attributes: NONE }
  this.name = ""
  this.openTagStartHandler?.call(this, tag)
  this.sawRoot = true
  if (!this.fragmentOpt && this.closedRoot) this.fail("documents may contain only one root.")
  switch (c) {
    case GREATER:
      this.openTag()
      break
    case FORWARD_SLASH:
      this.state = S_OPEN_TAG_SLASH
      break
    default:
      if (!(c === 0x20 || c === 0x0a || c === CR || c === 0x09)) this.fail("disallowed character in tag name.")
      this.state = S_ATTRIB
  }
}

/** Past this many attributes a Set finds a repeated name; below, comparing each pair is quicker. */
const PAIRWISE = 8

/** saxes' duplicate check, with the list left as the tag's attributes */
function listAttributes(this: Internals): void {
  const list = this.attribList
  // the tag keeps `NONE`, and the empty list serves the next tag
  if (list.length === 0) return
  if (list.length <= PAIRWISE) {
    for (let a = 1; a < list.length; a++) {
      const name = list[a]!.name
      let b = 0
      while (b < a && list[b]!.name !== name) b++
      if (b < a) this.fail(`duplicate attribute: ${name}.`)
    }
  } else {
    const seen = new Set<string>()
    for (const { name } of list) {
      if (seen.has(name)) this.fail(`duplicate attribute: ${name}.`)
      seen.add(name)
    }
  }
  this.tag.attributes = list
  this.attribList = []
}

/**
 * The shorter paths are methods of a subclass, so that saxes' constructor puts them in its
 * state table, and a parser has no more own properties than saxes gives it: a few more, and
 * with its event handlers V8 turned it into a dictionary, which made every field slow.
 */
class FastSaxesParser extends SaxesParser<FastOptions> {}
const fast = FastSaxesParser.prototype as unknown as Internals & {
  processAttribsPlain: (this: Internals) => void
  write: typeof fastWrite
}
fast.handleTextInRoot = fastText
fast.captureNameChars = fastName
fast.sAttribValueQuoted = fastValue
fast.sEntity = fastEntity
fast.sOpenTag = fastOpenTag
fast.parseEntity = fastParseEntity
fast.write = fastWrite
fast.processAttribsPlain = listAttributes

/** A saxes parser made by `fastSaxes`. */
export type FastSaxes = SaxesParser<FastOptions>

/**
 * A saxes parser with the shorter paths. Its tags' `attributes` are lists: read them with
 * `attributesOf`. A repeated attribute is in the list twice, after saxes has reported it.
 */
export const fastSaxes = (): FastSaxes => {
  const sax = new FastSaxesParser({ xmlns: false, position: false })
  const internals = sax as unknown as Internals
  // the state numbers used here are saxes 6's: its table must hold these readers at them
  if (internals.stateTable?.[S_ATTRIB_VALUE_QUOTED] !== fastValue || internals.stateTable[S_ENTITY] !== fastEntity ||
    internals.stateTable[S_OPEN_TAG] !== fastOpenTag || internals.processAttribs !== listAttributes) {
    throw new Error("saxes is not the version 6 xml2pg was written against: its states differ")
  }
  return sax
}

/** The attributes of a tag read by a `fastSaxes` parser, in document order. */
export const attributesOf = (tag: SaxesTagPlain): ReadonlyArray<Attribute> =>
  tag.attributes as unknown as ReadonlyArray<Attribute>

/**
 * What `sax.on("text", handler)` and `sax.off("text")` do, without their lookup of the field
 * by event name: `RecordParser` switches it for every field, and this way the producer took
 * 1.3 % less time (stage 2, 10 interleaved pairs, session 16).
 */
export const setTextHandler = (sax: FastSaxes, handler: ((text: string) => void) | undefined): void => {
  ;(sax as unknown as Internals).textHandler = handler
}
