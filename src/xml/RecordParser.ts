/**
 * The saxes state machine that turns XML text into records, driven by a DocumentShape.
 * Synchronous and plain: it is the hot loop, so there is no Effect, closure or Schema
 * per record. Records go to a RecordSink as arrays of validated text values.
 */
import type { SaxesTagPlain } from "saxes"
import { XmlParseError } from "../Errors.js"
import { ByteOffsets } from "./ByteOffsets.js"
import { attributesOf, fastSaxes, type FastSaxes, setTextHandler } from "./SaxesFast.js"
import { type Column, type DocumentShape, type RecordShape, recordShapes } from "../shape/Shape.js"

/**
 * A record that broke a rule: not loaded, counted by reason, written to the rejects file.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reject {
  readonly file: string
  /** byte offset of the record's start tag */
  readonly offset: number
  readonly element: string
  /** the record's id attribute as written, when present */
  readonly id: string | null
  /** the rule broken, without the offending value: what rejects are counted by */
  readonly kind: string
  readonly reason: string
  /** the record's number in document order */
  readonly ord: number
}

export interface RecordSink {
  /** a valid record: `table` indexes `recordShapes(doc)`; `values` follow the shape's columns */
  readonly row: (table: number, values: ReadonlyArray<string | null>, ord: number) => void
  readonly reject: (reject: Reject) => void
  /**
   * A top-level record (and everything in it) is complete, or abandoned: `span` is what it
   * took of the input. The parser reuses the one object for every record.
   */
  readonly recordEnd: (span: ByteSpan) => void
}

/**
 * What a top-level record took of the input, in bytes, counted only when asked for: a batch
 * needs only the start of its first record and the end of its last.
 */
export interface ByteSpan {
  /** the offset of its start tag's "<"; ask during `recordEnd` */
  readonly byteStart: () => number
  /**
   * The offset just past its end tag; for a record abandoned after a break, where the
   * search for the next record starts; for rejects after the last record, the end of the
   * input. Ask until the next `recordEnd`, or after the input ends.
   */
  readonly byteEnd: () => number
}

/**
 * The span a parser hands on, reused for each record. Its end is counted before the chunk
 * holding it can be dropped (`keep`), so it stays answerable until the next record ends.
 */
class LastSpan implements ByteSpan {
  private start = 0
  private end = 0
  private endByte = -1

  constructor(private readonly offsets: ByteOffsets) {}

  set(start: number, end: number): this {
    this.start = start
    this.end = end
    this.endByte = -1
    return this
  }

  readonly byteStart = (): number => this.offsets.at(this.start)

  readonly byteEnd = (): number => {
    if (this.endByte < 0) this.endByte = this.offsets.at(this.end)
    return this.endByte
  }

  /** counts the end now: the next chunk of text may drop the one it lies in */
  keep(): void {
    this.byteEnd()
  }
}

interface Problem {
  readonly kind: string
  readonly detail?: string
}

interface Compiled {
  readonly shape: RecordShape
  readonly table: number
  /** attribute names and their columns, side by side */
  readonly attributeNames: ReadonlyArray<string>
  readonly attributeColumns: ReadonlyArray<number>
  /** a row of nulls, copied for each record */
  readonly empty: ReadonlyArray<null>
  /**
   * The child elements it reads (fields and nested records), looked up by `===`: for the few a
   * record has, faster than a Map, which hashes each fresh tag name first.
   */
  readonly childNames: ReadonlyArray<string>
  /** per child element: a field's column, or the nested record */
  readonly childTargets: ReadonlyArray<number | Compiled>
  readonly parentKey: number
  readonly keyColumn: number
  readonly idAttribute: string | undefined
}

interface Frame {
  readonly rec: Compiled
  readonly values: Array<string | null>
  readonly ord: number
  /** global character position of its "<"; its byte offset is needed only for a reject or a record end */
  readonly charStart: number
  readonly depth: number
  /** the records nested in it, as they closed; most records have none */
  children: Array<Frame> | undefined
  error: string | undefined
}

