/**
 * Progress of a running ingest, as snapshots a reporter reads when it wants: periodic log
 * lines by default; the CLI may draw a live line on a terminal instead.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * Where a running load stands: bytes read (and the input size when known), records,
 * rejects, rows loaded, batches, retries, queue depth, busy writers and elapsed time.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressSnapshot {
  readonly file: string
  readonly runId: number
  /** bytes read from the source: compressed bytes for gzip */
  readonly sourceBytes: number
  readonly sourceSize: number | undefined
  readonly xmlBytes: number
  readonly records: number
  readonly rejected: number
  readonly rowsLoaded: number
  readonly batches: number
  readonly retries: number
  /** batches parsed and waiting for a writer */
  readonly queued: number
  readonly queueSize: number
  readonly writersBusy: number
  readonly writers: number
  readonly elapsedSeconds: number
}

/**
 * Runs for the life of the ingest scope, reading snapshots as it likes.
 *
 * @since 0.1.0
 * @category models
 */
export type ProgressReporter = (snapshot: () => ProgressSnapshot) => Effect.Effect<void, never, Scope.Scope>

const mb = (bytes: number) => (bytes / 1e6).toFixed(1)

/**
 * A log line every `everyMillis`: bytes read and percent, MB/s since the last line,
 * records, loaded rows, rejects, batches, retries, queue and writers.
 *
 * @since 0.1.0
 * @category reporters
 */
export const logProgress = (everyMillis: number): ProgressReporter => (snapshot) => {
  let lastBytes = 0
  let lastAt = 0
  const line = Effect.suspend(() => {
    const s = snapshot()
    const rate = (s.xmlBytes - lastBytes) / Math.max(s.elapsedSeconds - lastAt, 1e-3)
    lastBytes = s.xmlBytes
    lastAt = s.elapsedSeconds
    const pct = s.sourceSize ? ` (${((100 * s.sourceBytes) / s.sourceSize).toFixed(1)}%)` : ""
    return Effect.logInfo(
      `progress: read ${mb(s.sourceBytes)} MB${pct}, ${mb(rate)} MB/s, records ${s.records}, loaded ${s.rowsLoaded}, ` +
        `rejected ${s.rejected}, batches ${s.batches}, retries ${s.retries}, queue ${s.queued}/${s.queueSize}, ` +
        `writers busy ${s.writersBusy}/${s.writers}, ${s.elapsedSeconds.toFixed(0)} s`
    )
  })
  return line.pipe(
    Effect.delay(everyMillis),
    Effect.forever,
    Effect.forkScoped,
    Effect.asVoid
  )
}
