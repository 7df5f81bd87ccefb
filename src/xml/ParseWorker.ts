/**
 * Entry of the parse worker thread: runs a Producer over the chunks the main thread posts,
 * or over its file, read a chunk per request, and posts back, per chunk, the batches it
 * completed. The main thread keeps the event loop for the COPY sockets; see
 * `ParseThread.ts` for the protocol.
 */
import * as fs from "node:fs"
import { parentPort, workerData } from "node:worker_threads"
import { causeMessage } from "../Errors.js"
import type { Batch } from "../pipeline/Batch.js"
import type { FromWorker, ToWorker, WorkerInit } from "./ParseThread.js"
import { workerShapes } from "./WorkerShapes.js"
import { Producer, READ_CHUNK, toParseError } from "./Producer.js"

const init = workerData as WorkerInit
const port = parentPort!
const producer = new Producer({ ...init.options, doc: workerShapes[init.shape]! })

/** Every batch's COPY pieces move to the main thread without a copy. */
const transferList = (batches: ReadonlyArray<Batch>): Array<ArrayBuffer> => {
  const buffers = new Set<ArrayBuffer>()
  for (const b of batches) {
    for (const t of b.tables) for (const c of t.chunks) buffers.add(c.buffer as ArrayBuffer)
  }
  return [...buffers]
}

const post = (message: FromWorker, transfer: Array<ArrayBuffer> = []) => port.postMessage(message, transfer)

class ReadFailure {
  constructor(readonly reason: string) {}
}

/**
 * The worker's own reads of a plain file, one chunk per call, undefined at its end: one
 * buffer, reused, as the Producer copies what it keeps.
 */
const reader = (file: { readonly fd: number; readonly start: number }) => {
  const buffer = Buffer.allocUnsafeSlow(READ_CHUNK)
  let position = file.start
  return (): Uint8Array | undefined => {
    let n: number
    try {
      n = fs.readSync(file.fd, buffer, 0, buffer.length, position)
    } catch (e) {
      throw new ReadFailure(causeMessage(e))
    }
    position += n
    return n === 0 ? undefined : buffer.subarray(0, n)
  }
}

const read = init.file === undefined ? undefined : reader(init.file)
let ended = false

/** The batches for one message: its chunk, or the next chunk of the file; without one, the end of input. */
const parse = (message: ToWorker): Array<Batch> => {
  if (ended) return []
  const chunk = message.read === undefined ? message.chunk : read!()
  if (chunk !== undefined) return producer.write(chunk)
  ended = true
  return producer.end()
}

port.on("message", (message: ToWorker) => {
  try {
    const batches = parse(message)
    post({ _tag: "Batches", batches, xmlBytes: producer.bytes, ended }, transferList(batches))
  } catch (e) {
    if (e instanceof ReadFailure) return post({ _tag: "ReadFailed", reason: e.reason })
    const error = toParseError(init.options.file, producer.bytes, e)
    post({ _tag: "Failed", offset: error.offset, reason: error.reason })
  }
})