const compile = (doc: DocumentShape): Compiled => {
  const tables = recordShapes(doc)
  const build = (shape: RecordShape): Compiled => {
    const attributeNames: Array<string> = []
    const attributeColumns: Array<number> = []
    // by name first: of a name given twice the last counts, and a field's name hides a nested record's
    const children = new Map<string, number | Compiled>(shape.children.map((c) => [c.element, build(c)]))
    let parentKey = -1
    shape.columns.forEach((c, i) => {
      if (c.source._tag === "Attribute") {
        attributeNames.push(c.source.name)
        attributeColumns.push(i)
      } else if (c.source._tag === "Child") children.set(c.source.name, i)
      else parentKey = i
    })
    const keyColumn = shape.columns.findIndex((c) => c.name === shape.key)
    const key = shape.columns[keyColumn]
    return {
      shape,
      table: tables.indexOf(shape),
      attributeNames,
      attributeColumns,
      empty: shape.columns.map(() => null),
      childNames: [...children.keys()],
      childTargets: [...children.values()],
      parentKey,
      keyColumn,
      idAttribute: key?.source._tag === "Attribute" ? key.source.name : undefined
    }
  }
  return build(doc.record)
}

const adopt = (parent: Frame, child: Frame): void => {
  if (parent.children === undefined) parent.children = [child]
  else parent.children.push(child)
}

const describe = (c: Column): string =>
  c.source._tag === "Attribute"
    ? `attribute ${c.source.name}`
    : c.source._tag === "Child"
    ? `element <${c.source.name}>`
    : c.name

const quoteValue = (v: string): string => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v)

export interface RecordParserOptions {
  readonly file: string
  /**
   * A top-level record (with everything in it) longer than this many characters is
   * rejected and skipped; it also bounds what saxes may buffer for one text node,
   * attribute, comment or tag.
   */
  readonly maxRecordChars?: number
  /**
   * Recover from malformed XML after the root element: lose the broken record only,
   * skip to the next top-level record and go on. Off = the first break fails the run.
   */
  readonly recover?: boolean
  /**
   * Resume inside the root element at a record boundary: the text fed starts at this byte
   * offset of the input, after `ord` records.
   */
  readonly resumeAt?: { readonly byte: number; readonly ord: number }
}

/** A well-formedness break at a global character position; caught by `RecordParser.feed`. */
class Break {
  constructor(readonly position: number, readonly reason: string) {}
}

const SYNTHETIC_ROOT_LENGTH = (root: string) => root.length + 2

export class RecordParser {
  private sax: FastSaxes
  /** global character position of the current saxes parser's position 0 */
  private base = 0
  /** characters fed so far */
  private fed = 0
  private readonly top: Compiled
  private readonly root: string
  private readonly file: string
  private readonly maxRecordChars: number
  private readonly recover: boolean
  private readonly stack: Array<Frame> = []
  private depth = 0
  private skipDepth = 0
  private textColumn = -1
  private textDepth = 0
  private text = ""
  private rootOpened = false
  /** skipping input until the next top-level record's start tag */
  private resyncing = false
  private carry = ""
  private readonly recordStart: RegExp
  /** where saxes may have started buffering: the current top-level record, or the last one's end */
  private guardFrom = 0
  /** global character positions of characters decoded from invalid UTF-8 */
  private corrupt: Array<number> = []
  /** the last start tag's "<": global character position */
  private tagStartChar = 0
  /** inside a top-level record's start tag, before saxes has opened it */
  private inRecordTag = false
  private ord = 0
  /**
   * A top-level record whose end tag saxes has just read. It reaches the sink at the next
   * event: saxes calls the close handler before it checks that the end tag's name matches.
   */
  private closed: Frame | undefined = undefined
  /** global character position just past the closed record's end tag */
  private closedEnd = 0
  /** a reject made outside any record since the sink last saw a record end */
  private unflushed = false
  private readonly resumed: boolean
  /** global character position where the sink's last record ended */
  private lastEnd = -1
  private readonly offsets: ByteOffsets
  private readonly span: LastSpan

