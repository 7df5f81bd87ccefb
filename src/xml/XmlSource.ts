/**
 * The producer: input bytes (a file, gzip detected by its magic bytes, or stdin for "-")
 * → UTF-8 text → RecordParser → BatchBuilder, as a pull-based Stream of batches. A chunk is
 * read only when downstream pulls, so a slow database holds the reader back.
 */
import { NodeStream } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import type { Readable } from "node:stream"
import { pipeline } from "node:stream"
import * as zlib from "node:zlib"
import { causeMessage, ReadError, XmlParseError } from "../Errors.js"
import { type Batch, BatchBuilder, type BatchLimits } from "../pipeline/Batch.js"
import { type DocumentShape, recordShapes } from "../shape/Shape.js"
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
}

/**
 * Counters the producer keeps as it goes; read by progress reporting.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadProgress {
  /** bytes read from the source (compressed bytes for gzip) */
  readonly sourceBytes: () => number
  /** decompressed XML bytes parsed */
  xmlBytes: number
  records: number
  rejects: number
  /** total source size when known */
  readonly sourceSize: number | undefined
}

const DECODE_SLICE = 32 * 1024

export class Producer {
  // the BOM is kept as U+FEFF, which saxes skips, so byte offsets count its 3 bytes
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
  private parser: RecordParser | undefined = undefined
  private readonly builder: BatchBuilder
  private ready: Array<Batch> = []
  private xmlBytes = 0

  constructor(private readonly options: ProducerOptions) {
    this.builder = new BatchBuilder(recordShapes(options.doc).length, options.runId, options.limits, (b) => {
      this.ready.push(b)
    })
  }

  get bytes(): number {
    return this.xmlBytes
  }

  /** Parses a chunk; returns the batches it completed. Throws XmlParseError. */
  write(bytes: Uint8Array): Array<Batch> {
    const parser = this.parser ?? this.start()
    // Decoded in small slices: a string over ~128 KiB is allocated in V8's old generation
    // and lingers until a full GC; small ones die young and cheaply.
    for (let at = 0; at < bytes.length; at += DECODE_SLICE) {
      const slice = bytes.subarray(at, at + DECODE_SLICE)
      let text: string
      try {
        text = this.decoder.decode(slice, { stream: true })
      } catch {
        throw new XmlParseError({ file: this.options.file, offset: this.xmlBytes, reason: "input is not valid UTF-8" })
      }
      this.xmlBytes += slice.length
      parser.write(text)
    }
    return this.take()
  }

  /** Ends the input; returns the last batches. Throws XmlParseError if the document is incomplete. */
  end(): Array<Batch> {
    const parser = this.parser ?? this.start()
    let tail: string
    try {
      tail = this.decoder.decode()
    } catch {
      throw new XmlParseError({ file: this.options.file, offset: this.xmlBytes, reason: "input ends inside a UTF-8 character" })
    }
    if (tail.length > 0) parser.write(tail)
    parser.end()
    this.builder.finish()
    return this.take()
  }

  private start(): RecordParser {
    const parser = new RecordParser(this.options.doc, this.builder, {
      file: this.options.file,
      ...(this.options.maxRecordChars === undefined ? {} : { maxRecordChars: this.options.maxRecordChars })
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

const GZIP_MAGIC = [0x1f, 0x8b]

const isGzip = (path: string): boolean => {
  const fd = fs.openSync(path, "r")
  try {
    const head = Buffer.alloc(2)
    return fs.readSync(fd, head, 0, 2, 0) === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * An input opened for reading: "-" is stdin; a file starting with the gzip magic bytes is
 * decompressed on the fly.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenedInput {
  readonly readable: Readable
  readonly progress: ReadProgress
}

const READ_CHUNK = 256 * 1024

export const openInput = (file: string): Effect.Effect<OpenedInput, ReadError> =>
  Effect.try({
    try: (): OpenedInput => {
      if (file === "-") {
        const progress: ReadProgress = {
          sourceBytes: () => progress.xmlBytes,
          xmlBytes: 0,
          records: 0,
          rejects: 0,
          sourceSize: undefined
        }
        return { readable: process.stdin, progress }
      }
      const size = fs.statSync(file).size
      const gzip = isGzip(file)
      const source = fs.createReadStream(file, { highWaterMark: READ_CHUNK })
      const progress: ReadProgress = {
        sourceBytes: () => source.bytesRead,
        xmlBytes: 0,
        records: 0,
        rejects: 0,
        sourceSize: size
      }
      if (!gzip) return { readable: source, progress }
      const gunzip = zlib.createGunzip({ chunkSize: READ_CHUNK })
      return { readable: pipeline(source, gunzip, () => {}), progress }
    },
    catch: (cause) => new ReadError({ file, cause })
  })

const toParseError = (file: string, offset: number) => (e: unknown): XmlParseError =>
  e instanceof XmlParseError ? e : new XmlParseError({ file, offset, reason: causeMessage(e) })

/**
 * The batches of one input, pulled on demand.
 *
 * @since 0.1.0
 * @category producer
 */
export const batches = (
  input: OpenedInput,
  options: ProducerOptions
): Stream.Stream<Batch, ReadError | XmlParseError> =>
  Stream.suspend(() => {
    const producer = new Producer(options)
    const progress = input.progress
    const step = (f: () => Array<Batch>) =>
      Effect.try({ try: f, catch: toParseError(options.file, producer.bytes) }).pipe(
        Effect.tap((out) =>
          Effect.sync(() => {
            progress.xmlBytes = producer.bytes
            for (const b of out) {
              progress.records += b.rows + b.rejects.length
              progress.rejects += b.rejects.length
            }
          })
        )
      )
    return NodeStream.fromReadable<ReadError, Uint8Array>(
      () => input.readable,
      (cause) => new ReadError({ file: options.file, cause }),
      { chunkSize: READ_CHUNK }
    ).pipe(
      Stream.mapConcatEffect((chunk) => step(() => producer.write(chunk))),
      Stream.concat(Stream.suspend(() => Stream.fromIterableEffect(step(() => producer.end()))))
    )
  })
