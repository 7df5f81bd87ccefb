/**
 * The producer on a worker thread. Parsing is the loader's CPU-bound part; on the main
 * thread it holds the event loop, so COPY sockets wait behind it. A plain file the worker
 * reads itself, into one buffer it reuses; gzip and stdin the main thread reads and posts
 * in chunks. The worker posts back the batches, whose COPY pieces lie in regions shared
 * with the main thread and recycled once written (see SharedPieces.ts).
 *
 * Backpressure: at most a few chunks (CHUNKS_IN_FLIGHT posted, READS_IN_FLIGHT read by the
 * worker) are asked of the worker and not yet answered, and the next is asked for only when
 * downstream pulls, so a slow database still holds the reader back.
 *
 * A worker can be started ahead of its input (`startParseWorker`): it boots, loading its
 * code, while the caller does other work, and learns what to parse from its first message.
 * The CLI starts an ingest's worker even before it loads its bundle (`src/bin.ts`), and that
 * worker parses its guess of the first input meanwhile (`ParseAhead.ts`; its first answer
 * says what became of that); the first worker started here is that one, if it is still alive
 * (`dropPrestartedWorker` ends it when parsing stays on the main thread).
 * A load of several inputs keeps one worker (`makeParseWorkers`): an input that ends cleanly
 * hands it on, booted, its code compiled and its shared regions made, to the next one.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { Worker } from "node:worker_threads"
import { ReadError, XmlParseError } from "../Errors.js"
import type { Batch } from "../pipeline/Batch.js"
import type { WireDocument } from "../shape/Shape.js"
import { collectForWorkers } from "./HeapCollection.js"
import type { ProducerOptions } from "./Producer.js"
import { MainRegions, type RegionChanges, regionIds, type WirePiece } from "./SharedPieces.js"
import { countParsed, inputChunks, type OpenedInput } from "./XmlSource.js"

/**
 * What a worker is told first: its shape as plain data (see `toWire` in Shape.ts), the
 * rest of the options, and a plain file to read itself: a descriptor the main thread
 * opened (and closes, even when it terminates the worker) and the byte to start at.
 */
export interface WorkerInit {
  readonly shape: WireDocument
  readonly options: Omit<ProducerOptions, "doc">
  readonly file: { readonly fd: number; readonly start: number; readonly end?: number } | undefined
}

/**
 * `init`: what to parse (the first message, not answered); a chunk of input; `read`: the
 * worker's next chunk of its file; `release`: regions the main thread is done with (not
 * answered); none of them: the end of input.
 */
export interface ToWorker {
  readonly init?: WorkerInit
  readonly chunk?: Uint8Array
  readonly read?: true
  readonly release?: ReadonlyArray<number>
}

/** A batch as the worker posts it: its COPY pieces named by shared region. */
export interface WireBatch extends Omit<Batch, "tables" | "release"> {
  readonly tables: ReadonlyArray<{ readonly rows: number; readonly pieces: ReadonlyArray<WirePiece> }>
}

/** What parsing ahead of the first message did (see ParseAhead.ts): XML bytes parsed, and kept or not. */
export interface Ahead {
  readonly bytes: number
  /** why it was dropped; absent: kept */
  readonly dropped?: string
}

export type FromWorker =
  | {
    readonly _tag: "Batches"
    readonly batches: ReadonlyArray<WireBatch>
    /** the shared regions made and dropped since the last message */
    readonly regions: RegionChanges
    /** XML bytes parsed so far */
    readonly xmlBytes: number
    /** the input has ended: these are its last batches */
    readonly ended: boolean
    /** the range did not end at a record where it should have, and runs on (see Split.ts) */
    readonly overran: boolean
    /** in the first answer of a worker that parsed ahead */
    readonly ahead?: Ahead
  }
  | { readonly _tag: "Failed"; readonly offset: number; readonly reason: string }
  | { readonly _tag: "ReadFailed"; readonly reason: string }

/** chunks posted and not yet answered: enough that the worker never waits on a busy main thread */
const CHUNKS_IN_FLIGHT = 4

