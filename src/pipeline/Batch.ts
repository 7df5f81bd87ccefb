/**
 * Groups encoded rows into batches bounded by row count and approximate size. Batches are
 * cut only between top-level records, so a batch covers a contiguous byte range of the
 * input and a group is never split from its events. Cuts depend only on the data and the
 * limits, so the same file with the same limits always gives the same batches.
 */
import { copyLine } from "../db/CopyText.js"
import type { RecordSink, Reject } from "../xml/RecordParser.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface BatchLimits {
  readonly rows: number
  /** approximate: UTF-16 code units of the encoded COPY text */
  readonly bytes: number
}

/**
 * COPY text for one table, in pieces of about 64 KiB.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableData {
  readonly chunks: ReadonlyArray<string>
  readonly rows: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Batch {
  readonly seq: number
  /** one per record shape, in `recordShapes` order */
  readonly tables: ReadonlyArray<TableData>
  readonly rejects: ReadonlyArray<Reject>
  readonly rows: number
  readonly bytes: number
  readonly byteStart: number
  readonly byteEnd: number
  readonly firstOrd: number
  readonly lastOrd: number
}

const PIECE = 64 * 1024

class TableBuffer {
  chunks: Array<string> = []
  current = ""
  rows = 0

  take(): TableData {
    if (this.current.length > 0) this.chunks.push(this.current)
    const data = { chunks: this.chunks, rows: this.rows }
    this.chunks = []
    this.current = ""
    this.rows = 0
    return data
  }
}

export class BatchBuilder implements RecordSink {
  private readonly tables: Array<TableBuffer>
  private rejects: Array<Reject> = []
  private seq: number
  private prefix: string
  private rows = 0
  private bytes = 0
  private byteStart = -1
  private byteEnd = 0
  private firstOrd = 0
  private lastOrd = 0

  constructor(
    tableCount: number,
    private readonly runId: number,
    private readonly limits: BatchLimits,
    private readonly emit: (batch: Batch) => void,
    firstSeq = 1
  ) {
    this.tables = Array.from({ length: tableCount }, () => new TableBuffer())
    this.seq = firstSeq
    this.prefix = `${runId}\t${firstSeq}\t`
  }

  readonly row = (table: number, values: ReadonlyArray<string | null>, ord: number): void => {
    const line = copyLine(this.prefix + ord, values)
    const t = this.tables[table]!
    t.current += line
    if (t.current.length >= PIECE) {
      t.chunks.push(t.current)
      t.current = ""
    }
    t.rows++
    this.rows++
    this.bytes += line.length
    this.seen(ord)
  }

  readonly reject = (reject: Reject): void => {
    this.rejects.push(reject)
    this.seen(reject.ord)
  }

  readonly recordEnd = (byteStart: number, byteEnd: number): void => {
    if (this.byteStart < 0) this.byteStart = byteStart
    this.byteEnd = byteEnd
    if (this.rows >= this.limits.rows || this.bytes >= this.limits.bytes) this.cut()
  }

  /** Emits the last, partial batch. */
  finish(): void {
    if (this.byteStart >= 0) this.cut()
  }

  private seen(ord: number): void {
    if (this.firstOrd === 0) this.firstOrd = ord
    this.lastOrd = ord
  }

  private cut(): void {
    const batch: Batch = {
      seq: this.seq,
      tables: this.tables.map((t) => t.take()),
      rejects: this.rejects,
      rows: this.rows,
      bytes: this.bytes,
      byteStart: this.byteStart,
      byteEnd: this.byteEnd,
      firstOrd: this.firstOrd,
      lastOrd: this.lastOrd
    }
    this.seq++
    this.prefix = `${this.runId}\t${this.seq}\t`
    this.rejects = []
    this.rows = 0
    this.bytes = 0
    this.byteStart = -1
    this.firstOrd = 0
    this.lastOrd = 0
    this.emit(batch)
  }
}
