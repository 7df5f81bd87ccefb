/**
 * Groups encoded rows into batches bounded by row count and approximate size. Batches are
 * cut only between top-level records, so a batch covers a contiguous byte range of the
 * input and a group is never split from its events. Cuts depend only on the data and the
 * limits, so the same file with the same limits always gives the same batches.
 */
import { type BinaryKind, binaryKinds, fieldBound, writeField, writeInt4Field, writeInt8Field } from "../db/CopyBinary.js"
import { copyLine } from "../db/CopyText.js"
import { type DocumentShape, recordShapes } from "../shape/Shape.js"
import type { ByteSpan, RecordSink, Reject } from "../xml/RecordParser.js"

/**
 * Where the batcher cuts: at most `rows` rows and about `bytes` bytes of COPY data per
 * batch, cut only between top-level records.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchLimits {
  readonly rows: number
  /** bytes of the encoded COPY data (a reject counts its reason's length) */
  readonly bytes: number
}

/**
 * COPY data for one table, rows in its `TableFormat`, in Buffers of about 64 KiB. Buffers
 * live off the V8 heap, so a batch waiting in the queue costs the garbage collector nothing.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableData {
  readonly chunks: ReadonlyArray<Buffer>
  readonly rows: number
}

/**
 * One writer's unit of work: the COPY data of consecutive top-level records for each table,
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
  /** bytes of COPY data */
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
 * How a table's rows are encoded: binary COPY, a kind per column, when every column is a
 * built-in type; otherwise COPY text, with whether each column's values are `plain`.
 *
 * @since 0.1.0
 * @category models
 */
export type TableFormat =
  | { readonly _tag: "binary"; readonly kinds: ReadonlyArray<BinaryKind> }
  | { readonly _tag: "text"; readonly plain: ReadonlyArray<boolean> }

/**
 * The COPY format of each table of a run, in `recordShapes` order, as the run records it.
 *
 * @since 0.1.0
 * @category models
 */
export type CopyFormats = ReadonlyArray<TableFormat["_tag"]>

/**
 * The format of each of `doc`'s tables, in `recordShapes` order: binary where the shape
 * allows it and `formats` (a run's, when given) does not say text. The producer encodes by
 * it and the writer's COPY statements follow it.
 *
 * @since 0.1.0
 * @category utils
 */
export const tableFormats = (doc: DocumentShape, formats?: CopyFormats): ReadonlyArray<TableFormat> =>
  recordShapes(doc).map((r, i): TableFormat => {
    const kinds = formats?.[i] === "text" ? undefined : binaryKinds(r)
    return kinds === undefined
      ? { _tag: "text", plain: r.columns.map((c) => c.type.plain === true) }
      : { _tag: "binary", kinds }
  })

/** One table's rows of the batch being built, encoded into pieces of memory. */
abstract class TableEncoder {
  private chunks: Array<Buffer> = []
  /** the piece being filled */
  protected current: Buffer
  protected offset = 0
  rows = 0
  /** the piece kept for the next rows is given back (a region given back twice would be handed out twice) */
  private closed = false
  /** characters added but not encoded yet */
  abstract readonly pendingChars: number

  constructor(private readonly source: PieceSource) {
    this.current = source.allocate(PIECE)
  }

  /** rows from here on belong to batch `seq` */
  abstract begin(seq: number): void
  /** Appends one row; returns the bytes this encoded. */
  abstract add(ord: number, values: ReadonlyArray<string | null>): number
  /** Encodes what is pending; returns its bytes. */
  abstract flush(): number

  /** the rows encoded and not handed over yet */
  protected held(): Array<Buffer> {
    return [...this.chunks, this.current.subarray(0, this.offset)]
  }

  /** Starts a new piece if the current one has less than `size` bytes free. */
  protected room(size: number): void {
    if (this.offset + size <= this.current.length) return
    if (this.offset > 0) this.chunks.push(this.current.subarray(0, this.offset))
    else this.source.reclaim(this.current)
    this.current = this.source.allocate(Math.max(PIECE, size))
    this.offset = 0
  }

  /** Hands over the rows, which must all be encoded. */
  take(): TableData {
    if (this.offset > 0) {
      this.chunks.push(this.current.subarray(0, this.offset))
      this.current = this.source.allocate(PIECE)
      this.offset = 0
    }
    const data = { chunks: this.chunks, rows: this.rows }
    this.chunks = []
    this.rows = 0
    return data
  }

