/**
 * Entry of the parse worker thread: told what to parse by its first message, runs a Producer
 * over the chunks the main thread posts, or over its file, read a chunk per request, and
 * posts back, per chunk, the batches it completed. The main thread keeps the event loop for
 * the COPY sockets; see `ParseThread.ts` for the protocol and `SharedPieces.ts` for the
 * batches' memory.
 */
import * as fs from "node:fs"
import { parentPort } from "node:worker_threads"
import { causeMessage } from "../Errors.js"
import type { Batch } from "../pipeline/Batch.js"
import { fromWire } from "../shape/Shape.js"
import type { FromWorker, ToWorker, WireBatch, WorkerInit } from "./ParseThread.js"
import { Producer, READ_CHUNK, toParseError } from "./Producer.js"
import { WorkerRegions } from "./SharedPieces.js"

const port = parentPort!
const regions = new WorkerRegions()

/** `transfer` collects the buffers of pieces too large for a shared region. */
const toWire = (batch: Batch, transfer: Array<ArrayBuffer>): WireBatch => ({
  ...batch,
  tables: batch.tables.map((t) => ({ rows: t.rows, pieces: t.chunks.map((c) => regions.piece(c, transfer)) }))
})

const post = (message: FromWorker, transfer: Array<ArrayBuffer> = []) => port.postMessage(message, transfer)

class ReadFailure {
  constructor(readonly reason: string) {}
}

/**
 * Bytes per read of a plain file: one read per request, and one answer, which costs the
 * main thread the same whatever its size (see READS_IN_FLIGHT in ParseThread.ts).
 */
const FILE_READ = 4 * READ_CHUNK

/**
 * The worker's own reads of a plain file, one chunk per call, undefined at its end or at
 * `limit`: one buffer, reused, as the Producer copies what it keeps.
 */
class FileReader {
  private readonly buffer = Buffer.allocUnsafeSlow(FILE_READ)
  private position: number
  /** where the range ends (see Split.ts); lifted when the range runs on past it */
  limit: number

  constructor(private readonly fd: number, start: number, end: number | undefined) {
    this.position = start
    this.limit = end ?? Infinity
  }

  get atLimit(): boolean {
    return this.position === this.limit
  }

  read(): Uint8Array | undefined {
    const want = Math.min(this.buffer.length, this.limit - this.position)
    if (want === 0) return undefined
    let n: number
    try {
      n = fs.readSync(this.fd, this.buffer, 0, want, this.position)
    } catch (e) {
      throw new ReadFailure(causeMessage(e))
    }
    this.position += n
    return n === 0 ? undefined : this.buffer.subarray(0, n)
  }
}

/** The input, from the first message. */
interface Parsing {
  readonly file: string
  readonly producer: Producer
  readonly reader: FileReader | undefined
  ended: boolean
  /** the range did not end at a record where it should have: it runs on to the end of the file */
  overran: boolean
}

const start = (init: WorkerInit): Parsing => ({
  file: init.options.file,
  producer: new Producer({ ...init.options, doc: fromWire(init.shape) }, regions),
  reader: init.file === undefined ? undefined : new FileReader(init.file.fd, init.file.start, init.file.end),
  ended: false,
  overran: false
})

/** The batches for one message: its chunk, or the next chunk of the file; without one, the end of input. */
const parse = (parsing: Parsing, message: ToWorker): Array<Batch> => {
  if (parsing.ended) return []
  const reader = parsing.reader
  const chunk = message.read === undefined ? message.chunk : reader!.read()
  if (chunk !== undefined) return parsing.producer.write(chunk)
  if (reader?.atLimit === true) {
    const last = parsing.producer.endAtRecord()
    if (last === undefined) {
      parsing.overran = true
      reader.limit = Infinity
      return parse(parsing, message)
    }
    parsing.ended = true
    return last
  }
  parsing.ended = true
  return parsing.producer.end()
}

let parsing: Parsing | undefined = undefined

/**
 * XML bytes between full collections of this thread's heap, where the CLI exposes `gc`
 * (`--expose-gc` on its shebang). Left to V8, the worker's old generation climbed from its
 * ~5 MB live set to ~18 MB (27 MB committed) between collections, every 300–400 MB of XML,
 * so a long load peaked higher than a short one (peak RSS of an ingest: 118–124 MB on 1 GB
 * against 105–110 MB on 100 MB). A full collection of that live set takes 6–12 ms, 16 per GB;
 * with them 1 GB peaked at 111–114 MB and 100 MB the same as before, at the same speed within
 * the noise (docs/benchmarks.md, session 14).
 */
const GC_EVERY = 64 * 2 ** 20
const gc = (globalThis as { gc?: () => void }).gc
/** XML bytes parsed since the last full collection, over every input this thread parsed */
let sinceGc = 0

const collectEvery = (parsed: number): void => {
  sinceGc += parsed
  if (gc === undefined || sinceGc < GC_EVERY) return
  gc()
  sinceGc = 0
}

port.on("message", (message: ToWorker) => {
  if (message.init !== undefined) {
    parsing = start(message.init)
    return
  }
  if (message.release !== undefined) return regions.release(message.release)
  const current = parsing!
  try {
    const transfer: Array<ArrayBuffer> = []
    const before = current.producer.bytes
    const batches = parse(current, message).map((b) => toWire(b, transfer))
    const xmlBytes = current.producer.bytes
    post({
      _tag: "Batches",
      batches,
      regions: regions.takeNew(),
      xmlBytes,
      ended: current.ended,
      overran: current.overran
    }, transfer)
    // after the post: the main thread has the batches while this thread collects
    collectEvery(xmlBytes - before)
  } catch (e) {
    if (e instanceof ReadFailure) return post({ _tag: "ReadFailed", reason: e.reason })
    const error = toParseError(current.file, current.producer.bytes, e)
    post({ _tag: "Failed", offset: error.offset, reason: error.reason })
  }
})
