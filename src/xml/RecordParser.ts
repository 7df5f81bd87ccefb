/**
 * The saxes state machine that turns XML text into records, driven by a DocumentShape.
 * Synchronous and plain: it is the hot loop, so there is no Effect, closure or Schema
 * per record. Records go to a RecordSink as arrays of validated text values.
 */
import { SaxesParser, type SaxesTagPlain } from "saxes"
import { XmlParseError } from "../Errors.js"
import { ByteOffsets } from "./ByteOffsets.js"
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
  /** a top-level record (and everything in it) is complete; `byteEnd` is just past its end tag */
  readonly recordEnd: (byteStart: number, byteEnd: number) => void
}

interface Problem {
  readonly kind: string
  readonly detail?: string
}

interface Compiled {
  readonly shape: RecordShape
  readonly table: number
  readonly attributes: ReadonlyArray<readonly [attribute: string, column: number]>
  readonly fields: ReadonlyMap<string, number>
  readonly records: ReadonlyMap<string, Compiled>
  readonly parentKey: number
  readonly keyColumn: number
  readonly idAttribute: string | undefined
}

interface Frame {
  readonly rec: Compiled
  readonly values: Array<string | null>
  readonly ord: number
  readonly offset: number
  readonly depth: number
  readonly children: Array<Frame>
  error: string | undefined
}

const compile = (doc: DocumentShape): Compiled => {
  const tables = recordShapes(doc)
  const build = (shape: RecordShape): Compiled => {
    const attributes: Array<readonly [string, number]> = []
    const fields = new Map<string, number>()
    let parentKey = -1
    shape.columns.forEach((c, i) => {
      if (c.source._tag === "Attribute") attributes.push([c.source.name, i])
      else if (c.source._tag === "Child") fields.set(c.source.name, i)
      else parentKey = i
    })
    const keyColumn = shape.columns.findIndex((c) => c.name === shape.key)
    const key = shape.columns[keyColumn]
    return {
      shape,
      table: tables.indexOf(shape),
      attributes,
      fields,
      records: new Map(shape.children.map((c) => [c.element, build(c)])),
      parentKey,
      keyColumn,
      idAttribute: key?.source._tag === "Attribute" ? key.source.name : undefined
    }
  }
  return build(doc.record)
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
  /** a record whose text exceeds this many characters is rejected */
  readonly maxRecordChars?: number
}

export class RecordParser {
  private readonly sax: SaxesParser<{ xmlns: false; position: false }>
  private readonly top: Compiled
  private readonly root: string
  private readonly file: string
  private readonly maxRecordChars: number
  private readonly stack: Array<Frame> = []
  private depth = 0
  private skipDepth = 0
  private textColumn = -1
  private textDepth = 0
  private text = ""
  private recordChars = 0
  /** byte offset of the last record's (or the root's) "<" */
  private tagStart = 0
  private readonly recordElements: ReadonlySet<string>
  private ord = 0
  private readonly offsets: ByteOffsets

  constructor(doc: DocumentShape, private readonly sink: RecordSink, options: RecordParserOptions) {
    this.top = compile(doc)
    this.root = doc.root
    this.file = options.file
    this.maxRecordChars = options.maxRecordChars ?? Number.MAX_SAFE_INTEGER
    this.offsets = new ByteOffsets(0)
    this.recordElements = new Set(recordShapes(doc).map((r) => r.element))
    const sax = new SaxesParser<{ xmlns: false; position: false }>({ xmlns: false, position: false })
    this.sax = sax
    sax.on("error", (e) => {
      throw new XmlParseError({ file: this.file, offset: this.offsets.at(sax.position), reason: e.message })
    })
    sax.on("xmldecl", (d) => {
      if (d.encoding !== undefined && !/^utf-?8$/i.test(d.encoding)) {
        throw new XmlParseError({ file: this.file, offset: 0, reason: `unsupported encoding ${d.encoding}; only UTF-8 is read` })
      }
    })
    // The byte offset of a record's "<" (saxes has read the name and one character past it),
    // taken now while that character is still among the recent chunks.
    sax.on("opentagstart", (t) => {
      if (this.depth === 0 || this.recordElements.has(t.name)) {
        this.tagStart = this.offsets.at(sax.position - t.name.length - 2)
      }
    })
    sax.on("opentag", (t) => this.open(t))
    sax.on("closetag", () => this.close())
    sax.on("text", (t) => this.onText(t))
    sax.on("cdata", (t) => this.onText(t))
  }