/**
 * Reads asked of the worker and not yet answered. A read is 1 MiB (see ParseWorker.ts), about
 * 20 ms of parsing, so two keep the worker busy. Each answer costs the main thread a pass
 * through the stream whatever its size; 256 KiB reads made four times as many (measured,
 * 100 MB ingest, 8 interleaved pairs on a noisy machine: wall 3.38 → 3.26 s median, loader
 * CPU 4.25 → 3.92 s, same peak RSS; reads of 2 MiB gained no more clearly).
 */
const READS_IN_FLIGHT = 2

/**
 * The compiled worker script. Tests run the TypeScript sources, where no `.js` sits beside
 * this file; the worker then runs from `dist/` (`npm test` builds first).
 */
const workerUrl = (): URL => {
  const here = new URL("./ParseWorker.js", import.meta.url)
  return fs.existsSync(here) ? here : new URL(here.href.replace(/\/src\/xml\/ParseWorker\.js$/, "/dist/xml/ParseWorker.js"))
}

/**
 * A posted batch with views of its pieces; its `release` hands the regions back to the
 * worker, once: a region freed twice would be handed out twice.
 */
const revive = (regions: MainRegions, release: (ids: ReadonlyArray<number>) => void) => (batch: WireBatch): Batch => {
  let released = false
  return {
    ...batch,
    tables: batch.tables.map((t) => ({ rows: t.rows, chunks: t.pieces.map((p) => regions.view(p)) })),
    release: () => {
      if (released) return
      released = true
      release(batch.tables.flatMap((t) => regionIds(t.pieces)))
    }
  }
}

/** The worker's end, seen on the main thread: it failed or exited before the input's end. */
interface Crashed {
  readonly _tag: "Crashed"
  readonly reason: string
}

/** Messages from the worker, taken one at a time; a crash of the worker is the last. */
class Inbox {
  private readonly messages: Array<FromWorker | Crashed> = []
  private waiting: ((message: FromWorker | Crashed) => void) | undefined = undefined

  constructor(worker: Worker) {
    const deliver = (message: FromWorker | Crashed) => {
      const waiting = this.waiting
      this.waiting = undefined
      if (waiting === undefined) this.messages.push(message)
      else waiting(message)
    }
    worker.on("message", deliver)
    worker.on("error", (e) => deliver({ _tag: "Crashed", reason: `parse worker failed: ${e.message}` }))
    worker.on("exit", (code) => deliver({ _tag: "Crashed", reason: `parse worker exited with code ${code}` }))
  }

  readonly take: Effect.Effect<FromWorker | Crashed> = Effect.async<FromWorker | Crashed>((resume) => {
    const next = this.messages.shift()
    if (next !== undefined) return resume(Effect.succeed(next))
    this.waiting = (message) => resume(Effect.succeed(message))
    return Effect.sync(() => {
      this.waiting = undefined
    })
  })
}

/**
 * A parse worker thread, its inbox, listened to from its start so no crash goes unseen, and
 * the shared regions it has made, which outlive an input.
 *
 * @since 0.1.0
 * @category producer
 */
export interface ParseWorker {
  readonly worker: Worker
  readonly inbox: Inbox
  readonly regions: MainRegions
  /** from `makeParseWorkers`: kept for another input after a clean end */
  readonly reusable: boolean
  /**
   * Its last input ended cleanly (every chunk answered, nothing failed): it reads no more and
   * may parse another. Set by `workerBatches` only; set elsewhere, a worker could be kept
   * reading a file that is closed.
   */
  finished: boolean
}

/** Where `src/bin.ts` leaves the worker it started for an ingest before the CLI loaded. */
const PRESTARTED = Symbol.for("xml2pg.prestartedParseWorker")

/** A worker thread that has exited reads -1 as its id. */
const alive = (worker: Worker | undefined): worker is Worker => worker !== undefined && worker.threadId !== -1

/** The worker the CLI started ahead (taken once), unless it has exited. */
const takePrestarted = (): Worker | undefined => {
  const global = globalThis as { [PRESTARTED]?: Worker }
  const worker = global[PRESTARTED]
  delete global[PRESTARTED]
  return alive(worker) ? worker : undefined
}

/**
 * Terminates the worker the CLI started ahead, if any, for a load that parses on the main
 * thread: its isolate would otherwise sit in memory until the process ends.
 *
 * @since 0.1.0
 * @category producer
 */