  constructor(doc: DocumentShape, private readonly sink: RecordSink, options: RecordParserOptions) {
    this.top = compile(doc)
    this.root = doc.root
    this.file = options.file
    this.maxRecordChars = options.maxRecordChars ?? Number.MAX_SAFE_INTEGER
    this.recover = options.recover ?? true
    this.offsets = new ByteOffsets(options.resumeAt?.byte ?? 0)
    this.span = new LastSpan(this.offsets)
    this.recordStart = new RegExp(`<${this.top.shape.element.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[\\s/>]`)
    this.sax = this.newSax()
    this.resumed = options.resumeAt !== undefined
    if (options.resumeAt !== undefined) {
      this.ord = options.resumeAt.ord
      this.restartAt(0)
    }
  }

  private newSax(): FastSaxes {
    const sax = fastSaxes()
    sax.on("error", (e) => {
      const reason = e.message.replace(/^\d+:\d+: /, "")
      const closed = this.closed
      if (closed !== undefined && reason === "unexpected close tag.") {
        // the end tag that closed the record has another name: the record is not closed
        this.closed = undefined
        this.stack.push(closed)
      } else {
        this.flushClosed()
      }
      throw new Break(this.base + sax.position, reason)
    })
    sax.on("xmldecl", (d) => {
      if (d.encoding !== undefined && !/^utf-?8$/i.test(d.encoding)) {
        throw new XmlParseError({ file: this.file, offset: 0, reason: `unsupported encoding ${d.encoding}; only UTF-8 is read` })
      }
    })
    // Where the tag's "<" is: saxes has read the name and one character past it. Its byte
    // offset is worked out only for a record, while the guard keeps its text (see `write`).
    sax.on("opentagstart", (t) => {
      this.flushClosed()
      this.tagStartChar = this.base + sax.position - t.name.length - 2
      this.inRecordTag = this.depth === 1 && this.skipDepth === 0 && t.name === this.top.shape.element
    })
    sax.on("opentag", (t) => this.open(t))
    sax.on("closetag", () => this.close())
    // "text" is listened to only inside a field (see `open`): saxes then skips the
    // whitespace between elements instead of slicing it out for us to drop.
    sax.on("cdata", (t) => {
      this.flushClosed()
      this.onText(t)
    })
    return sax
  }

  /**
   * Feeds decoded text; records completed by it reach the sink before this returns.
   * `corrupt`: positions in `text` of characters that stand for bytes that are not UTF-8.
   * `bytes`: the length of the input `text` was decoded from, when the caller knows it.
   */
  write(text: string, corrupt: ReadonlyArray<number> = [], bytes = Buffer.byteLength(text)): void {
    const start = this.fed
    this.span.keep()
    // the open record's text stays available: after a break, the search restarts inside it
    this.offsets.push(text, bytes, this.resyncing ? this.fed : this.guardFrom)
    this.fed += text.length
    for (const i of corrupt) this.corrupt.push(start + i)
    this.feed(text, start)
  }

  /** Ends the document. A truncated document is reported and what came before it kept. */
  end(): void {
    // resumed exactly at the end of the input: the attempt before saw the end already
    if (this.resumed && this.fed === 0) return
    if (this.resyncing) {
      this.corrupt = []
    } else {
      try {
        this.sax.close()
      } catch (e) {
        if (!(e instanceof Break)) throw e
        if (!this.rootOpened || !this.recover) throw this.fatal(e)
        const element = this.stack[0]?.rec.shape.element ?? (this.inRecordTag ? this.top.shape.element : this.root)
        const from = this.searchFrom(this.fed)
        this.abandon({ kind: `input ends inside <${element}> (truncated?)` }, this.fed, from)
        if (from < this.fed) {
          this.feed(this.offsets.textFrom(from), from)
          return this.end()
        }
      }
    }
    if (this.corrupt.length > 0) {
      this.documentReject({ kind: "invalid UTF-8 outside records" }, this.corrupt[0]!)
      this.corrupt = []
    }
    // rejects made after the last record still need a batch: one ending at the end of input
    if (this.unflushed) this.recordEnd(this.fed, this.fed)
  }

