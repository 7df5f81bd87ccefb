/**
 * The COPY pieces of the parse worker's batches live in SharedArrayBuffers that the worker
 * and the main thread share, and are recycled: the worker encodes into a free region, the
 * main thread writes a view of it to the socket, and hands the region back once the batch
 * is written. Moving fresh ArrayBuffers instead cost both threads an allocation per piece,
 * and every transferred buffer counts as new external memory on the receiving heap, which
 * drives its garbage collector to full collections.
 *
 * A region is sent to the main thread once, when it is made; after that a piece names its
 * region by number. A piece larger than a standard region (a very long line) gets a large
 * region, a power of two in size, recycled as the others are; one of more than `LARGE_KEPT`
 * bytes is dropped once released, and the main thread told to forget it.
 *
 * Why not a buffer of its own for such a piece: transferred, the first ArrayBuffer a worker
 * detached voided V8's "no buffer was ever detached" assumption in that isolate and
 * deoptimized the parse and encode loops (docs/benchmarks.md, session 18); copied into the
 * message, each left ~260 KB of garbage on the main thread's heap, ~35 MB per GB, that only a
 * full collection there freed, and each such collection threw away the main thread's
 * optimized code (session 19). A fresh SharedArrayBuffer per piece is no better: V8 does not
 * count its memory toward collecting.
 */
import { PIECE, type PieceSource } from "../pipeline/Batch.js"

/** A piece of COPY data on the wire: the first `length` bytes of shared region `region`. */
export interface WirePiece {
  readonly region: number
  readonly length: number
}

/** A region made since the last message, for the main thread to keep. */
export interface NewRegion {
  readonly id: number
  readonly buffer: SharedArrayBuffer
}

/** What the worker's regions became since its last message: regions made, and regions dropped. */
export interface RegionChanges {
  readonly made: ReadonlyArray<NewRegion>
  readonly dropped: ReadonlyArray<number>
}

/** The largest large region kept for reuse once released. */
const LARGE_KEPT = 2 ** 20

/** The worker's side: hands out free regions and names the pieces it posts. */
export class WorkerRegions implements PieceSource {
  private readonly free: Array<Buffer> = []
  /** free large regions, of mixed sizes */
  private readonly freeLarge: Array<Buffer> = []
  private readonly ids = new Map<ArrayBufferLike, number>()
  private readonly byId: Array<Buffer | undefined> = []
  private made: Array<NewRegion> = []
  private dropped: Array<number> = []

  /** A free region of `PIECE` bytes, or for more a large region: the smallest free one that fits, else a new one. */
  readonly allocate = (size: number): Buffer => {
    if (size <= PIECE) return this.free.pop() ?? this.make(PIECE)
    let best: number | undefined = undefined
    for (let i = 0; i < this.freeLarge.length; i++) {
      const length = this.freeLarge[i]!.length
      if (length >= size && (best === undefined || length < this.freeLarge[best]!.length)) best = i
    }
    return best === undefined ? this.make(2 ** Math.ceil(Math.log2(size))) : this.freeLarge.splice(best, 1)[0]!
  }

  private make(size: number): Buffer {
    const buffer = new SharedArrayBuffer(size)
    const region = Buffer.from(buffer)
    const id = this.byId.length
    this.ids.set(buffer, id)
    this.byId.push(region)
    this.made.push({ id, buffer })
    return region
  }

  /** Region `id` is free again; a large one past `LARGE_KEPT` is dropped. */
  private back(id: number): void {
    const region = this.byId[id]!
    if (region.length === PIECE) this.free.push(region)
    else if (region.length <= LARGE_KEPT) this.freeLarge.push(region)
    else {
      this.ids.delete(region.buffer)
      this.byId[id] = undefined
      this.dropped.push(id)
    }
  }

  readonly reclaim = (buffer: Buffer): void => {
    const id = this.ids.get(buffer.buffer)
    if (id !== undefined) this.back(id)
  }

  /** The wire form of a piece, a prefix of one of these regions. */
  piece(chunk: Buffer): WirePiece {
    const region = this.ids.get(chunk.buffer)
    if (region === undefined) throw new Error("a COPY piece outside the shared regions")
    return { region, length: chunk.byteLength }
  }

  /** The regions made and dropped since the last call. */
  takeChanges(): RegionChanges {
    const changes = { made: this.made, dropped: this.dropped }
    this.made = []
    this.dropped = []
    return changes
  }

  /** Regions the main thread is done with. */
  release(ids: ReadonlyArray<number>): void {
    for (const id of ids) this.back(id)
  }
}

/** The main thread's side: the regions by number, and views of the pieces. */
export class MainRegions {
  private readonly regions: Array<SharedArrayBuffer | undefined> = []

  /** Keeps the regions made and forgets those dropped, in that order: a region may be both. */
  apply(changes: RegionChanges): void {
    for (const r of changes.made) this.regions[r.id] = r.buffer
    for (const id of changes.dropped) this.regions[id] = undefined
  }

  view(piece: WirePiece): Buffer {
    return Buffer.from(this.regions[piece.region]!, 0, piece.length)
  }
}

/** The shared regions among `pieces`, to release once their batch is written. */
export const regionIds = (pieces: ReadonlyArray<WirePiece>): Array<number> => pieces.map((p) => p.region)
