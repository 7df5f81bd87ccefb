/**
 * Stage 2, the producer alone: the project's parse + validate + COPY-encode, batches
 * counted and dropped, no database. It encodes into the parse worker's recycled regions, as
 * an ingest does, each batch's given back once counted, as a writer does once it is written.
 */
import * as fs from "node:fs"
import { defaults } from "../config/Settings.js"
import type { Batch, PieceSource } from "../pipeline/Batch.js"
import { GroupsDocument } from "../shape/GroupEvents.js"
import { collectEvery, MAIN_THREAD_COLLECTS } from "../xml/HeapCollection.js"
import { Producer } from "../xml/Producer.js"
import { regionIds, WorkerRegions } from "../xml/SharedPieces.js"
import { READ_CHUNK, type StageOutcome } from "./StageResult.js"

export const newProducer = (file: string, runId: number, pieces?: PieceSource): Producer =>
  new Producer({
    file,
    doc: GroupsDocument,
    runId,
    limits: { rows: defaults.batchRows, bytes: defaults.batchBytes },
    maxRecordChars: defaults.maxRecordBytes
  }, pieces)

/** Feeds `file` through a Producer, handing each finished batch to `onBatch`; pieces are fresh Buffers unless `pieces` says. */
export const produce = async (
  file: string,
  runId: number,
  onBatch: (batch: Batch) => void,
  pieces?: PieceSource
): Promise<number> => {
  const producer = newProducer(file, runId, pieces)
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK })) {
    for (const batch of producer.write(chunk as Buffer)) onBatch(batch)
    collectEvery((chunk as Buffer).length)
  }
  for (const batch of producer.end()) onBatch(batch)
  return producer.bytes
}

export const producerOnly = async (file: string): Promise<StageOutcome> => {
  // where `gc` is exposed (stage 2', the CLI's flags), the heap is collected as the CLI's parse worker collects its own
  ;(globalThis as Record<symbol, unknown>)[MAIN_THREAD_COLLECTS] = true
  let rows = 0
  let rejects = 0
  let batches = 0
  let encodedBytes = 0
  const regions = new WorkerRegions()
  const started = performance.now()
  const xmlBytes = await produce(file, 1, (batch) => {
    rows += batch.rows
    rejects += batch.rejects.length
    encodedBytes += batch.bytes
    batches++
    // as the worker does when it posts the batch, and the main thread once it is written
    const pieces = batch.tables.flatMap((t) => t.chunks.map((chunk) => regions.piece(chunk)))
    regions.takeChanges()
    regions.release(regionIds(pieces))
  }, regions)
  const seconds = (performance.now() - started) / 1000
  return {
    seconds,
    xmlBytes,
    rows,
    rejects,
    maxRssKb: process.resourceUsage().maxRSS,
    // the V8 flags and malloc's arenas show what the child ran under (stage 2' takes the CLI's)
    detail: {
      batches,
      encodedBytes,
      nodeFlags: process.execArgv,
      mallocArenaMax: process.env["MALLOC_ARENA_MAX"] ?? null
    }
  }
}