  /**
   * Whether the text fed so far ends exactly where a top-level record ended, with nothing
   * after it: the state a parser resumed at this point starts in. Nothing fed counts, as the
   * start of a resumed input is such a point. A range of a split input ends only here.
   */
  atRecordEnd(): boolean {
    return (this.fed === 0 ? this.resumed : this.lastEnd === this.fed) && this.stack.length === 0 &&
      !this.inRecordTag && !this.resyncing && !this.unflushed && this.corrupt.length === 0
  }

  /** the sink learns of a record that took the text from `start` to `end` (character positions) */
  private recordEnd(start: number, end: number): void {
    this.unflushed = false
    this.lastEnd = end
    this.sink.recordEnd(this.span.set(start, end))
  }

  private feed(text: string, start: number): void {
    if (this.resyncing) {
      const joined = this.carry + text
      const joinedStart = start - this.carry.length
      const m = this.recordStart.exec(joined)
      if (m === null) {
        this.carry = joined.slice(-this.top.shape.element.length - 1)
        this.dropCorruptBefore(this.fed)
        return
      }
      this.carry = ""
      this.resyncing = false
      const at = joinedStart + m.index
      this.restartAt(at)
      text = joined.slice(m.index)
      start = at
    }
    try {
      this.sax.write(text)
    } catch (e) {
      if (!(e instanceof Break)) throw e
      if (!this.rootOpened || !this.recover) throw this.fatal(e)
      // saxes may notice a break far past its cause (an unterminated comment or CDATA, a stray
      // "&"): records it swallowed are found again by searching on from the broken record's start
      const from = this.searchFrom(e.position)
      this.abandon({ kind: "malformed XML", detail: e.reason }, e.position, from)
      return this.feed(this.offsets.textFrom(from), from)
    }
    this.flushClosed()
    if (this.fed - this.guardFrom > this.maxRecordChars) {
      this.abandon({ kind: `larger than ${this.maxRecordChars} characters` }, this.fed)
    }
  }

  /**
   * Where to look for the next record after a break at `position`: just past the start of
   * the broken record, so records a late-noticed break swallowed are found again.
   */
  private searchFrom(position: number): number {
    const open = this.stack[0]
    return open !== undefined ? open.charStart + 1 : this.inRecordTag ? this.tagStartChar + 1 : position
  }

  private fatal(e: Break): XmlParseError {
    const reason = this.rootOpened ? e.reason : `not a <${this.root}> document: ${e.reason}`
    return new XmlParseError({ file: this.file, offset: this.offsets.at(Math.min(e.position, this.fed)), reason })
  }

  /**
   * Rejects the open top-level record (and the records in it), or reports a break between
   * records, then skips to the next top-level record.
   */
  private abandon(problem: Problem, position: number, resumeFrom = position): void {
    const open = this.stack
    if (open.length > 0) {
      for (let i = open.length - 1; i > 0; i--) adopt(open[i - 1]!, open[i]!)
      const record = open[0]!
      this.emit(record, null, undefined, problem)
      this.recordEnd(record.charStart, resumeFrom)
    } else if (this.inRecordTag) {
      this.sink.reject({
        file: this.file,
        offset: this.offsets.at(this.tagStartChar),
        element: this.top.shape.element,
        id: null,
        kind: `${this.top.shape.element}: ${problem.kind}`,
        reason: problem.detail === undefined ? problem.kind : `${problem.kind}: ${problem.detail}`,
        ord: ++this.ord
      })
      this.recordEnd(this.tagStartChar, resumeFrom)
    } else {
      this.documentReject(problem, position)
    }
    this.inRecordTag = false
    this.stack.length = 0
    this.depth = 1
    this.skipDepth = 0
    this.textColumn = -1
    this.text = ""
    this.resyncing = true
    this.carry = ""
    this.dropCorruptBefore(resumeFrom)
  }

