/**
 * Entry of the parse worker thread: runs a Producer over the chunks the main thread posts
 * and posts back, per chunk, the batches it completed. The main thread keeps the event loop
 * for the COPY sockets; see `ParseThread.ts` for the protocol.
 */
import { parentPort, workerData } from "node:worker_threads"
import type { Batch } from "../pipeline/Batch.js"
import type { FromWorker, ToWorker, WorkerInit } from "./ParseThread.js"
import { workerShapes } from "./WorkerShapes.js"
import { Producer, toParseError } from "./Producer.js"

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

port.on("message", (message: ToWorker) => {
  try {
    const batches = message.chunk === undefined ? producer.end() : producer.write(message.chunk)
    post({ _tag: "Batches", batches, xmlBytes: producer.bytes, ended: message.chunk === undefined }, transferList(batches))
  } catch (e) {
    const error = toParseError(init.options.file, producer.bytes, e)
    post({ _tag: "Failed", offset: error.offset, reason: error.reason })
  }
})
