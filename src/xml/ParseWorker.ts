/**
 * Entry of the parse worker thread: told what to parse by its first message, runs a Producer
 * over the chunks the main thread posts, or over its file, read a chunk per request, and
 * posts back, per chunk, the batches it completed. The main thread keeps the event loop for
 * the COPY sockets; see `ParseThread.ts` for the protocol and `SharedPieces.ts` for the
 * batches' memory. The worker the CLI starts first may parse its input ahead of that first
 * message (`ParseAhead.ts`).
 */
import * as fs from "node:fs"
import { parentPort, workerData } from "node:worker_threads"
import { causeMessage } from "../Errors.js"
import { type Batch, setBatchRunId } from "../pipeline/Batch.js"
import { fromWire } from "../shape/Shape.js"
import { collectEvery } from "./HeapCollection.js"
import { AHEAD_LIMIT, type AheadHint, type Guess, guessInit, guessInput, mismatch } from "./ParseAhead.js"
import type { Ahead, FromWorker, ToWorker, WireBatch, WorkerInit } from "./ParseThread.js"
import { Producer, READ_CHUNK, toParseError } from "./Producer.js"
import { WorkerRegions } from "./SharedPieces.js"

const port = parentPort!
const regions = new WorkerRegions()

const toWire = (batch: Batch): WireBatch => ({
  ...batch,
  tables: batch.tables.map((t) => ({ rows: t.rows, pieces: t.chunks.map((c) => regions.piece(c)) }))
})

const post = (message: FromWorker) => port.postMessage(message)

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

  /** The same reader on another descriptor of the same file, to end at `end`. */
  on(fd: number, end: number | undefined): FileReader {
    return new FileReader(fd, this.position, end)
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
  /** batches parsed ahead of the first message, kept: the first answer's */
  early: Array<Batch>
  /** what became of the parse ahead, told in the first answer */
  ahead: Ahead | undefined
}

const start = (init: WorkerInit): Parsing => ({
  file: init.options.file,
  producer: new Producer({ ...init.options, doc: fromWire(init.shape) }, regions),
  reader: init.file === undefined ? undefined : new FileReader(init.file.fd, init.file.start, init.file.end),
  ended: false,
  overran: false,
  early: [],
  ahead: undefined
})

/** The batches for one message: its chunk, or the next chunk of the file; without one, the end of input. */
const parse = (parsing: Parsing, message: ToWorker): Array<Batch> => {
  if (parsing.early.length > 0) {
    const early = parsing.early
    parsing.early = []
    return early
  }
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

/** The first input, parsed ahead on a guess (see ParseAhead.ts), until the first message. */
interface ParsedAhead {
  /** its file is opened here (`init.file.fd`) */
  readonly guess: Guess
  readonly parsing: Parsing
  readonly batches: Array<Batch>
}

let ahead: ParsedAhead | undefined = undefined

const startAhead = (hint: AheadHint): ParsedAhead | undefined => {
  const file = guessInput(hint)
  if (file === undefined) return undefined
  let fd: number | undefined
  try {
    fd = fs.openSync(file, "r")
    const guess = guessInit(file, fd)
    if (guess !== undefined) return { guess, parsing: start(guess.init), batches: [] }
  } catch {
    // gone since it was guessed: nothing is parsed ahead
  }
  if (fd !== undefined) fs.closeSync(fd)
  return undefined
}

/** One chunk ahead per turn of the event loop, so that the first message is taken as it comes. */
const stepAhead = (): void => {
  const a = ahead
  if (a === undefined) return
  try {
    const before = a.parsing.producer.bytes
    for (const batch of parse(a.parsing, { read: true })) a.batches.push(batch)
    collectEvery(a.parsing.producer.bytes - before)
  } catch {
    // a broken input is the run's to report, parsed again as it is told
    ahead = undefined
    return dropAhead(a)
  }
  if (!a.parsing.ended && a.parsing.producer.bytes < AHEAD_LIMIT) setImmediate(stepAhead)
}

const dropAhead = (a: ParsedAhead): void => {
  a.parsing.producer.discard(a.batches)
  fs.closeSync(a.guess.init.file!.fd)
}

/**
 * The parse of the input `init` names: the one ahead, carried on from where it got to, if it
 * guessed right; else a new one, and what was parsed ahead is dropped.
 */
const begin = (init: WorkerInit): Parsing => {
  const a = ahead
  ahead = undefined
  if (a === undefined) return start(init)
  const bytes = a.parsing.producer.bytes
  const dropped = mismatch(a.guess, init, bytes)
  if (dropped !== undefined) {
    dropAhead(a)
    return { ...start(init), ahead: { bytes, dropped } }
  }
  const runId = init.options.runId
  for (const batch of a.batches) setBatchRunId(batch, runId)
  a.parsing.producer.rerun(runId)
  // read on from the main thread's descriptor, which it closes when the input ends, up to the range's end if any
  const reader = a.parsing.reader!.on(init.file!.fd, init.file!.end)
  fs.closeSync(a.guess.init.file!.fd)
  return { ...a.parsing, reader, early: a.batches, ahead: { bytes } }
}

const hint = (workerData as { ahead?: AheadHint } | null)?.ahead
if (hint !== undefined) {
  ahead = startAhead(hint)
  if (ahead !== undefined) setImmediate(stepAhead)
}

port.on("message", (message: ToWorker) => {
  if (message.init !== undefined) {
    parsing = begin(message.init)
    return
  }
  if (message.release !== undefined) return regions.release(message.release)
  const current = parsing!
  try {
    const before = current.producer.bytes
    const batches = parse(current, message).map(toWire)
    const xmlBytes = current.producer.bytes
    post({
      _tag: "Batches",
      batches,
      regions: regions.takeChanges(),
      xmlBytes,
      ended: current.ended,
      overran: current.overran,
      ...(current.ahead === undefined ? {} : { ahead: current.ahead })
    })
    current.ahead = undefined
    // after the post: the main thread has the batches while this thread collects
    collectEvery(xmlBytes - before)
  } catch (e) {
    if (e instanceof ReadFailure) return post({ _tag: "ReadFailed", reason: e.reason })
    const error = toParseError(current.file, current.producer.bytes, e)
    post({ _tag: "Failed", offset: error.offset, reason: error.reason })
  }
})
