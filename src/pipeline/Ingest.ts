/**
 * One input end to end: producer → bounded queue → N COPY writers, with the run recorded
 * in the ledger. Effect works per batch here; per-record work stays in the producer.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import type { IngestSettings } from "../config/Settings.js"
import { copyTargets, writeBatch } from "../db/Copy.js"
import type { PgPool } from "../db/PgPool.js"
import { withDbRetry } from "../db/Retry.js"
import { LockBusyError, withSchemaLock } from "../db/Locks.js"
import {
  checkStagingTables,
  committedBatches,
  committedRejects,
  findUnfinishedRun,
  finishRun,
  Ledger,
  type LedgerEntry,
  reopenRun,
  startRun,
  type UnfinishedRun
} from "../db/Staging.js"
import { causeMessage, type DbError, type ReadError, type RejectsWriteError, type XmlParseError } from "../Errors.js"
import * as Metrics from "../metrics/Metrics.js"
import { type DocumentShape, recordShapes, toWire } from "../shape/Shape.js"
import { dropPrestartedWorker, type ParseWorkers, startParseWorker, workerBatches } from "../xml/ParseThread.js"
import type { ProducerOptions, ResumePoint } from "../xml/Producer.js"
import { batches, type InputInfo, inspectInput, type OpenedInput, openInput } from "../xml/XmlSource.js"
import { type Batch, type CopyFormats, tableFormats } from "./Batch.js"
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
  /** batches of this run committed by an earlier, interrupted attempt */
  readonly resumedBatches: number
  readonly retries: number
  readonly xmlBytes: number
  readonly sourceBytes: number
  readonly seconds: number
}

/**
 * More records were rejected than `--max-errors` allows; committed batches stay.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyRejectsError extends Data.TaggedError("TooManyRejectsError")<{
  readonly file: string
  readonly limit: number
}> {
  override get message(): string {
    return `${this.file}: stopped after more than ${this.limit} rejected records (--max-errors). ` +
      `Committed batches stay in staging; see the rejects file, then run the same ingest again to resume ` +
      `(raise --max-errors to accept more rejects)`
  }
}

/**
 * A resume was asked for and is not possible, or the run is live in another process.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResumeError extends Data.TaggedError("ResumeError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot resume ${this.file}: ${this.reason}`
  }
}

/**
 * Where the committed prefix of a run's batches ends: the next batch, its first record
 * and the byte to read from. Batches committed after a gap are skipped by number.
 *
 * @since 0.1.0
 * @category ingest
 */
export const resumePoint = (ledger: ReadonlyArray<LedgerEntry>): ResumePoint | undefined => {
  let seq = 0
  let ord = 0
  let byte = 0
  for (const b of ledger) {
    if (b.seq !== seq + 1) break
    seq = b.seq
    ord = Math.max(ord, b.lastOrd)
    byte = b.byteEnd
  }
  return seq === 0 ? undefined : { byte, seq: seq + 1, ord }
}

/**
 * Why a load stops: the input cannot be read or is not the expected XML, the database fails
 * for good, the rejects file cannot be written, too many records were rejected, a resume
 * is impossible, or another process holds the run's lock.
 *
 * @since 0.1.0
 * @category errors
 */
export type IngestError =
  | ReadError
  | XmlParseError
  | DbError
  | RejectsWriteError
  | TooManyRejectsError
  | ResumeError
  | LockBusyError