  /** A fresh saxes parser at `position`, inside a synthetic root start tag. */
  private restartAt(position: number): void {
    this.sax = this.newSax()
    this.base = position - SYNTHETIC_ROOT_LENGTH(this.root)
    this.depth = 0
    this.guardFrom = position
    this.sax.write(`<${this.root}>`)
  }

  /** A break outside any record: nothing known was lost, but something may have been. */
  private documentReject(problem: Problem, position: number): void {
    this.unflushed = true
    this.sink.reject({
      file: this.file,
      offset: this.offsets.at(Math.min(position, this.fed)),
      element: this.root,
      id: null,
      kind: `${this.root}: ${problem.kind}`,
      reason: problem.detail === undefined ? problem.kind : `${problem.kind}: ${problem.detail}`,
      ord: 0
    })
  }

  private dropCorruptBefore(position: number): void {
    if (this.corrupt.length > 0) this.corrupt = this.corrupt.filter((p) => p >= position)
  }

  private open(tag: SaxesTagPlain): void {
    const depth = ++this.depth
    if (this.skipDepth !== 0) return
    if (this.textColumn >= 0) {
      this.skipDepth = depth
      return
    }
    if (depth === 1) {
      if (tag.name !== this.root) {
        throw new XmlParseError({
          file: this.file,
          offset: this.offsets.at(this.tagStartChar),
          reason: `root element is <${tag.name}>, expected <${this.root}>`
        })
      }
      this.rootOpened = true
      this.guardFrom = this.base + this.sax.position
      return
    }
    const frame = this.stack.length === 0 ? undefined : this.stack[this.stack.length - 1]!
    if (frame === undefined) {
      if (depth === 2 && tag.name === this.top.shape.element) {
        this.guardFrom = this.tagStartChar
        this.openRecord(this.top, tag, depth)
      } else {
        this.skipDepth = depth
      }
      return
    }
    if (tag.name === this.top.shape.element && this.stack.length === 1 && depth === 3) {
      // a top-level record directly inside one: its end tag is missing
      throw new Break(this.tagStartChar, `<${tag.name}> inside <${tag.name}>: missing </${tag.name}>?`)
    }
    const { childNames, childTargets } = frame.rec
    let k = 0
    while (k < childNames.length && childNames[k] !== tag.name) k++
    if (k === childNames.length) {
      this.skipDepth = depth
      return
    }
    const target = childTargets[k]!
    if (typeof target !== "number") return this.openRecord(target, tag, depth)
    if (frame.values[target] !== null) frame.error ??= `duplicate element <${tag.name}>`
    this.textColumn = target
    this.textDepth = depth
    this.text = ""
    setTextHandler(this.sax, this.onFieldText)
  }

  private openRecord(rec: Compiled, tag: SaxesTagPlain, depth: number): void {
    this.inRecordTag = false
    const values: Array<string | null> = rec.empty.slice()
    const attributes = attributesOf(tag)
    const names = rec.attributeNames
    // every column an attribute fills, a shape may read one attribute into several
    for (let a = 0; a < attributes.length; a++) {
      const { name, value } = attributes[a]!
      for (let k = 0; k < names.length; k++) {
        if (names[k] === name) values[rec.attributeColumns[k]!] = value
      }
    }
    this.stack.push({
      rec,
      values,
      ord: ++this.ord,
      charStart: this.tagStartChar,
      depth,
      children: undefined,
      error: undefined
    })
  }

