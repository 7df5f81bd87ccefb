/**
 * The pipeline's metrics, as Effect `Metric`s in the global registry: counters for
 * records, rows, rejects, batches, bytes and retries, gauges for queue depth and busy
 * writers, and a histogram of batch write time.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * `xml2pg_records_read_total`: records parsed, loaded or rejected.
 *
 * @since 0.1.0
 */
export const recordsRead = Metric.counter("xml2pg_records_read_total", {
  description: "records parsed (loaded or rejected)",
  incremental: true
})
/**
 * `xml2pg_rows_loaded_total`: rows committed to the staging tables.
 *
 * @since 0.1.0
 */
export const rowsLoaded = Metric.counter("xml2pg_rows_loaded_total", {
  description: "rows committed to staging tables",
  incremental: true
})
/**
 * `xml2pg_records_rejected_total`: records rejected by the format's rules.
 *
 * @since 0.1.0
 */
export const recordsRejected = Metric.counter("xml2pg_records_rejected_total", {
  description: "records rejected",
  incremental: true
})
/**
 * `xml2pg_batches_committed_total`: batches committed.
 *
 * @since 0.1.0
 */
export const batchesCommitted = Metric.counter("xml2pg_batches_committed_total", {
  description: "batches committed",
  incremental: true
})
/**
 * `xml2pg_xml_bytes_total`: XML bytes parsed, after decompression.
 *
 * @since 0.1.0
 */
export const xmlBytes = Metric.counter("xml2pg_xml_bytes_total", {
  description: "XML bytes parsed (after decompression)",
  incremental: true
})
/**
 * `xml2pg_retries_total`: batch transactions retried after a transient database error.
 *
 * @since 0.1.0
 */
export const retries = Metric.counter("xml2pg_retries_total", {
  description: "batch transactions retried after a transient error",
  incremental: true
})
/**
 * `xml2pg_queue_depth`: batches parsed and waiting for a writer.
 *
 * @since 0.1.0
 */
export const queueDepth = Metric.gauge("xml2pg_queue_depth", { description: "batches parsed, waiting for a writer" })
/**
 * `xml2pg_writers_busy`: writers inside a batch transaction.
 *
 * @since 0.1.0
 */
export const writersBusy = Metric.gauge("xml2pg_writers_busy", { description: "writers inside a batch transaction" })
/**
 * `xml2pg_batch_write_seconds`: time to write and commit one batch, retries included.
 *
 * @since 0.1.0
 */
export const batchSeconds = Metric.histogram(
  "xml2pg_batch_write_seconds",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 12 }),
  "time to write and commit one batch"
)

/**
 * Tracks busy writers and the write-time histogram around one batch write.
 *
 * @since 0.1.0
 */
export const instrumentWrite = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Metric.incrementBy(writersBusy, 1).pipe(Effect.zipRight(Effect.sync(() => performance.now()))),
    () => self,
    (start, exit) =>
      Metric.incrementBy(writersBusy, -1).pipe(
        Effect.zipRight(exit._tag === "Success" ? Metric.update(batchSeconds, (performance.now() - start) / 1000) : Effect.void)
      )
  )