/**
 * What `ingestFile` needs for one input: the document shape, the settings, the rejects file,
 * and optionally a stop signal, a progress reporter and the resume policy.
 *
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
  /**
   * An unfinished run of the same file (path, size, content fingerprint) is resumed:
   * "auto" (default) when there is one, "require" fails when there is none, "never"
   * starts a new run.
   */
  readonly resume?: "auto" | "require" | "never"
  /** parse workers shared by the inputs of one load (`makeParseWorkers`); default: a new one for this input */
  readonly parseWorkers?: ParseWorkers
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
    // a shape with a check of the user's own cannot cross to the worker: it parses here
    const wire = settings.parseWorker ? toWire(doc) : undefined
    // started first, the worker boots while the run is looked up and recorded (and idles while
    // a finalize holds the schema lock; it is stopped unused if the lookup fails); parsing
    // here, the one the CLI started ahead is ended
    const worker = wire === undefined
      ? yield* Effect.as(dropPrestartedWorker, undefined)
      : yield* (options.parseWorkers?.take ?? startParseWorker)
    const info = yield* inspectInput(file)
    const unfinished = info.fingerprint === undefined || info.size === undefined || options.resume === "never"
      ? undefined
      : yield* findUnfinishedRun(settings.schema, { file, size: info.size, fingerprint: info.fingerprint })
    if (unfinished === undefined && options.resume === "require") {
      return yield* new ResumeError({ file, reason: "no unfinished run of this file (same path, size and content)" })
    }
    // a run keeps its COPY formats, as it keeps its batch limits: batches are cut by encoded
    // bytes, so a resume must encode as the run began (a run from before binary COPY: text)
    const formats: CopyFormats = unfinished === undefined
      ? tableFormats(doc).map((f) => f._tag)
      : unfinished.copyFormats ?? recordShapes(doc).map(() => "text")
    yield* checkStagingTables(doc, settings.schema, formats)
    const runId = unfinished?.runId ?? (yield* startRun(settings.schema, {
      file,
      fileSize: info.size,
      fingerprint: info.fingerprint,
      settings: {
        batchRows: settings.batchRows,
        batchBytes: settings.batchBytes,
        writers: settings.writers,
        queueSize: settings.queueSize,
        copyFormats: formats
      }
    }))
    const parse = (input: OpenedInput, producerOptions: ProducerOptions) =>
      wire === undefined ? batches(input, producerOptions) : workerBatches(input, wire, producerOptions, worker)
    return yield* load(file, options, info, runId, unfinished, formats, parse).pipe(
      // finalize must not read the staging tables half-loaded: it takes this lock exclusively
      withSchemaLock(settings.schema, "shared", { wait: true }),
      // one loader per run: a second process resuming the same run must not load it twice
      withSchemaLock(`${settings.schema}:run:${runId}`, "exclusive", { wait: false }),
      Effect.catchIf(
        (e): e is LockBusyError => e instanceof LockBusyError && e.schema.includes(":run:"),
        () => new ResumeError({ file, reason: `run ${runId} of this file is being loaded by another process` })
      )
    )
  }).pipe(Effect.scoped, Effect.withSpan("Ingest.ingestFile", { attributes: { file } }))

