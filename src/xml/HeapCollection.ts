/**
 * Full collections of a thread's heap, where `gc` is exposed (`--expose-gc` on the CLI's
 * shebang): one per 64 MiB of XML the thread parsed (`collectEvery`), one per 256 MiB its
 * parse workers parsed (`collectForWorkers`, on the main thread). The parse worker collects its
 * own heap, which holds only the parse; the main thread collects only where the program opted
 * in (`MAIN_THREAD_COLLECTS`, set by the CLI): a library user's app with `gc` exposed and a
 * large heap of its own does not get full collections it did not ask for.
 *
 * Why the main thread collects more rarely for its workers: there each full collection threw
 * away optimized code (V8 drops code whose embedded objects died, and the Effect run loop's
 * code embeds many short-lived ones). At one per 64 MiB: ~310 more compiles per GB, and a third
 * of the thread's time in baseline code (docs/benchmarks.md, session 19). With none, its old
 * generation grew by ~35 MB per GB before V8 collected.
 *
 * Left to V8, an old generation climbs in a saw-tooth far past its live set (the worker's from
 * ~5 MB to ~18 MB, compacting every 300–400 MB of XML), so a long load peaked higher than a
 * short one. A cap (`--max-old-space-size=128`) bounded that too, but made V8 collect more
 * often all along: the producer ran ~5 % slower under it. A full collection of either live set
 * takes 5–12 ms, 16 per GB (docs/benchmarks.md, sessions 14 and 15).
 */
import { isMainThread } from "node:worker_threads"

/** XML bytes parsed by this thread between full collections */
const EVERY = 64 * 2 ** 20
/** XML bytes parsed by the main thread's workers between its full collections */
const WORKERS_EVERY = 256 * 2 ** 20

/** Set to true on `globalThis` by a program whose main thread is to collect too (`src/bin.ts`). */
export const MAIN_THREAD_COLLECTS = Symbol.for("xml2pg.mainThreadCollects")

const gc = (globalThis as { gc?: () => void }).gc

const collects = (): boolean =>
  gc !== undefined && (!isMainThread || (globalThis as Record<symbol, unknown>)[MAIN_THREAD_COLLECTS] === true)

/**
 * A counter of XML bytes that collects this thread's heap each time they add up to `every`;
 * each counter keeps its own count, over every input.
 */
const collector = (every: number) => {
  let since = 0
  return (bytes: number): void => {
    since += bytes
    if (since < every || !collects()) return
    gc!()
    since = 0
  }
}

/** Counts `bytes` more XML parsed by this thread; collects its heap each time they add up to 64 MiB. */
export const collectEvery = collector(EVERY)

/** Counts `bytes` more XML parsed by this thread's parse workers; collects its heap each time they add up to 256 MiB. */
export const collectForWorkers = collector(WORKERS_EVERY)
