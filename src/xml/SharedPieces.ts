/**
 * The COPY pieces of the parse worker's batches live in SharedArrayBuffers that the worker
 * and the main thread share, and are recycled: the worker encodes into a free region, the
 * main thread writes a view of it to the socket, and hands the region back once the batch
 * is written. Moving fresh ArrayBuffers instead cost both threads an allocation per piece,
 * and every transferred buffer counts as new external memory on the receiving heap, which
 * drives its garbage collector to full collections.
 *
 * A region is sent to the main thread once, when it is made; after that a piece names its
 * region by number. A piece larger than a region (a very long line) is rare: it gets a
 * buffer of its own, copied into the message, so no large region lingers in a pool; once
 * posted, the worker keeps one of up to `SPARE_MAX` bytes for the next.
 *
 * It is not transferred: the first ArrayBuffer a worker detached (a transfer does) voided
 * V8's "no buffer was ever detached" assumption in that isolate, which deoptimized the ~20
 * functions of the parse and encode loops at once and left their recompiled code checking
 * every buffer access (docs/benchmarks.md, session 18). Nor is it shared: V8 does not count
 * a SharedArrayBuffer's memory toward collecting, and a producer that made ~360 of them per
 * GB peaked 45 MB higher.
 */
import { PIECE, type PieceSource } from "../pipeline/Batch.js"

/**
 * A piece of COPY data on the wire: the first `length` bytes of shared region `region`, or
 * `own`, a buffer of its own, copied.
 */
export type WirePiece =
  | { readonly region: number; readonly length: number }
  | { readonly own: Uint8Array }

/** A region made since the last message, for the main thread to keep. */
export interface NewRegion {
  readonly id: number
  readonly buffer: SharedArrayBuffer
}

/** The largest buffer of its own the worker keeps for the next long line. */
const SPARE_MAX = 2 ** 20

/** The worker's side: hands out free regions and names the pieces it posts. */
export class WorkerRegions implements PieceSource {
  private readonly free: Array<Buffer> = []
  private readonly ids = new Map<ArrayBufferLike, number>()
  private readonly byId: Array<Buffer> = []
  private made: Array<NewRegion> = []
  /** a buffer of its own that was posted, free again */
  private spare: Buffer | undefined = undefined

  /** A free region, or for more than `PIECE` bytes a buffer of its own. */
  readonly allocate = (size: number): Buffer => {
    if (size > PIECE) {
      const spare = this.spare
      if (spare === undefined || spare.length < size) return Buffer.allocUnsafeSlow(size)
      this.spare = undefined
      return spare
    }
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    const buffer = new SharedArrayBuffer(PIECE)
    const region = Buffer.from(buffer)
    const id = this.byId.length
    this.ids.set(buffer, id)
    this.byId.push(region)
    this.made.push({ id, buffer })
    return region
  }

  readonly reclaim = (buffer: Buffer): void => {
    const id = this.ids.get(buffer.buffer)
    if (id !== undefined) this.free.push(this.byId[id]!)
  }

  /** The wire form of a piece, a prefix of a region or of a buffer of its own. */
  piece(chunk: Buffer): WirePiece {
    const region = this.ids.get(chunk.buffer)
    return region === undefined ? { own: chunk } : { region, length: chunk.byteLength }
  }

  /**
   * `pieces` were posted. The message holds copies of the buffers of their own, so those are
   * free again: the largest of at most `SPARE_MAX` bytes is kept.
   */
  posted(pieces: ReadonlyArray<WirePiece>): void {
    for (const piece of pieces) {
      if (!("own" in piece)) continue
      const whole = Buffer.from(piece.own.buffer, 0, piece.own.buffer.byteLength)
      if (whole.length <= SPARE_MAX && whole.length > (this.spare?.length ?? 0)) this.spare = whole
    }
  }

  /** The regions made since the last call. */
  takeNew(): Array<NewRegion> {
    const made = this.made
    this.made = []
    return made
  }

  /** Regions the main thread is done with. */
  release(ids: ReadonlyArray<number>): void {
    for (const id of ids) this.free.push(this.byId[id]!)
  }
}

/** The main thread's side: the regions by number, and views of the pieces. */
export class MainRegions {
  private readonly regions: Array<SharedArrayBuffer> = []

  add(made: ReadonlyArray<NewRegion>): void {
    for (const r of made) this.regions[r.id] = r.buffer
  }

  view(piece: WirePiece): Buffer {
    return "own" in piece
      ? Buffer.from(piece.own.buffer, piece.own.byteOffset, piece.own.byteLength)
      : Buffer.from(this.regions[piece.region]!, 0, piece.length)
  }
}

/** The shared regions among `pieces`, to release once their batch is written. */
export const regionIds = (pieces: ReadonlyArray<WirePiece>): Array<number> => {
  const ids: Array<number> = []
  for (const p of pieces) if (!("own" in p)) ids.push(p.region)
  return ids
}
