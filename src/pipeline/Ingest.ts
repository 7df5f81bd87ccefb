/**
 * One input end to end: producer → bounded queue → N COPY writers, with the run recorded
 * in the ledger. Effect works per batch here; per-record work stays in the producer.
 *
 * @since 0.1.0
 */
import type { SqlClient } from "@effect/sql"
import { Cause, Duration, Effect, Exit, Metric, Stream } from "effect"
import type { IngestSettings } from "../config/Settings.js"
import { copyTargets, writeBatch } from "../db/Copy.js"
import type { PgPool } from "../db/PgPool.js"
import { withDbRetry } from "../db/Retry.js"
import { finishRun, startRun } from "../db/Staging.js"
import { causeMessage, type DbError, type ReadError, type RejectsWriteError, type XmlParseError } from "../Errors.js"
import * as Metrics from "../metrics/Metrics.js"
import { type DocumentShape, recordShapes } from "../shape/Shape.js"
import { batches, openInput } from "../xml/XmlSource.js"
import type { Batch } from "./Batch.js"
import { logProgress, type ProgressReporter } from "./Progress.js"
import type { RejectsFile } from "./RejectsFile.js"

/**
 * What one input produced, counted from committed batches.
 *
 * @since 0.1.0
 * @category models
 */
export interface IngestSummary {
  readonly file: string
  readonly runId: number
  /** "interrupted" when a stop was requested before the input ended */
  readonly state: "done" | "interrupted"
  readonly records: number
  readonly rowsLoaded: number
  readonly rowsByTable: Readonly<Record<string, number>>
  readonly rejected: number
  readonly rejectsByKind: Readonly<Record<string, number>>
  readonly batches: number
  readonly retries: number
  readonly xmlBytes: number
  readonly sourceBytes: number
  readonly seconds: number
}

/**
 * @since 0.1.0
 * @category errors
 */
export type IngestError = ReadError | XmlParseError | DbError | RejectsWriteError

/**
 * @since 0.1.0
 * @category models
 */
export interface IngestOptions {
  readonly doc: DocumentShape
  readonly settings: IngestSettings
  readonly rejects: RejectsFile
  /** completes when the run should stop reading and finish what is in flight */
  readonly stop?: Effect.Effect<void>
  /** default: a log line every `settings.progressEveryMillis` */
  readonly reporter?: ProgressReporter
}

/**
 * Loads one input (a path, or "-" for stdin) into the staging tables.
 *
 * @since 0.1.0
 * @category ingest
 */
