/**
 * The facade an app uses: `init`, `ingest` and `clean` over its own pool and SqlClient.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { IngestSettings } from "./config/Settings.js"
import { DatabaseLive, PgPool, type PoolSettings } from "./db/PgPool.js"
import { finalize as finalizeStaging, type FinalizeOptions, type FinalizeReport } from "./db/Finalize.js"
import { type LockBusyError, withSchemaLock } from "./db/Locks.js"
import { cleanStaging, ensureSchema, initSchema } from "./db/Staging.js"
import { status as statusOf, type StatusOptions, type StatusReport } from "./db/Status.js"
import type { DbError } from "./Errors.js"
import { type IngestError, ingestFile, type IngestSummary } from "./pipeline/Ingest.js"
import type { ProgressReporter } from "./pipeline/Progress.js"
import { makeRejectsFile } from "./pipeline/RejectsFile.js"
import { GroupsDocument } from "./shape/GroupEvents.js"
import type { DocumentShape } from "./shape/Shape.js"
import { makeParseWorkers } from "./xml/ParseThread.js"

/**
 * One call of `Xml2Pg.ingest`: the inputs in load order (paths, or `-` for stdin), the
 * settings, and optionally a stop signal, a progress reporter and the resume policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface IngestRequest {
  readonly files: ReadonlyArray<string>
  readonly settings: IngestSettings
  /** completes when the load should stop reading and finish its in-flight batches */
  readonly stop?: Effect.Effect<void>
  /** how progress is shown while loading; default: a log line every `settings.progressEveryMillis` */
  readonly reporter?: ProgressReporter
  /** resume an unfinished run of the same file: "auto" (default), "require", "never" */
  readonly resume?: "auto" | "require" | "never"
}

/**
 * The loader for one document shape (groups/events by default).
 *
 * @since 0.1.0
 * @category services
 */
export class Xml2Pg extends Effect.Service<Xml2Pg>()("xml2pg/Xml2Pg", {
  effect: Effect.gen(function*() {
    const context = yield* Effect.context<PgPool | SqlClient.SqlClient>()
    const doc: DocumentShape = GroupsDocument
    const init = (schema: string): Effect.Effect<void, DbError> =>
      initSchema(doc, schema).pipe(Effect.provide(context))
    const ensure = (schema: string): Effect.Effect<void, DbError> =>
      ensureSchema(doc, schema).pipe(Effect.provide(context))
    const clean = (schema: string): Effect.Effect<void, DbError | LockBusyError> =>
      cleanStaging(doc, schema).pipe(withSchemaLock(schema, "exclusive", { wait: false }), Effect.provide(context))
    const finalize = (schema: string, options: FinalizeOptions): Effect.Effect<FinalizeReport, DbError | LockBusyError> =>
      finalizeStaging(doc, schema, options).pipe(Effect.provide(context))
    const status = (schema: string, options?: StatusOptions): Effect.Effect<StatusReport, DbError> =>
      statusOf(doc, schema, options).pipe(Effect.provide(context))
    const ingest = (request: IngestRequest): Effect.Effect<ReadonlyArray<IngestSummary>, IngestError> =>
      Effect.gen(function*() {
        const rejects = yield* makeRejectsFile(request.settings.rejectsPath)
        const parseWorkers = yield* makeParseWorkers
        return yield* Effect.forEach(request.files, (file) =>
          ingestFile(file, {
            doc,
            settings: request.settings,
            rejects,
            parseWorkers,
            ...(request.stop === undefined ? {} : { stop: request.stop }),
            ...(request.reporter === undefined ? {} : { reporter: request.reporter }),
            ...(request.resume === undefined ? {} : { resume: request.resume })
          }))
      }).pipe(Effect.scoped, Effect.provide(context))
    return { doc, init, ensure, clean, ingest, finalize, status } as const
  })
}) {
  /**
   * The loader with its own pool and SqlClient.
   */
  static readonly layer = (settings: PoolSettings) =>
    Xml2Pg.Default.pipe(Layer.provideMerge(DatabaseLive(settings)))
}