export const dropPrestartedWorker: Effect.Effect<void> = Effect.suspend(() => {
  const worker = takePrestarted()
  return worker === undefined ? Effect.void : Effect.zipRight(
    Effect.logDebug("parse worker: the one started with the CLI is not needed"),
    Effect.promise(() => worker.terminate())
  )
})

const spawn = (reusable: boolean): Effect.Effect<ParseWorker> =>
  Effect.suspend(() => {
    const prestarted = takePrestarted()
    const worker = prestarted ?? new Worker(workerUrl())
    // the CLI's was unref'd until taken
    worker.ref()
    const w: ParseWorker = { worker, inbox: new Inbox(worker), regions: new MainRegions(), reusable, finished: false }
    return prestarted === undefined
      ? Effect.succeed(w)
      : Effect.as(Effect.logDebug("parse worker: the one started with the CLI"), w)
  })

const terminate = (w: ParseWorker) => Effect.promise(() => w.worker.terminate())

/**
 * Starts a parse worker for one input, to be given to `workerBatches`, which terminates it
 * when its stream ends; else it is terminated when the scope closes. Started early, it boots
 * while the caller does other work.
 *
 * @since 0.1.0
 * @category producer
 */
export const startParseWorker: Effect.Effect<ParseWorker, never, Scope.Scope> = Effect.acquireRelease(
  spawn(false),
  terminate
)

/**
 * Parse workers for the inputs of one load, taken one at a time.
 *
 * @since 0.1.0
 * @category producer
 */
export interface ParseWorkers {
  /**
   * A worker for one input, to be given to `workerBatches`: the one the last input finished
   * with, else a new one. When the scope closes it is kept for the next input if its input
   * ended cleanly and the scope closes with a success; otherwise it is terminated (by
   * `workerBatches` already, before its file closes, if its input did not end cleanly).
   */
  readonly take: Effect.Effect<ParseWorker, never, Scope.Scope>
}

/**
 * One parse worker shared by the inputs of a load, in turn: each input after the first skips
 * the worker's boot and its cold start (measured: one `ingest` of 20 files of 5 MB took
 * 6.0–6.2 s with a worker per file, 3.3–3.4 s with this). The scope's end terminates it. An
 * idle worker does not keep the process alive.
 *
 * @since 0.1.0
 * @category producer
 */
export const makeParseWorkers: Effect.Effect<ParseWorkers, never, Scope.Scope> = Effect.gen(function*() {
  let idle: ParseWorker | undefined = undefined
  let closed = false
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      const last = idle
      idle = undefined
      return last === undefined ? Effect.void : terminate(last)
    })
  )
  const take = Effect.acquireRelease(
    Effect.suspend(() => {
      // an idle thread that has exited is replaced
      const kept = alive(idle?.worker) ? idle : undefined
      idle = undefined
      if (kept === undefined) return spawn(true)
      kept.finished = false
      kept.worker.ref()
      return Effect.succeed(kept)
    }),
    (w, exit) =>
      Effect.suspend(() => {
        // a load that failed after the parse (a writer, say) may leave regions unreleased
        if (!w.finished || Exit.isFailure(exit) || closed || idle !== undefined) return terminate(w)
        w.worker.unref()
        idle = w
        return Effect.void
      })
  )
  return { take }
})

/**
 * The batches of one input, parsed on a worker thread and pulled on demand. `shape` is
 * `options.doc` as plain data (`toWire`); `started`: a worker from `startParseWorker` or
 * `makeParseWorkers`, else one is started here. A range of a plain file (`input.file.end`)
 * that does not end at a record runs `overran` before the batches past its end go on.
 *
 * @since 0.1.0
 * @category producer
 */