  /** A field opened after the last event that could close a record: nothing to flush. */
  private readonly onFieldText = (t: string): void => this.onText(t)

  private onText(t: string): void {
    if (this.textColumn >= 0 && this.skipDepth === 0) this.text += t
  }

  private close(): void {
    this.flushClosed()
    const depth = this.depth--
    if (this.skipDepth !== 0) {
      if (depth === this.skipDepth) this.skipDepth = 0
      return
    }
    if (this.textColumn >= 0) {
      if (depth === this.textDepth) {
        this.stack[this.stack.length - 1]!.values[this.textColumn] = this.text
        this.textColumn = -1
        this.text = ""
        setTextHandler(this.sax, undefined)
      }
      return
    }
    const frame = this.stack.length === 0 ? undefined : this.stack[this.stack.length - 1]!
    if (frame === undefined || frame.depth !== depth) return
    this.stack.pop()
    if (this.stack.length > 0) {
      adopt(this.stack[this.stack.length - 1]!, frame)
      return
    }
    this.closed = frame
    this.closedEnd = this.base + this.sax.position
  }

  private flushClosed(): void {
    const frame = this.closed
    if (frame === undefined) return
    this.closed = undefined
    const end = this.closedEnd
    const corrupt = this.corruptWithin(frame.charStart, end)
    const oversize = end - frame.charStart > this.maxRecordChars
    this.emit(frame, null, undefined, oversize ? { kind: `larger than ${this.maxRecordChars} characters` } : corrupt)
    this.guardFrom = end
    this.recordEnd(frame.charStart, end)
  }

  /** Invalid UTF-8 inside the record rejects it; before it, outside any record, is reported. */
  private corruptWithin(from: number, to: number): Problem | undefined {
    if (this.corrupt.length === 0) return undefined
    const outside = this.corrupt[0]!
    if (outside < from) this.documentReject({ kind: "invalid UTF-8 outside records" }, outside)
    let found: number | undefined
    for (const p of this.corrupt) {
      if (p >= from && p < to) {
        found = p
        break
      }
    }
    this.corrupt = this.corrupt.filter((p) => p >= to)
    return found === undefined ? undefined : { kind: "invalid UTF-8", detail: `at byte ${this.offsets.at(found)}` }
  }

  private emit(frame: Frame, parentKeyValue: string | null, inherited: Problem | undefined, own?: Problem): void {
    const rec = frame.rec
    if (rec.parentKey >= 0) frame.values[rec.parentKey] = parentKeyValue
    const problem = inherited ?? own ?? this.check(frame)
    if (problem === undefined) {
      this.sink.row(rec.table, frame.values, frame.ord)
    } else {
      const id = rec.idAttribute === undefined ? null : frame.values[rec.keyColumn] ?? null
      this.sink.reject({
        file: this.file,
        offset: this.offsets.at(frame.charStart),
        element: rec.shape.element,
        id,
        kind: `${rec.shape.element}: ${problem.kind}`,
        reason: problem.detail === undefined ? problem.kind : `${problem.kind}: ${problem.detail}`,
        ord: frame.ord
      })
    }
    const childRejected = problem === undefined ? undefined : { kind: `enclosing <${rec.shape.element}> rejected` }
    if (frame.children === undefined) return
    for (const child of frame.children) this.emit(child, frame.values[rec.keyColumn] ?? null, childRejected)
  }

  private check(frame: Frame): Problem | undefined {
    if (frame.error !== undefined) return { kind: frame.error }
    const columns = frame.rec.shape.columns
    for (let i = 0; i < columns.length; i++) {
      const c = columns[i]!
      const v = frame.values[i] ?? null
      if (v === null) {
        if (c.required) return { kind: `missing ${describe(c)}` }
        continue
      }
      const problem = c.type.check(v)
      if (problem !== undefined) return { kind: `bad ${describe(c)}`, detail: `${quoteValue(v)} ${problem}` }
    }
    return undefined
  }
}