const load = (
  file: string,
  options: IngestOptions,
  info: InputInfo,
  runId: number,
  unfinished: UnfinishedRun | undefined,
  formats: CopyFormats,
  parse: (input: OpenedInput, options: ProducerOptions) => Stream.Stream<Batch, ReadError | XmlParseError>
) =>
  Effect.gen(function*() {
    const { doc, settings } = options
    const shapes = recordShapes(doc)
    // a resumed run keeps its batch limits, so its batches are cut exactly as before
    const limits = unfinished === undefined
      ? { rows: settings.batchRows, bytes: settings.batchBytes }
      : { rows: unfinished.batchRows, bytes: unfinished.batchBytes }
    const ledger = unfinished === undefined ? [] : yield* committedBatches(settings.schema, runId)
    const done = new Set(ledger.map((b) => b.seq))
    const resumeAt = resumePoint(ledger)
    if (unfinished !== undefined) {
      yield* reopenRun(settings.schema, runId)
      yield* Effect.logInfo(
        `run ${runId}: resuming ${file} (${unfinished.state}): ${ledger.length} batches already committed` +
          (resumeAt === undefined ? "" : `, reading from byte ${resumeAt.byte}`)
      )
    } else {
      yield* Effect.logInfo(`run ${runId}: loading ${file}`)
    }
    const input = yield* openInput(info, resumeAt?.byte ?? 0)
    const targets = copyTargets(doc, settings.schema, formats)
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
    for (const b of ledger) {
      const rows = Object.values(b.rowCounts).reduce((n, r) => n + r, 0)
      totals.batches++
      totals.rowsLoaded += rows
      totals.records += rows + b.rejected
      totals.rejected += b.rejected
      for (const [table, n] of Object.entries(b.rowCounts)) totals.rowsByTable[table] = (totals.rowsByTable[table] ?? 0) + n
    }
    const resumedBatches = ledger.length
    // The rejects file is appended after each commit. A killed attempt may have committed a
    // batch without appending it, and a server crash may have lost commits whose lines are
    // in the file: what the file holds for this run decides what is appended, so each
    // reject ends up there once.
    const filed = unfinished === undefined ? new Map<number, number>() : yield* options.rejects.filed(file, runId)
    for (const b of ledger) {
      const lines = filed.get(b.seq) ?? 0
      if (b.rejected === 0 || lines === b.rejected) continue
      if (lines === 0) {
        yield* options.rejects.append(runId, b.seq, yield* committedRejects(settings.schema, runId, b.seq))
      } else {
        yield* Effect.logWarning(
          `the rejects file holds ${lines} of the ${b.rejected} rejects of batch ${b.seq} (a write cut short?); ` +
            `the ${Ledger.rejects} table holds them all`
        )
      }
    }
    const committed = (batch: Batch) =>
      Effect.gen(function*() {
        totals.batches++
        totals.rowsLoaded += batch.rows
        totals.records += batch.rows + batch.rejects.length
        totals.rejected += batch.rejects.length
        shapes.forEach((s, i) => (totals.rowsByTable[s.stagingTable]! += batch.tables[i]!.rows))
        for (const r of batch.rejects) totals.rejectsByKind[r.kind] = (totals.rejectsByKind[r.kind] ?? 0) + 1
        // lines filed by an attempt whose commit was lost are a prefix of the same batch's
        yield* options.rejects.append(runId, batch.seq, batch.rejects.slice(filed.get(batch.seq) ?? 0))
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
        Effect.zipRight(committed(batch)),
        Effect.ensuring(Effect.sync(() => batch.release?.()))
      )
    let lastBytes = 0
    let tooManyRejects = false
    const producerOptions: ProducerOptions = {
      file,
      doc,
      runId,
      limits,
      maxRecordChars: settings.maxRecordBytes,
      recover: !settings.strict,
      formats,
      ...(resumeAt === undefined ? {} : { resumeAt })
    }
    const source = parse(input, producerOptions).pipe(
      // batches an earlier attempt committed are skipped, their memory handed back
      Stream.filter((batch) => {
        if (!done.has(batch.seq)) return true
        batch.release?.()
        return false
      }),
      // past --max-errors: stop reading after this batch; what is in flight still commits
      Stream.takeUntil(() =>
        tooManyRejects = settings.maxErrors !== null && totals.rejected + input.progress.rejects > settings.maxErrors
      ),
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
    if (tooManyRejects) {
      const error = new TooManyRejectsError({ file, limit: settings.maxErrors ?? 0 })
      yield* finishRun(settings.schema, runId, { ...counts(), state: "failed", message: error.message })
      return yield* error
    }
    yield* finishRun(settings.schema, runId, { ...counts(), state: stopped ? "interrupted" : "done", message: null })
    const summary: IngestSummary = {
      file,
      runId,
      state: stopped ? "interrupted" : "done",
      ...totals,
      resumedBatches,
      sourceBytes: input.progress.sourceBytes(),
      seconds: (performance.now() - started) / 1000
    }
    return summary
  }).pipe(Effect.scoped)

/**
 * The requirements of `ingestFile`.
 *
 * @since 0.1.0
 * @category models
 */
export type IngestRequirements = PgPool | SqlClient.SqlClient
