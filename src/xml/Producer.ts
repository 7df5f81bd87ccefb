/**
 * The producer: input bytes → UTF-8 text → RecordParser → BatchBuilder, synchronously, one
 * chunk at a time. Free of Effect, so a parse worker loads only what parsing needs.
 */
import { isUtf8, transcode } from "node:buffer"
import { causeMessage, XmlParseError } from "../Errors.js"
import {
  type Batch,
  BatchBuilder,
  type BatchLimits,
  type CopyFormats,
  type PieceSource,
  tableFormats
} from "../pipeline/Batch.js"
import type { DocumentShape } from "../shape/Shape.js"
import { RecordParser } from "./RecordParser.js"
/**
 * @since 0.1.0
 * @category models
 */
export interface ProducerOptions {
  readonly file: string
  readonly doc: DocumentShape
  readonly runId: number
  readonly limits: BatchLimits
  readonly maxRecordChars?: number
  /** recover from malformed XML (default); off = the first break fails the run */
  readonly recover?: boolean
  /** continue a run: the input starts at `byte` (a batch boundary), after batch `seq - 1` and record `ord` */
  readonly resumeAt?: ResumePoint
  /** the run's COPY formats (default: binary where the shape allows it); see `tableFormats` */
  readonly formats?: CopyFormats
}

/**
 * Where a resumed run picks up: just past the last batch of the committed prefix.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResumePoint {
  readonly byte: number
  readonly seq: number
  readonly ord: number
}

/** Bytes per read of the input. */
export const READ_CHUNK = 256 * 1024

const DECODE_SLICE = 32 * 1024

/** for a Node built without ICU, which has no `transcode` */
const fallbackDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/**
 * Valid UTF-8 as text. ICU's converter to UTF-16 (`transcode`), whose output V8 copies
 * as it is, takes a sixth of the time of `TextDecoder` (V8's own UTF-8 decoder) on this
 * project's input. Either keeps a BOM as U+FEFF, which saxes skips, so byte offsets count
 * its 3 bytes.
 */
export const decodeUtf8: (bytes: Uint8Array) => string = typeof transcode === "function"
  ? (bytes) => transcode(bytes, "utf8", "ucs2").toString("ucs2")
  : (bytes) => fallbackDecoder.decode(bytes)

/** The length of `bytes` up to the end of its last complete UTF-8 character. */
const completeLength = (bytes: Uint8Array): number => {
  const n = bytes.length
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back]!
    if ((b & 0xc0) === 0x80) continue
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1
    return need > back ? n - back : n
  }
  return n
}

/** The length of the well-formed UTF-8 sequence starting at `i`, or 0 if none starts there. */
const sequenceLength = (bytes: Uint8Array, i: number): number => {
  const c = bytes[i]!
  if (c < 0x80) return 1
  let n = 2
  let lo = 0x80
  let hi = 0xbf
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3
    if (c === 0xe0) lo = 0xa0
    else if (c === 0xed) hi = 0x9f
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4
    if (c === 0xf0) lo = 0x90
    else if (c === 0xf4) hi = 0x8f
  } else {
    return 0
  }
  if (i + n > bytes.length) return 0
  const c1 = bytes[i + 1]!
  if (c1 < lo || c1 > hi) return 0
  for (let k = 2; k < n; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return 0
  return n
}

/**
 * Stands for one byte that is not UTF-8: ASCII, so the byte offsets derived from the text
 * stay exact (U+FFFD would count 3 bytes), and a name character, as U+FFFD is.
 */
const INVALID_BYTE = "_"

/**
 * Hands `f` the bytes of `pending` then `bytes`, in slices of up to DECODE_SLICE bytes that
 * end on character boundaries, so each can be decoded alone; returns the incomplete
 * character left at the end (a copy), to put in front of the next bytes. Decoded in small
 * slices, text makes small strings: a string over ~128 KiB is allocated in V8's old
 * generation and lingers until a full GC; small ones die young and cheaply.
 */
export const completeSlices = (pending: Uint8Array, bytes: Uint8Array, f: (slice: Uint8Array) => void): Uint8Array => {
  let rest = pending
  for (let at = 0; at < bytes.length; at += DECODE_SLICE) {
    const slice = bytes.subarray(at, at + DECODE_SLICE)
    const data = rest.length === 0 ? slice : Buffer.concat([rest, slice])
    const complete = completeLength(data)
    rest = new Uint8Array(data.subarray(complete))
    if (complete > 0) f(data.subarray(0, complete))
  }
  return rest
}

interface Decoded {
  readonly text: string
  /** positions in `text` of the characters standing for invalid bytes */
  readonly corrupt: Array<number>
  /** index in the bytes of the first invalid byte */
  readonly firstInvalid: number
}