export const workerBatches = <E = never, R = never>(
  input: OpenedInput,
  shape: WireDocument,
  options: ProducerOptions,
  started?: ParseWorker,
  overran: Effect.Effect<void, E, R> = Effect.void as Effect.Effect<void, E, R>
): Stream.Stream<Batch, ReadError | XmlParseError | E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const { doc: _doc, ...rest } = options
    const file = input.file === undefined ? undefined : yield* Effect.acquireRelease(
      Effect.try({
        try: () => ({ ...input.file!, fd: fs.openSync(input.file!.path, "r") }),
        catch: (cause) => new ReadError({ file: options.file, cause })
      }),
      ({ fd }) => Effect.sync(() => fs.closeSync(fd))
    )
    // V8's heap flags (the CLI's) apply to the worker's heap too
    const handle = started ?? (yield* startParseWorker)
    const { inbox, regions, worker } = handle
    // Stopped before the file closes, as a descriptor number it still reads may be reused (a
    // socket); but a reusable worker whose input ended cleanly reads no more, and is kept.
    yield* Effect.addFinalizer(() => handle.reusable && handle.finished ? Effect.void : terminate(handle))
    worker.postMessage({ init: { shape, options: rest, file } } satisfies ToWorker)
    const progress = input.progress
    const toBatch = revive(regions, (ids) => worker.postMessage({ release: ids } satisfies ToWorker))
    /** chunks asked of the worker and not answered yet */
    let inFlight = 0
    /** the worker has parsed the end of the input */
    let ended = false
    /** the range's end was found not to be a record's */
    let ranOn = false
    const answer = (message: FromWorker | Crashed) =>
      Effect.suspend((): Effect.Effect<Array<Batch>, ReadError | XmlParseError | E, R> => {
        if (message._tag === "Failed" || message._tag === "Crashed") {
          // a crash is reported where the worker had got to
          const offset = message._tag === "Failed" ? message.offset : progress.xmlBytes
          return Effect.fail(new XmlParseError({ file: options.file, offset, reason: message.reason }))
        }
        if (message._tag === "ReadFailed") return Effect.fail(new ReadError({ file: options.file, cause: message.reason }))
        inFlight--
        ended ||= message.ended
        regions.apply(message.regions)
        const batches = message.batches.map(toBatch)
        collectForWorkers(countParsed(progress, message.xmlBytes, batches))
        const told = message.ahead === undefined ? Effect.void : Effect.logDebug(
          `parse worker: ${message.ahead.bytes} bytes parsed ahead of the run, ` +
            (message.ahead.dropped === undefined ? "kept" : `dropped: ${message.ahead.dropped}`)
        )
        if (!message.overran || ranOn) return Effect.as(told, batches)
        ranOn = true
        return Effect.as(Effect.zipRight(told, overran), batches)
      })

    /** Answers until fewer than `limit` chunks are with the worker; their batches in order. */
    const collect = (limit: number) =>
      Effect.gen(function*() {
        const out: Array<Batch> = []
        while (inFlight >= limit) out.push(...(yield* Effect.flatMap(inbox.take, answer)))
        return out
      })

    const post = (message: ToWorker, transfer: Array<ArrayBuffer> = []) =>
      Effect.sync(() => {
        worker.postMessage(message, transfer)
        inFlight++
      })

    const send = (chunk: Uint8Array) => {
      // a chunk that owns its memory moves to the worker; one that shares it (a pooled read) is copied
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk : new Uint8Array(chunk)
      return Effect.zipRight(post({ chunk: own }, [own.buffer as ArrayBuffer]), collect(CHUNKS_IN_FLIGHT))
    }

    /** Every chunk is answered and the last said the input ended. */
    const finish = Effect.sync(() => {
      handle.finished = ended && inFlight === 0
    })

    if (file !== undefined) {
      // the worker reads: ask for a chunk per pull, then collect what is still asked for
      const next = Effect.suspend((): Effect.Effect<Array<Batch>, Option.Option<ReadError | XmlParseError | E>, R> =>
        ended
          ? inFlight === 0 ? Effect.zipRight(finish, Effect.fail(Option.none())) : Effect.mapError(collect(1), Option.some)
          : Effect.mapError(Effect.zipRight(post({ read: true }), collect(READS_IN_FLIGHT)), Option.some)
      )
      const nonEmpty: Effect.Effect<Chunk.Chunk<Batch>, Option.Option<ReadError | XmlParseError | E>, R> = Effect.flatMap(
        next,
        (batches) => batches.length === 0 ? nonEmpty : Effect.succeed(Chunk.unsafeFromArray(batches))
      )
      return Stream.repeatEffectChunkOption(nonEmpty)
    }
    return inputChunks(input, options.file).pipe(
      Stream.mapConcatEffect(send),
      Stream.concat(Stream.fromIterableEffect(Effect.zipRight(post({}), Effect.zipLeft(collect(1), finish))))
    )
  }))
