/**
 * Groups encoded rows into batches bounded by row count and approximate size. Batches are
 * cut only between top-level records, so a batch covers a contiguous byte range of the
 * input and a group is never split from its events. Cuts depend only on the data and the
 * limits, so the same file with the same limits always gives the same batches.
 */
import { copyLine } from "../db/CopyText.js"
import type { RecordSink, Reject } from "../xml/RecordParser.js"

/**
 * Where the batcher cuts: at most `rows` rows and about `bytes` bytes of COPY text per
 * batch, cut only between top-level records.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchLimits {
  readonly rows: number
  /** UTF-8 bytes of the encoded COPY text (a reject counts its reason's length) */
  readonly bytes: number
}

/**
 * COPY text for one table, UTF-8 encoded, in Buffers of about 64 KiB. Buffers live off the
 * V8 heap, so a batch waiting in the queue costs the garbage collector nothing.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableData {
  readonly chunks: ReadonlyArray<Buffer>
  readonly rows: number
}

/**
 * One writer's unit of work: the COPY text of consecutive top-level records for each table,
 * their rejects, and their place in the input (byte range, record numbers). It commits in
 * one transaction together with its ledger row.
 *
 * @since 0.1.0
 * @category models
 */
export interface Batch {
  readonly seq: number
  /** one per record shape, in `recordShapes` order */
  readonly tables: ReadonlyArray<TableData>
  readonly rejects: ReadonlyArray<Reject>
  /** rows to load, over all tables */
  readonly rows: number
  /** UTF-8 bytes of COPY text */
  readonly bytes: number
  readonly byteStart: number
  readonly byteEnd: number
  readonly firstOrd: number
  readonly lastOrd: number
  /**
   * Hands the COPY pieces' memory back to the producer that lent it (the parse worker's
   * shared regions); the pieces must not be read after. Absent when the batch owns them.
   */
  readonly release?: () => void
}

/** The size of a COPY piece. */
export const PIECE = 64 * 1024

/**
 * Where a table's COPY pieces come from: fresh Buffers, or the parse worker's shared
 * regions (see SharedPieces.ts).
 *
 * @since 0.1.0
 * @category models
 */
export interface PieceSource {
  /** a buffer of at least `size` bytes (`PIECE` for a standard piece) */
  readonly allocate: (size: number) => Buffer
  /** takes back a buffer from `allocate` that holds nothing */
  readonly reclaim: (buffer: Buffer) => void
}

const freshPieces: PieceSource = { allocate: Buffer.allocUnsafeSlow, reclaim: () => {} }

/**
 * Lines wait as one string until the piece might not hold them (a UTF-16 unit is at most
 * 3 bytes): one Buffer write for many lines, and pieces cut where one write per line would.
 */
class TableBuffer {
  private chunks: Array<Buffer> = []
  private current: Buffer
  private offset = 0
  /** lines not encoded yet */
  pending = ""
  rows = 0

  constructor(private readonly pieces: PieceSource) {
    this.current = pieces.allocate(PIECE)
  }

  /** Appends one line; returns the UTF-8 length of the pending lines this encoded. */
  add(line: string): number {
    let written = 0
    if ((this.pending.length + line.length) * 3 > this.current.length - this.offset) {
      written = this.flush()
      if (this.offset + line.length * 3 > this.current.length) {
        if (this.offset > 0) this.chunks.push(this.current.subarray(0, this.offset))
        else this.pieces.reclaim(this.current)
        this.current = this.pieces.allocate(Math.max(PIECE, line.length * 3))
        this.offset = 0
      }
    }
    this.pending += line
    this.rows++
    return written
  }

  /** Encodes the pending lines; returns their UTF-8 length. */
  flush(): number {
    if (this.pending.length === 0) return 0
    const written = this.current.write(this.pending, this.offset)
    this.offset += written
    this.pending = ""
    return written
  }

  /** Hands over the lines, which must all be encoded. */
  take(): TableData {
    if (this.offset > 0) {
      this.chunks.push(this.current.subarray(0, this.offset))
      this.current = this.pieces.allocate(PIECE)
      this.offset = 0
    }
    const data = { chunks: this.chunks, rows: this.rows }
    this.chunks = []
    this.rows = 0
    return data
  }
}

export class BatchBuilder implements RecordSink {
  private readonly tables: Array<TableBuffer>
  private rejects: Array<Reject> = []
  private seq: number
  private prefix: string
  /** rows plus rejects: rejects count toward the row limit, so they cannot pile up */
  private records = 0
  /** UTF-8 bytes of the encoded lines (the tables' pending lines are not counted yet) */
  private bytes = 0
  private byteStart = -1
  private byteEnd = 0
  private firstOrd = 0
  private lastOrd = 0

  /** `plain`: per table, per column, whether its values cannot hold a character to escape */
  constructor(
    private readonly plain: ReadonlyArray<ReadonlyArray<boolean>>,
    private readonly runId: number,
    private readonly limits: BatchLimits,
    private readonly emit: (batch: Batch) => void,
    firstSeq = 1,
    pieces: PieceSource = freshPieces
  ) {
    this.tables = plain.map(() => new TableBuffer(pieces))
    this.seq = firstSeq
    this.prefix = `${runId}\t${firstSeq}\t`
  }

  readonly row = (table: number, values: ReadonlyArray<string | null>, ord: number): void => {
    this.bytes += this.tables[table]!.add(copyLine(this.prefix + ord, values, this.plain[table]))
    this.records++
    this.seen(ord)
  }

  readonly reject = (reject: Reject): void => {
    this.rejects.push(reject)
    this.records++
    this.bytes += reject.reason.length
    this.seen(reject.ord)
  }

  readonly recordEnd = (byteStart: number, byteEnd: number): void => {
    if (this.byteStart < 0) this.byteStart = byteStart
    this.byteEnd = byteEnd
    if (this.records >= this.limits.rows || this.reaches(this.limits.bytes)) this.cut()
  }

  /** Whether the exact size reaches `limit`; pending lines are encoded only if they could make it so. */
  private reaches(limit: number): boolean {
    let pending = 0
    for (const t of this.tables) pending += t.pending.length
    if (this.bytes + pending * 3 < limit) return false
    this.encodePending()
    return this.bytes >= limit
  }

  private encodePending(): void {
    for (const t of this.tables) this.bytes += t.flush()
  }

  /** Emits the last, partial batch. */
  finish(): void {
    if (this.byteStart >= 0) this.cut()
  }

  private seen(ord: number): void {
    if (ord === 0) return
    if (this.firstOrd === 0) this.firstOrd = ord
    this.lastOrd = ord
  }

  private cut(): void {
    this.encodePending()
    const tables = this.tables.map((t) => t.take())
    const batch: Batch = {
      seq: this.seq,
      tables,
      rejects: this.rejects,
      rows: tables.reduce((n, t) => n + t.rows, 0),
      bytes: this.bytes,
      byteStart: this.byteStart,
      byteEnd: this.byteEnd,
      firstOrd: this.firstOrd,
      lastOrd: this.lastOrd
    }
    this.seq++
    this.prefix = `${this.runId}\t${this.seq}\t`
    this.rejects = []
    this.records = 0
    this.bytes = 0
    this.byteStart = -1
    this.firstOrd = 0
    this.lastOrd = 0
    this.emit(batch)
  }
}