const decodeInvalid = (bytes: Uint8Array): Decoded => {
  let text = ""
  const corrupt: Array<number> = []
  let firstInvalid = -1
  let run = 0
  let i = 0
  while (i < bytes.length) {
    const n = sequenceLength(bytes, i)
    if (n > 0) {
      i += n
      continue
    }
    if (run < i) text += decodeUtf8(bytes.subarray(run, i))
    if (firstInvalid < 0) firstInvalid = i
    corrupt.push(text.length)
    text += INVALID_BYTE
    run = ++i
  }
  if (run < bytes.length) text += decodeUtf8(bytes.subarray(run))
  return { text, corrupt, firstInvalid }
}

/** What a producer threw, as an XmlParseError: its own as they are, anything else at `offset`. */
export const toParseError = (file: string, offset: number, e: unknown): XmlParseError =>
  e instanceof XmlParseError ? e : new XmlParseError({ file, offset, reason: causeMessage(e) })

export class Producer {
  /** bytes of an incomplete UTF-8 sequence at the end of the previous slice */
  private pending: Uint8Array = new Uint8Array(0)
  private parser: RecordParser | undefined = undefined
  private readonly builder: BatchBuilder
  private ready: Array<Batch> = []
  private xmlBytes = 0

  /** `pieces`: where the COPY pieces come from (default: fresh Buffers) */
  constructor(private readonly options: ProducerOptions, pieces?: PieceSource) {
    this.builder = new BatchBuilder(tableFormats(options.doc, options.formats), options.runId, options.limits, (b) => {
      this.ready.push(b)
    }, options.resumeAt?.seq ?? 1, pieces)
    this.xmlBytes = options.resumeAt?.byte ?? 0
  }

  get bytes(): number {
    return this.xmlBytes
  }

  /** The rows encoded so far, and those to come, belong to run `runId` (see `BatchBuilder.rerun`). */
  rerun(runId: number): void {
    this.builder.rerun(runId)
  }

  /**
   * Drops `emitted` (batches it emitted and no one will write) and what it has parsed and not
   * handed over, their pieces given back; the producer takes no more input.
   */
  discard(emitted: ReadonlyArray<Batch>): void {
    this.builder.reclaim(emitted)
    this.builder.reclaim(this.take())
    this.builder.discard()
  }

  /** Parses a chunk; returns the batches it completed. Throws XmlParseError. */
  write(bytes: Uint8Array): Array<Batch> {
    const parser = this.parser ?? this.start()
    const end = this.xmlBytes + bytes.length
    let start = this.xmlBytes - this.pending.length
    this.pending = completeSlices(this.pending, bytes, (data) => {
      // what the slice throws that is not an XmlParseError is reported at its end (`bytes`)
      this.xmlBytes = start + data.length
      this.decode(parser, data, start, "input is not valid UTF-8")
      start += data.length
    })
    this.xmlBytes = end
    return this.take()
  }

  /** Ends the input; returns the last batches. Throws XmlParseError if the document is incomplete. */
  end(): Array<Batch> {
    const parser = this.parser ?? this.start()
    if (this.pending.length > 0) {
      const tail = this.pending
      this.pending = new Uint8Array(0)
      this.decode(parser, tail, this.xmlBytes - tail.length, "input ends inside a UTF-8 character")
    }
    parser.end()
    this.builder.finish()
    return this.take()
  }

  /**
   * Ends a range of the input (see Split.ts) where the bytes written so far end: its last
   * batches if a top-level record ended exactly there (`RecordParser.atRecordEnd`), else
   * undefined, and the caller writes on past it. Either way the document's end is not checked.
   */
  endAtRecord(): Array<Batch> | undefined {
    const parser = this.parser ?? this.start()
    if (this.pending.length > 0 || !parser.atRecordEnd()) return undefined
    this.builder.finish()
    return this.take()
  }

  // Either way each input byte stands for one UTF-8 byte of the text, so its length is known:
  // each byte that is not UTF-8 becomes one INVALID_BYTE, whose position the parser is told.
  private decode(parser: RecordParser, bytes: Uint8Array, byteStart: number, reason: string): void {
    if (isUtf8(bytes)) return parser.write(decodeUtf8(bytes), [], bytes.length)
    const decoded = decodeInvalid(bytes)
    if (this.options.recover === false) {
      throw new XmlParseError({ file: this.options.file, offset: byteStart + decoded.firstInvalid, reason })
    }
    parser.write(decoded.text, decoded.corrupt, bytes.length)
  }

  private start(): RecordParser {
    const parser = new RecordParser(this.options.doc, this.builder, {
      file: this.options.file,
      ...(this.options.maxRecordChars === undefined ? {} : { maxRecordChars: this.options.maxRecordChars }),
      ...(this.options.recover === undefined ? {} : { recover: this.options.recover }),
      ...(this.options.resumeAt === undefined ? {} : { resumeAt: this.options.resumeAt })
    })
    this.parser = parser
    return parser
  }

  private take(): Array<Batch> {
    if (this.ready.length === 0) return []
    const out = this.ready
    this.ready = []
    return out
  }
}

