/**
 * The input side of the producer: what identifies an input across runs, opening it (a
 * file, gzip detected by its magic bytes, or stdin for "-"), and the pull-based Stream of
 * batches when parsing on the main thread. A chunk is read only when downstream pulls, so a
 * slow database holds the reader back.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { createHash } from "node:crypto"
import { pipeline, type Readable, Transform } from "node:stream"
import * as zlib from "node:zlib"
import { ReadError, type XmlParseError } from "../Errors.js"
import type { Batch } from "../pipeline/Batch.js"
import { collectEvery } from "./HeapCollection.js"
import { Producer, type ProducerOptions, READ_CHUNK, toParseError } from "./Producer.js"
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

const GZIP_MAGIC = [0x1f, 0x8b]
const FINGERPRINT_SPAN = 64 * 1024

/**
 * What identifies an input across runs: a file's size, whether it is gzip, and a
 * fingerprint of its first and last 64 KiB. Stdin has none of these.
 *
 * @since 0.1.0
 * @category models
 */
export interface InputInfo {
  readonly file: string
  readonly size: number | undefined
  readonly gzip: boolean
  readonly fingerprint: string | undefined
}

/**
 * @since 0.1.0
 * @category producer
 */
export const inspectInput = (file: string): Effect.Effect<InputInfo, ReadError> =>
  Effect.try({
    try: (): InputInfo => {
      if (file === "-") return { file, size: undefined, gzip: false, fingerprint: undefined }
      const fd = fs.openSync(file, "r")
      try {
        const size = fs.fstatSync(fd).size
        const head = Buffer.alloc(Math.min(FINGERPRINT_SPAN, size))
        fs.readSync(fd, head, 0, head.length, 0)
        const tail = Buffer.alloc(Math.min(FINGERPRINT_SPAN, size))
        fs.readSync(fd, tail, 0, tail.length, size - tail.length)
        const fingerprint = createHash("sha256").update(String(size)).update(head).update(tail).digest("hex")
        return { file, size, gzip: head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1], fingerprint }
      } finally {
        fs.closeSync(fd)
      }
    },
    catch: (cause) => new ReadError({ file, cause })
  })

/**
 * An input opened for reading from XML byte `fromByte`: "-" is stdin; gzip is decompressed
 * on the fly (and, to resume, decompressed bytes before `fromByte` are dropped).
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenedInput {
  /** a plain file, the byte to start at and one to end at: a parse worker reads it itself */
  readonly file: { readonly path: string; readonly start: number; readonly end?: number } | undefined
  /** the input as a stream, opened on first use */
  readonly readable: () => Readable
  readonly progress: ReadProgress
}

/** Opens the stream once, on first use. */
const lazily = (open: () => Readable): () => Readable => {
  let stream: Readable | undefined
  return () => stream ??= open()
}

const dropFirst = (count: number): Transform => {
  let left = count
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (left >= chunk.length) {
        left -= chunk.length
        return done()
      }
      const rest = chunk.subarray(left)
      left = 0
      done(null, rest)
    }
  })
}

export const openInput = (info: InputInfo, fromByte = 0): Effect.Effect<OpenedInput, ReadError> =>
  Effect.try({
    try: (): OpenedInput => {
      // Without `sourceBytes`, the bytes parsed stand for the bytes read: a plain input is read
      // ahead of the parser by one chunk at most. Only gzip counts its compressed bytes apart.
      const progress = (sourceBytes?: () => number): ReadProgress => {
        const p: ReadProgress = {
          sourceBytes: sourceBytes ?? (() => p.xmlBytes),
          xmlBytes: fromByte,
          records: 0,
          rejects: 0,
          sourceSize: info.size
        }
        return p
      }
      if (info.file === "-") {
        if (fromByte > 0) throw new Error("stdin cannot be resumed")
        return { file: undefined, readable: () => process.stdin, progress: progress() }
      }
      if (!info.gzip) {
        return {
          file: { path: info.file, start: fromByte },
          readable: lazily(() => fs.createReadStream(info.file, { highWaterMark: READ_CHUNK, start: fromByte })),
          progress: progress()
        }
      }
      let source: fs.ReadStream | undefined
      const readable = lazily(() => {
        source = fs.createReadStream(info.file, { highWaterMark: READ_CHUNK })
        const gunzip = zlib.createGunzip({ chunkSize: READ_CHUNK })
        return fromByte > 0
          ? pipeline(source, gunzip, dropFirst(fromByte), () => {})
          : pipeline(source, gunzip, () => {})
      })
      return { file: undefined, readable, progress: progress(() => source?.bytesRead ?? 0) }
    },
    catch: (cause) => new ReadError({ file: info.file, cause })
  })

/**
 * Parsing a chunk is synchronous; between chunks the event loop must run, or the writers'
 * socket callbacks wait behind the parser. Effect's own yield stays in the microtask queue.
 */
const yieldToIo = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * The input's chunks, read only when pulled.
 *
 * @since 0.1.0
 * @category producer
 */
export const inputChunks = (input: OpenedInput, file: string): Stream.Stream<Uint8Array, ReadError> =>
  NodeStream.fromReadable<ReadError, Uint8Array>(
    input.readable,
    (cause) => new ReadError({ file, cause }),
    { chunkSize: READ_CHUNK }
  )

/**
 * Counts parsed batches into the input's progress; `xmlBytes`: parsed so far. Returns the XML
 * bytes parsed since the last count, for the heap collections (HeapCollection.ts).
 */
export const countParsed = (progress: ReadProgress, xmlBytes: number, batches: ReadonlyArray<Batch>): number => {
  const parsed = xmlBytes - progress.xmlBytes
  progress.xmlBytes = xmlBytes
  for (const b of batches) {
    progress.records += b.rows + b.rejects.length
    progress.rejects += b.rejects.length
  }
  return parsed
}

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
    const step = (f: () => Array<Batch>) =>
      Effect.try({ try: f, catch: (e) => toParseError(options.file, producer.bytes, e) }).pipe(
        Effect.tap((out) =>
          // this thread parses: it collects as a parse worker does
          Effect.sync(() => collectEvery(countParsed(input.progress, producer.bytes, out)))
        )
      )
    return inputChunks(input, options.file).pipe(
      Stream.mapConcatEffect((chunk) => Effect.zipLeft(step(() => producer.write(chunk)), yieldToIo)),
      Stream.concat(Stream.suspend(() => Stream.fromIterableEffect(step(() => producer.end()))))
    )
  })
