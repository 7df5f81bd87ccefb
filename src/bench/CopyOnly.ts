/**
 * Stage 3, the database ceiling: batches are encoded by the producer into a file first
 * (untimed), then only their COPY into staging is timed, through the same `writeBatch` and
 * the same number of writers as `ingest`.
 *
 * File format, one record per batch: u32 LE header length, the header as JSON (the batch
 * without its Buffers, plus each table's chunk sizes), then every chunk's bytes in order.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { copyTargets, writeBatch } from "../db/Copy.js"
import { PgPool } from "../db/PgPool.js"
import type { Batch } from "../pipeline/Batch.js"
import { GroupsDocument } from "../shape/GroupEvents.js"
import { produce } from "./ProducerOnly.js"
import { cpuBetween, serverCpuSeconds } from "./Cpu.js"
import type { StageOutcome } from "./StageResult.js"

type Header = Omit<Batch, "tables"> & {
  readonly tables: ReadonlyArray<{ readonly rows: number; readonly sizes: ReadonlyArray<number> }>
}

const RUN_ID = 1

const writeAll = (fd: number, data: Uint8Array) => {
  let at = 0
  while (at < data.length) at += fs.writeSync(fd, data, at)
}

const readExactly = (fd: number, length: number, position: number): Buffer | undefined => {
  const out = Buffer.allocUnsafeSlow(length)
  let at = 0
  while (at < length) {
    const n = fs.readSync(fd, out, at, length - at, position + at)
    if (n === 0) return undefined
    at += n
  }
  return out
}

/** Encodes `file` into `out`; not timed by the bench. */
export const encodeToFile = async (file: string, out: string): Promise<StageOutcome> => {
  const fd = fs.openSync(out, "w")
  let rows = 0
  let rejects = 0
  let batches = 0
  let encodedBytes = 0
  const started = performance.now()
  try {
    const xmlBytes = await produce(file, RUN_ID, (batch) => {
      const header: Header = {
        ...batch,
        tables: batch.tables.map((t) => ({ rows: t.rows, sizes: t.chunks.map((c) => c.length) }))
      }
      const json = Buffer.from(JSON.stringify(header), "utf8")
      const length = Buffer.alloc(4)
      length.writeUInt32LE(json.length, 0)
      writeAll(fd, length)
      writeAll(fd, json)
      for (const t of batch.tables) {
        for (const c of t.chunks) {
          writeAll(fd, c)
          encodedBytes += c.length
        }
      }
      rows += batch.rows
      rejects += batch.rejects.length
      batches++
    })
    return {
      seconds: (performance.now() - started) / 1000,
      xmlBytes,
      rows,
      rejects,
      maxRssKb: process.resourceUsage().maxRSS,
      detail: { batches, encodedBytes }
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** Reads the batches `encodeToFile` wrote, one at a time. */
export class EncodedReader {
  private position = 0

  constructor(private readonly fd: number) {}

  next(): Batch | undefined {
    const length = readExactly(this.fd, 4, this.position)
    if (length === undefined) return undefined
    const headerLength = length.readUInt32LE(0)
    const json = readExactly(this.fd, headerLength, this.position + 4)
    if (json === undefined) throw new Error("encoded batch file is truncated")
    const header = JSON.parse(json.toString("utf8")) as Header
    const total = header.tables.reduce((n, t) => n + t.sizes.reduce((a, b) => a + b, 0), 0)
    const data = total === 0 ? Buffer.alloc(0) : readExactly(this.fd, total, this.position + 4 + headerLength)
    if (data === undefined) throw new Error("encoded batch file is truncated")
    this.position += 4 + headerLength + total
    let at = 0
    const tables = header.tables.map((t) => ({
      rows: t.rows,
      chunks: t.sizes.map((size) => {
        const chunk = data.subarray(at, at + size)
        at += size
        return chunk
      })
    }))
    return { ...header, tables }
  }
}

export interface CopyOnlyOptions {
  readonly encoded: string
  readonly xmlBytes: number
  readonly schema: string
  readonly url: string
  readonly writers: number
  readonly queueSize: number
}

/** Times the COPY of every batch in `encoded` into `schema`'s staging tables. */
export const copyOnly = (options: CopyOnlyOptions) =>
  Effect.gen(function*() {
    const targets = copyTargets(GroupsDocument, options.schema)
    const fd = fs.openSync(options.encoded, "r")
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(fd)))
    const reader = new EncodedReader(fd)
    let batches = 0
    const cpuBefore = serverCpuSeconds()
    const started = performance.now()
    const rows = yield* Stream.repeatEffectOption(
      Effect.suspend(() => {
        const batch = reader.next()
        return batch === undefined ? Effect.fail(Option.none()) : Effect.succeed(batch)
      })
    ).pipe(
      Stream.buffer({ capacity: options.queueSize }),
      Stream.mapEffect((batch) => writeBatch(targets, RUN_ID, batch), {
        concurrency: options.writers,
        unordered: true
      }),
      Stream.runFold(0, (n, written) => {
        batches++
        return n + written
      })
    )
    const seconds = (performance.now() - started) / 1000
    // read while the pool's backends are connected: one that had ended would count all of its life
    const serverCpu = cpuBetween(cpuBefore, serverCpuSeconds())
    const outcome: StageOutcome = {
      seconds,
      xmlBytes: options.xmlBytes,
      rows,
      rejects: 0,
      maxRssKb: process.resourceUsage().maxRSS,
      detail: {
        batches,
        writers: options.writers,
        ...(serverCpu === undefined ? {} : {
          serverCpuSeconds: serverCpu,
          serverCpuMsPerBatch: Number((serverCpu * 1000 / Math.max(batches, 1)).toFixed(2))
        })
      }
    }
    return outcome
  }).pipe(
    Effect.scoped,
    Effect.provide(PgPool.layer({
      url: Redacted.make(options.url),
      maxConnections: options.writers + 1,
      applicationName: "xml2pg-bench"
    }))
  )
