/**
 * One input end to end: producer → bounded queue → N COPY writers, with the run recorded
 * in the ledger. Effect works per batch here; per-record work stays in the producer.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
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
  dropBatches,
  findUnfinishedRun,
  finishRun,
  keepRanges,
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
import { parsersFor, RANGE_ORDS, RANGE_SEQS, rangeOf, splitPoints } from "../xml/Split.js"
import { batches, type InputInfo, inspectInput, type OpenedInput, openInput } from "../xml/XmlSource.js"
import { type Batch, type CopyFormats, tableFormats } from "./Batch.js"
import { logProgress, type ProgressReporter } from "./Progress.js"
import type { RejectsFile } from "./RejectsFile.js"
import { writeEach } from "./Writers.js"

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
 * and the byte to read from; undefined when nothing of it is committed. Batches committed
 * after a gap are skipped by number. `first`: where the batches start (a range of a split
 * input starts mid-file, numbered apart; see Split.ts).
 *
 * @since 0.1.0
 * @category ingest
 */
export const resumePoint = (
  ledger: ReadonlyArray<LedgerEntry>,
  first: ResumePoint = { byte: 0, seq: 1, ord: 0 }
): ResumePoint | undefined => {
  let seq = first.seq - 1
  let ord = first.ord
  let byte = first.byte
  for (const b of ledger) {
    if (b.seq !== seq + 1) break
    seq = b.seq
    ord = Math.max(ord, b.lastOrd)
    byte = b.byteEnd
  }
  return seq === first.seq - 1 ? undefined : { byte, seq: seq + 1, ord }
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
    // started first, the worker boots while the run is looked up and recorded (and waits, or
    // parses ahead, while a finalize holds the schema lock; it is stopped if the lookup fails);
    // parsing here, the one the CLI started ahead is ended
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
    // a run keeps the ranges it split its input into, as it keeps its batch limits
    const ranges = unfinished?.ranges ??
      (wire === undefined || info.gzip || info.size === undefined
        ? []
        : splitPoints(file, info.size, parsersFor(settings.parsers, info.size), doc.record.element))
    if (ranges.length > 0 && wire === undefined) {
      return yield* new ResumeError({
        file,
        reason: `run ${unfinished?.runId} parses the file in ${ranges.length + 1} ranges, on parse workers: ` +
          `resume it without --no-parse-worker`
      })
    }
    // each further range's worker boots while the run is recorded
    const rangeWorkers = wire === undefined ? [] : yield* Effect.replicateEffect(startParseWorker, ranges.length)
    const runId = unfinished?.runId ?? (yield* startRun(settings.schema, {
      file,
      fileSize: info.size,
      fingerprint: info.fingerprint,
      settings: {
        batchRows: settings.batchRows,
        batchBytes: settings.batchBytes,
        writers: settings.writers,
        queueSize: settings.queueSize,
        copyFormats: formats,
        ranges
      }
    }))
    const parse: RangeParse = (input, producerOptions, range, overran) =>
      wire === undefined
        ? batches(input, producerOptions)
        : workerBatches(input, wire, producerOptions, range === 0 ? worker : rangeWorkers[range - 1], overran)
    return yield* load(file, options, { info, runId, unfinished, formats, ranges }, parse).pipe(
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

/** The batches of range `range` of an input; `overran` runs if the range does not end at a record. */
type RangeParse = (
  input: OpenedInput,
  options: ProducerOptions,
  range: number,
  overran: Effect.Effect<void, DbError, SqlClient.SqlClient>
) => Stream.Stream<Batch, ReadError | XmlParseError | DbError, SqlClient.SqlClient>

/** The run a load is part of, and how it reads its input. */
interface RunPlan {
  readonly info: InputInfo
  readonly runId: number
  readonly unfinished: UnfinishedRun | undefined
  readonly formats: CopyFormats
  /** where the ranges of a split input end (see Split.ts); none: one range */
  readonly ranges: ReadonlyArray<number>
}

/** What the committed batches of one range of the input hold. */
interface RangeTotals {
  rowsLoaded: number
  rowsByTable: Record<string, number>
  records: number
  rejected: number
  rejectsByKind: Record<string, number>
  batches: number
}

const load = (file: string, options: IngestOptions, plan: RunPlan, parse: RangeParse) =>
  Effect.gen(function*() {
    const { doc, settings } = options
    const { info, runId, unfinished, formats, ranges } = plan
    const shapes = recordShapes(doc)
    const count = ranges.length + 1
    // a resumed run keeps its batch limits, so its batches are cut exactly as before
    const limits = unfinished === undefined
      ? { rows: settings.batchRows, bytes: settings.batchBytes }
      : { rows: unfinished.batchRows, bytes: unfinished.batchBytes }
    let ledger = unfinished === undefined ? [] : yield* committedBatches(settings.schema, runId)
    // batches of ranges an attempt dropped and did not get to delete
    if (ledger.some((b) => rangeOf(b.seq) >= count)) {
      yield* dropBatches(doc, settings.schema, runId, count * RANGE_SEQS)
      ledger = ledger.filter((b) => rangeOf(b.seq) < count)
    }
    const done = new Set(ledger.map((b) => b.seq))
    const starts = [0, ...ranges]
    const resumeAts = starts.map((start, k) => {
      const first = { byte: start, seq: k * RANGE_SEQS + 1, ord: k * RANGE_ORDS }
      const at = resumePoint(ledger.filter((b) => rangeOf(b.seq) === k), first)
      return k === 0 ? at : at ?? first
    })
    if (unfinished !== undefined) {
      yield* reopenRun(settings.schema, runId)
      const from = resumeAts.flatMap((at) => (at === undefined ? [] : [at.byte]))
      yield* Effect.logInfo(
        `run ${runId}: resuming ${file} (${unfinished.state}): ${ledger.length} batches already committed` +
          (from.length === 0 ? "" : `, reading from byte ${from.join(", ")}`)
      )
    } else {
      yield* Effect.logInfo(`run ${runId}: loading ${file}` + (count > 1 ? ` in ${count} ranges` : ""))
    }
    const inputs = yield* Effect.forEach(starts, (start, k) =>
      Effect.map(openInput(info, resumeAts[k]?.byte ?? start), (input): OpenedInput =>
        k + 1 < count && input.file !== undefined ? { ...input, file: { ...input.file, end: ranges[k]! } } : input))
    const targets = copyTargets(doc, settings.schema, formats)
    const started = performance.now()
    let stopped = false
    /** ranges from this one on were dropped: their start was not between records */
    let dropped = count
    let retries = 0
    const blank = (): RangeTotals => ({
      rowsLoaded: 0,
      rowsByTable: Object.fromEntries(shapes.map((s) => [s.stagingTable, 0])),
      records: 0,
      rejected: 0,
      rejectsByKind: {},
      batches: 0
    })
    const add = (into: Record<string, number>, from: Readonly<Record<string, number>>) => {
      for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n
    }
    const addTotals = (into: RangeTotals, from: RangeTotals) => {
      into.batches += from.batches
      into.rowsLoaded += from.rowsLoaded
      into.records += from.records
      into.rejected += from.rejected
      add(into.rowsByTable, from.rowsByTable)
      add(into.rejectsByKind, from.rejectsByKind)
    }
    /** one committed batch, as a range's totals count it */
    const batchTotals = (
      rowsByTable: Record<string, number>,
      rejected: number,
      rejectsByKind: Record<string, number> = {}
    ): RangeTotals => {
      const rows = Object.values(rowsByTable).reduce((n, r) => n + r, 0)
      return { batches: 1, rowsLoaded: rows, records: rows + rejected, rejected, rowsByTable, rejectsByKind }
    }
    const perRange = starts.map(blank)
    for (const b of ledger) addTotals(perRange[rangeOf(b.seq)]!, batchTotals({ ...b.rowCounts }, b.rejected))
    /** the totals of the ranges not dropped */
    const totals = (): RangeTotals => {
      const sum = blank()
      for (const t of perRange.slice(0, dropped)) addTotals(sum, t)
      return sum
    }
    /** XML bytes parsed, over the ranges not dropped */
    const covered = (read: (progress: OpenedInput["progress"]) => number) =>
      inputs.slice(0, dropped).reduce((n, input, k) => n + read(input.progress) - starts[k]!, 0)
    const parsedBytes = () => covered((p) => p.xmlBytes)
    /** source bytes read (compressed, for gzip), over the ranges not dropped */
    const sourceBytes = () => covered((p) => p.sourceBytes())
    const progress = (field: "records" | "rejects") => inputs.reduce((n, input) => n + input.progress[field], 0)
    const resumedBatches = ledger.length
    // The rejects file is appended after each commit (a range's after the load, once its start
    // is known to be between records). A killed attempt may have committed a batch without
    // appending it, and a server crash may have lost commits whose lines are in the file:
    // what the file holds for this run decides what is appended, so each reject ends up there once.
    const fileRejects = (entries: ReadonlyArray<LedgerEntry>, filed: ReadonlyMap<number, number>) =>
      Effect.forEach(entries, (b) => {
        const lines = filed.get(b.seq) ?? 0
        if (b.rejected === 0 || lines === b.rejected) return Effect.void
        if (lines === 0) {
          return Effect.flatMap(
            committedRejects(settings.schema, runId, b.seq),
            (rejects) => options.rejects.append(runId, b.seq, rejects)
          )
        }
        return Effect.logWarning(
          `the rejects file holds ${lines} of the ${b.rejected} rejects of batch ${b.seq} (a write cut short?); ` +
            `the ${Ledger.rejects} table holds them all`
        )
      }, { discard: true })
    const filed = unfinished === undefined ? new Map<number, number>() : yield* options.rejects.filed(file, runId)
    yield* fileRejects(ledger.filter((b) => rangeOf(b.seq) === 0), filed)
    const committed = (batch: Batch) =>
      Effect.gen(function*() {
        const range = rangeOf(batch.seq)
        const rejectsByKind: Record<string, number> = {}
        for (const r of batch.rejects) rejectsByKind[r.kind] = (rejectsByKind[r.kind] ?? 0) + 1
        const rowsByTable = Object.fromEntries(shapes.map((s, i) => [s.stagingTable, batch.tables[i]!.rows]))
        addTotals(perRange[range]!, batchTotals(rowsByTable, batch.rejects.length, rejectsByKind))
        // lines filed by an attempt whose commit was lost are a prefix of the same batch's
        if (range === 0) yield* options.rejects.append(runId, batch.seq, batch.rejects.slice(filed.get(batch.seq) ?? 0))
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
          () => Effect.sync(() => retries++).pipe(Effect.zipRight(Metric.increment(Metrics.retries)))
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
      formats
    }
    // verified[k]: range k starts between records (range k-1 ended there, and is itself verified)
    const verified = yield* Effect.forEach(starts, () => Deferred.make<boolean>())
    yield* Deferred.succeed(verified[0]!, true)
    // range k ran past its end: it parses on to the end of the file, and the ranges after it are dropped
    const overran = (k: number) =>
      Effect.gen(function*() {
        // a range dropped already, and halting, may still get past its end: it changes nothing
        if (k >= dropped) return
        yield* keepRanges(settings.schema, runId, ranges.slice(0, k))
        dropped = k + 1
        for (let j = k + 1; j < count; j++) {
          yield* Deferred.succeed(verified[j]!, false)
        }
        yield* Effect.logWarning(
          `${file}: byte ${ranges[k]} looked like the end of a record and is not (a comment or CDATA section?); ` +
            `the ranges from there on are parsed again, by the one before`
        )
      })
    const rangeBatches = (k: number) => {
      const resumeAt = resumeAts[k]
      const own = parse(inputs[k]!, resumeAt === undefined ? producerOptions : { ...producerOptions, resumeAt }, k, overran(k))
      // a range's failure counts only once it is known to start between records
      const checked = k === 0 ? own : own.pipe(Stream.catchAll((e) =>
        Stream.unwrap(Effect.map(Deferred.await(verified[k]!), (ok) => (ok ? Stream.fail(e) : Stream.empty)))
      ))
      return checked.pipe(
        Stream.concat(k + 1 < count
          ? Stream.execute(Effect.flatMap(Deferred.await(verified[k]!), (ok) => Deferred.succeed(verified[k + 1]!, ok)))
          : Stream.empty),
        // a dropped range stops at its next batch, which the filter below drops; not
        // `Stream.interruptWhen`, which forked a fiber per batch (docs/benchmarks.md, session 19)
        Stream.takeWhile(() => k < dropped)
      )
    }
    const merged = count === 1
      ? rangeBatches(0)
      : Stream.mergeAll(starts.map((_, k) => rangeBatches(k)), { concurrency: "unbounded", bufferSize: 1 })
    const source = merged.pipe(
      // batches an earlier attempt committed, or of a dropped range, are skipped, their memory handed back
      Stream.filter((batch) => {
        if (!done.has(batch.seq) && rangeOf(batch.seq) < dropped) return true
        batch.release?.()
        return false
      }),
      // past --max-errors: stop reading after this batch; what is in flight still commits
      Stream.takeUntil(() =>
        tooManyRejects = settings.maxErrors !== null && totals().rejected + progress("rejects") > settings.maxErrors
      ),
      Stream.tap((batch) =>
        Metric.incrementBy(Metrics.recordsRead, batch.rows + batch.rejects.length).pipe(
          Effect.zipRight(Effect.suspend(() => {
            const bytes = parsedBytes()
            const step = bytes - lastBytes
            lastBytes = bytes
            return Metric.incrementBy(Metrics.xmlBytes, step)
          })),
          Effect.zipRight(Metric.incrementBy(Metrics.queueDepth, 1)),
          Effect.zipRight(Effect.sync(() => {
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
    yield* reporter(() => {
      const t = totals()
      return {
        file,
        runId,
        sourceBytes: sourceBytes(),
        sourceSize: inputs[0]!.progress.sourceSize,
        xmlBytes: parsedBytes(),
        records: progress("records"),
        rejected: progress("rejects"),
        rowsLoaded: t.rowsLoaded,
        batches: t.batches,
        retries,
        queued: live.queued,
        queueSize: settings.queueSize,
        writersBusy: live.writersBusy,
        writers: settings.writers,
        elapsedSeconds: (performance.now() - started) / 1000
      }
    })
    const counts = () => {
      const t = totals()
      return { records: t.records, rowsLoaded: t.rowsLoaded, rejected: t.rejected, xmlBytes: parsedBytes() }
    }
    yield* stoppable.pipe(
      Stream.buffer({ capacity: settings.queueSize }),
      Stream.tap(() =>
        Effect.sync(() => {
          live.queued--
        }).pipe(Effect.zipRight(Metric.incrementBy(Metrics.queueDepth, -1)))
      ),
      (queued) => writeEach(queued, settings.writers, write),
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : finishRun(settings.schema, runId, {
          ...counts(),
          state: Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed",
          message: causeMessage(Cause.squash(exit.cause))
        }).pipe(Effect.ignore)
      )
    )
    if (dropped < count) yield* dropBatches(doc, settings.schema, runId, dropped * RANGE_SEQS)
    // every range's start is now known to be between records, unless the load stopped early
    if (count > 1 && !stopped && !tooManyRejects) {
      const all = yield* committedBatches(settings.schema, runId)
      yield* fileRejects(all.filter((b) => rangeOf(b.seq) > 0), yield* options.rejects.filed(file, runId))
    }
    if (tooManyRejects) {
      const error = new TooManyRejectsError({ file, limit: settings.maxErrors ?? 0 })
      yield* finishRun(settings.schema, runId, { ...counts(), state: "failed", message: error.message })
      return yield* error
    }
    yield* finishRun(settings.schema, runId, { ...counts(), state: stopped ? "interrupted" : "done", message: null })
    const t = totals()
    const summary: IngestSummary = {
      file,
      runId,
      state: stopped ? "interrupted" : "done",
      records: t.records,
      rowsLoaded: t.rowsLoaded,
      rowsByTable: t.rowsByTable,
      rejected: t.rejected,
      rejectsByKind: t.rejectsByKind,
      batches: t.batches,
      resumedBatches,
      retries,
      xmlBytes: parsedBytes(),
      sourceBytes: sourceBytes(),
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
