/**
 * Full collections of a thread's heap, one per 64 MiB of XML it handled, where `gc` is exposed
 * (`--expose-gc` on the CLI's shebang; a library user's app collects only if it exposes `gc`
 * itself). Each isolate, the parse worker's and the main thread's, counts its own.
 *
 * Left to V8, an old generation climbs in a saw-tooth far past its live set (the worker's from
 * ~5 MB to ~18 MB, compacting every 300–400 MB of XML), so a long load peaked higher than a
 * short one. A cap (`--max-old-space-size=128`) bounded that too, but made V8 collect more
 * often all along: the producer ran ~5 % slower under it. A full collection of either live set
 * takes 5–12 ms, 16 per GB (docs/benchmarks.md, sessions 14 and 15).
 */

/** XML bytes between full collections */
const EVERY = 64 * 2 ** 20

const gc = (globalThis as { gc?: () => void }).gc

/** XML bytes since this thread's last full collection, over every input it handled */
let since = 0

/** Counts `bytes` more XML handled; collects this thread's heap each time they add up to 64 MiB. */
export const collectEvery = (bytes: number): void => {
  since += bytes
  if (gc === undefined || since < EVERY) return
  gc()
  since = 0
}