  /** Gives back the empty piece kept for the next rows, once: no more rows come. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.source.reclaim(this.current)
  }

  /** Gives back every piece, rows and all: they will not be written. */
  discard(): void {
    for (const piece of this.chunks) this.source.reclaim(piece)
    this.chunks = []
    this.close()
  }
}

/**
 * COPY text. Lines wait as one string until the piece might not hold them (a UTF-16 unit is
 * at most 3 bytes): one Buffer write for many lines, and pieces cut where one write per line
 * would.
 */
class TextTable extends TableEncoder {
  private prefix = ""
  /** lines not encoded yet */
  private pending = ""

  constructor(private readonly runId: number, private readonly plain: ReadonlyArray<boolean>, source: PieceSource) {
    super(source)
  }

  get pendingChars(): number {
    return this.pending.length
  }

  begin(seq: number): void {
    this.prefix = `${this.runId}\t${seq}\t`
  }

  add(ord: number, values: ReadonlyArray<string | null>): number {
    const line = copyLine(this.prefix + ord, values, this.plain)
    let written = 0
    if ((this.pending.length + line.length) * 3 > this.current.length - this.offset) {
      written = this.flush()
      this.room(line.length * 3)
    }
    this.pending += line
    this.rows++
    return written
  }

  flush(): number {
    if (this.pending.length === 0) return 0
    const written = this.current.write(this.pending, this.offset)
    this.offset += written
    this.pending = ""
    return written
  }
}

/** `stagingPrefix` as binary fields, length words included: run_id and batch_seq (int4), ord (int8) */
const PREFIX_BYTES = 8 + 8 + 12

/**
 * Sets the run_id of every binary COPY row in `piece`, rows a BinaryTable encoded (a row never
 * straddles two pieces: see `room`). A row is a 16-bit field count, then each field as a 32-bit
 * length (-1: null) and its bytes; run_id is the first field.
 */
const setRunId = (piece: Uint8Array, runId: number): void => {
  const view = new DataView(piece.buffer, piece.byteOffset, piece.byteLength)
  let at = 0
  while (at < piece.byteLength) {
    const fields = view.getInt16(at)
    at += 2
    view.setInt32(at + 4, runId)
    for (let i = 0; i < fields; i++) at += 4 + Math.max(0, view.getInt32(at))
  }
}

/** Sets the run_id of every row of `batch`, rows of binary tables (see `BatchBuilder.rerun`). */
export const setBatchRunId = (batch: Batch, runId: number): void => {
  for (const t of batch.tables) for (const piece of t.chunks) setRunId(piece, runId)
}

/** Binary COPY rows, written straight into the pieces (the stream's header and trailer are the writer's). */
class BinaryTable extends TableEncoder {
  private seq = 0
  readonly pendingChars = 0

  constructor(private runId: number, private readonly kinds: ReadonlyArray<BinaryKind>, source: PieceSource) {
    super(source)
  }

  /** The rows held and those to come belong to run `runId`. */
  rerun(runId: number): void {
    this.runId = runId
    for (const piece of this.held()) setRunId(piece, runId)
  }

  begin(seq: number): void {
    this.seq = seq
  }

  add(ord: number, values: ReadonlyArray<string | null>): number {
    const kinds = this.kinds
    let size = 2 + PREFIX_BYTES
    for (let i = 0; i < kinds.length; i++) size += fieldBound(kinds[i]!, values[i] ?? null)
    this.room(size)
    const b = this.current
    const start = this.offset
    const fields = 3 + kinds.length
    b[start] = fields >>> 8
    b[start + 1] = fields
    let at = start + 2
    at += writeInt4Field(b, at, this.runId)
    at += writeInt4Field(b, at, this.seq)
    at += writeInt8Field(b, at, ord)
    for (let i = 0; i < kinds.length; i++) at += writeField(b, at, kinds[i]!, values[i] ?? null)
    this.offset = at
    this.rows++
    return at - start
  }

  flush(): number {
    return 0
  }
}