export const ingestFile = (file: string, options: IngestOptions) =>
  Effect.gen(function*() {
    const { doc, settings } = options
    const shapes = recordShapes(doc)
    const input = yield* openInput(file)
    const runId = yield* startRun(settings.schema, {
      file,
      fileSize: input.progress.sourceSize,
      settings: {
        batchRows: settings.batchRows,
        batchBytes: settings.batchBytes,
        writers: settings.writers,
        queueSize: settings.queueSize
      }
    })
    yield* Effect.logInfo(`run ${runId}: loading ${file}`)
    const targets = copyTargets(doc, settings.schema)
    const started = performance.now()
    let stopped = false
    const totals = {
      rowsLoaded: 0,
      rowsByTable: Object.fromEntries(shapes.map((s) => [s.stagingTable, 0])) as Record<string, number>,
      records: 0,
      rejected: 0,
      rejectsByKind: {} as Record<string, number>,
      batches: 0,
      retries: 0,
      xmlBytes: 0
    }
    const committed = (batch: Batch) =>
      Effect.gen(function*() {
        totals.batches++
        totals.rowsLoaded += batch.rows
        totals.records += batch.rows + batch.rejects.length
        totals.rejected += batch.rejects.length
        shapes.forEach((s, i) => (totals.rowsByTable[s.stagingTable]! += batch.tables[i]!.rows))
        for (const r of batch.rejects) totals.rejectsByKind[r.kind] = (totals.rejectsByKind[r.kind] ?? 0) + 1
        yield* options.rejects.append(batch.rejects)
        yield* Metric.incrementBy(Metrics.rowsLoaded, batch.rows)
        yield* Metric.incrementBy(Metrics.recordsRejected, batch.rejects.length)
        yield* Metric.increment(Metrics.batchesCommitted)
      })
    const live = { queued: 0, writersBusy: 0 }
    const busy = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => live.writersBusy++),
        () => self,
        () => Effect.sync(() => live.writersBusy--)
      )
    const write = (batch: Batch) =>
      writeBatch(targets, runId, batch).pipe(
        withDbRetry(
          {
            retries: settings.retries,
            base: Duration.millis(settings.retryBaseMillis),
            maxDelay: Duration.millis(settings.retryMaxDelayMillis)
          },
          () => Effect.sync(() => totals.retries++).pipe(Effect.zipRight(Metric.increment(Metrics.retries)))
        ),
        Metrics.instrumentWrite,
        busy,
        Effect.annotateLogs({ run: runId, batch: batch.seq }),
        Effect.zipRight(committed(batch))
      )
    let lastBytes = 0
    const source = batches(input, {
      file,
      doc,
      runId,
      limits: { rows: settings.batchRows, bytes: settings.batchBytes },
      maxRecordChars: settings.maxRecordBytes
    }).pipe(
      Stream.tap((batch) =>
        Metric.incrementBy(Metrics.recordsRead, batch.rows + batch.rejects.length).pipe(
          Effect.zipRight(Metric.incrementBy(Metrics.xmlBytes, batch.byteEnd - lastBytes)),
          Effect.zipRight(Metric.incrementBy(Metrics.queueDepth, 1)),
          Effect.zipRight(Effect.sync(() => {
            lastBytes = batch.byteEnd
            live.queued++
          }))
        )
      )
    )
    const stoppable = options.stop === undefined
      ? source
      : source.pipe(Stream.haltWhen(options.stop.pipe(Effect.zipRight(Effect.sync(() => {
        stopped = true
      })))))
    const reporter = options.reporter ?? logProgress(settings.progressEveryMillis)
    yield* reporter(() => ({
      file,
      runId,
      sourceBytes: input.progress.sourceBytes(),
      sourceSize: input.progress.sourceSize,
      xmlBytes: input.progress.xmlBytes,
      records: input.progress.records,
      rejected: input.progress.rejects,
      rowsLoaded: totals.rowsLoaded,
      batches: totals.batches,
      retries: totals.retries,
      queued: live.queued,
      queueSize: settings.queueSize,
      writersBusy: live.writersBusy,
      writers: settings.writers,
      elapsedSeconds: (performance.now() - started) / 1000
    }))
    const counts = () => ({
      records: totals.records,
      rowsLoaded: totals.rowsLoaded,
      rejected: totals.rejected,
      xmlBytes: input.progress.xmlBytes
    })
    yield* stoppable.pipe(
      Stream.buffer({ capacity: settings.queueSize }),
      Stream.tap(() =>
        Effect.sync(() => {
          live.queued--
        }).pipe(Effect.zipRight(Metric.incrementBy(Metrics.queueDepth, -1)))
      ),
      Stream.mapEffect(write, { concurrency: settings.writers, unordered: true }),
      Stream.runDrain,
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : finishRun(settings.schema, runId, {
          ...counts(),
          state: Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed",
          message: causeMessage(Cause.squash(exit.cause))
        }).pipe(Effect.ignore)
      )
    )
    totals.xmlBytes = input.progress.xmlBytes
    yield* finishRun(settings.schema, runId, { ...counts(), state: stopped ? "interrupted" : "done", message: null })
    const summary: IngestSummary = {
      file,
      runId,
      state: stopped ? "interrupted" : "done",
      ...totals,
      sourceBytes: input.progress.sourceBytes(),
      seconds: (performance.now() - started) / 1000
    }
    return summary
  }).pipe(Effect.scoped, Effect.withSpan("Ingest.ingestFile", { attributes: { file } }))

/**
 * The requirements of `ingestFile`.
 *
 * @since 0.1.0
 * @category models
 */
export type IngestRequirements = PgPool | SqlClient.SqlClient