  /** Feeds decoded text; records completed by it reach the sink before this returns. */
  write(text: string): void {
    this.offsets.push(text)
    this.sax.write(text)
  }

  /** Ends the document; fails if it is incomplete. */
  end(): void {
    this.sax.close()
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
          offset: this.tagStart,
          reason: `root element is <${tag.name}>, expected <${this.root}>`
        })
      }
      return
    }
    const frame = this.stack.length === 0 ? undefined : this.stack[this.stack.length - 1]!
    if (frame === undefined) {
      if (depth === 2 && tag.name === this.top.shape.element) this.openRecord(this.top, tag, depth)
      else this.skipDepth = depth
      return
    }
    const column = frame.rec.fields.get(tag.name)
    if (column !== undefined) {
      if (frame.values[column] !== null) frame.error ??= `duplicate element <${tag.name}>`
      this.textColumn = column
      this.textDepth = depth
      this.text = ""
      return
    }
    const nested = frame.rec.records.get(tag.name)
    if (nested !== undefined) this.openRecord(nested, tag, depth)
    else this.skipDepth = depth
  }

  private openRecord(rec: Compiled, tag: SaxesTagPlain, depth: number): void {
    const values: Array<string | null> = new Array(rec.shape.columns.length).fill(null)
    const attributes = tag.attributes
    if (this.stack.length === 0) this.recordChars = 0
    for (const [name, column] of rec.attributes) {
      const v = attributes[name]
      if (v !== undefined) {
        values[column] = v
        this.recordChars += v.length
      }
    }
    this.stack.push({
      rec,
      values,
      ord: ++this.ord,
      offset: this.tagStart,
      depth,
      children: [],
      error: undefined
    })
  }

  private onText(t: string): void {
    if (this.textColumn < 0 || this.skipDepth !== 0) return
    this.recordChars += t.length
    if (this.recordChars > this.maxRecordChars) {
      const frame = this.stack[this.stack.length - 1]!
      frame.error ??= `record larger than ${this.maxRecordChars} characters`
      return
    }
    this.text += t
  }

  private close(): void {
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
      }
      return
    }
    const frame = this.stack.length === 0 ? undefined : this.stack[this.stack.length - 1]!
    if (frame === undefined || frame.depth !== depth) return
    this.stack.pop()
    if (this.stack.length > 0) {
      this.stack[this.stack.length - 1]!.children.push(frame)
      return
    }
    this.emit(frame, null, undefined)
    this.sink.recordEnd(frame.offset, this.offsets.at(this.sax.position))
  }

  private emit(frame: Frame, parentKeyValue: string | null, parentRejected: Problem | undefined): void {
    const rec = frame.rec
    if (rec.parentKey >= 0) frame.values[rec.parentKey] = parentKeyValue
    const problem = parentRejected ?? this.check(frame)
    if (problem === undefined) {
      this.sink.row(rec.table, frame.values, frame.ord)
    } else {
      const id = rec.idAttribute === undefined ? null : frame.values[rec.keyColumn] ?? null
      this.sink.reject({
        file: this.file,
        offset: frame.offset,
        element: rec.shape.element,
        id,
        kind: `${rec.shape.element}: ${problem.kind}`,
        reason: problem.detail === undefined ? problem.kind : `${problem.kind}: ${problem.detail}`,
        ord: frame.ord
      })
    }
    const childRejected = problem === undefined ? undefined : { kind: `enclosing <${rec.shape.element}> rejected` }
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