export class BatchBuilder implements RecordSink {
  private readonly tables: Array<TableEncoder>
  private rejects: Array<Reject> = []
  private seq: number
  /** rows plus rejects: rejects count toward the row limit, so they cannot pile up */
  private records = 0
  /** bytes of the encoded rows (the text tables' pending lines are not counted yet) */
  private bytes = 0
  /** where the batch's first record starts */
  private byteStart = 0
  /** the batch's last record, for the batch's end; none until a record of the batch has ended */
  private last: ByteSpan | undefined = undefined
  private firstOrd = 0
  private lastOrd = 0

  /** `formats`: one per table, in `recordShapes` order (see `tableFormats`) */
  constructor(
    formats: ReadonlyArray<TableFormat>,
    runId: number,
    private readonly limits: BatchLimits,
    private readonly emit: (batch: Batch) => void,
    firstSeq = 1,
    private readonly pieces: PieceSource = freshPieces
  ) {
    this.tables = formats.map((f) =>
      f._tag === "binary" ? new BinaryTable(runId, f.kinds, pieces) : new TextTable(runId, f.plain, pieces)
    )
    this.seq = firstSeq
    for (const t of this.tables) t.begin(firstSeq)
  }

  readonly row = (table: number, values: ReadonlyArray<string | null>, ord: number): void => {
    this.bytes += this.tables[table]!.add(ord, values)
    this.records++
    this.seen(ord)
  }

  readonly reject = (reject: Reject): void => {
    this.rejects.push(reject)
    this.records++
    this.bytes += reject.reason.length
    this.seen(reject.ord)
  }

  readonly recordEnd = (span: ByteSpan): void => {
    if (this.last === undefined) this.byteStart = span.byteStart()
    this.last = span
    if (this.records >= this.limits.rows || this.reaches(this.limits.bytes)) this.cut(span)
  }

  /** Whether the exact size reaches `limit`; pending lines are encoded only if they could make it so. */
  private reaches(limit: number): boolean {
    let pending = 0
    for (const t of this.tables) pending += t.pendingChars
    if (this.bytes + pending * 3 < limit) return false
    this.encodePending()
    return this.bytes >= limit
  }

  private encodePending(): void {
    for (const t of this.tables) this.bytes += t.flush()
  }

  /**
   * The rows encoded so far and from now on belong to run `runId`: for rows parsed before the
   * run existed (see ParseWorker.ts). The batches emitted already are the caller's to set
   * (`setRunId`). Binary tables only: a text row's run_id has no fixed width.
   */
  rerun(runId: number): void {
    const binary = this.tables.filter((t): t is BinaryTable => t instanceof BinaryTable)
    if (binary.length < this.tables.length) throw new Error("only binary COPY rows can change their run")
    for (const t of binary) t.rerun(runId)
  }

  /** Gives back the pieces of batches it emitted that will not be written. */
  reclaim(batches: ReadonlyArray<Batch>): void {
    for (const b of batches) for (const t of b.tables) for (const piece of t.chunks) this.pieces.reclaim(piece)
  }

  /** Drops the rows not emitted yet, their pieces given back; the builder takes no more rows. */
  discard(): void {
    for (const t of this.tables) t.discard()
  }

  /** Emits the last, partial batch; the builder takes no more rows. */
  finish(): void {
    if (this.last !== undefined) this.cut(this.last)
    // a worker's next input reuses the regions; pieces are handed out fresh after each cut
    for (const t of this.tables) t.close()
  }

  private seen(ord: number): void {
    if (ord === 0) return
    if (this.firstOrd === 0) this.firstOrd = ord
    this.lastOrd = ord
  }

  private cut(last: ByteSpan): void {
    this.encodePending()
    const tables = this.tables.map((t) => t.take())
    const batch: Batch = {
      seq: this.seq,
      tables,
      rejects: this.rejects,
      rows: tables.reduce((n, t) => n + t.rows, 0),
      bytes: this.bytes,
      byteStart: this.byteStart,
      byteEnd: last.byteEnd(),
      firstOrd: this.firstOrd,
      lastOrd: this.lastOrd
    }
    this.seq++
    for (const t of this.tables) t.begin(this.seq)
    this.rejects = []
    this.records = 0
    this.bytes = 0
    this.last = undefined
    this.firstOrd = 0
    this.lastOrd = 0
    this.emit(batch)
  }
}
