/**
 * The writer pool between the queue and the database.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Stream from "effect/Stream"

/**
 * Writes the stream's items with up to `writers` fibers at once, each item taken as soon as
 * one is free, in no particular order. `Stream.mapEffect(…, { unordered: true })` does the
 * same through an inner stream per item, which cost the main thread ~200 KB of allocation
 * per batch (docs/benchmarks.md, session 19).
 *
 * A failed write fails the whole at once: no more items are taken, and the writes in flight
 * are interrupted. So does a failure of the stream. When the stream ends, the writes in
 * flight finish first.
 *
 * @since 0.1.0
 * @category writer
 */
export const writeEach = <A, E, R, E2, R2>(
  items: Stream.Stream<A, E, R>,
  writers: number,
  write: (item: A) => Effect.Effect<unknown, E2, R2>
): Effect.Effect<void, E | E2, R | R2> =>
  Effect.scoped(Effect.gen(function*() {
    const free = yield* Effect.makeSemaphore(writers)
    // the set keeps its fibers' first failure: `FiberSet.join` fails with it
    const writing = yield* FiberSet.make<unknown, E2>()
    const feed = Stream.runForEach(items, (item) =>
      Effect.zipRight(free.take(1), FiberSet.run(writing, Effect.ensuring(write(item), free.release(1)))))
    yield* Effect.raceFirst(Effect.zipRight(feed, FiberSet.awaitEmpty(writing)), FiberSet.join(writing))
    // a write that failed as the last ones ended, after the race was decided
    if (yield* Deferred.isDone(writing.deferred)) yield* FiberSet.join(writing)
  }))
