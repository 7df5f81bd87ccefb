/**
 * One advisory lock per schema keeps `finalize` (exclusive) apart from `ingest` and other
 * `finalize` runs. The lock is a session lock held on a dedicated pool connection for as
 * long as the wrapped effect runs, and released on success, failure or interruption.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { type DbError, toDbError } from "../Errors.js"
import { clientQuery, PgPool, scopedClient } from "./PgPool.js"

/**
 * @since 0.1.0
 * @category models
 */
export type LockMode = "shared" | "exclusive"

/**
 * @since 0.1.0
 * @category models
 */
export interface LockOptions {
  /** wait for the lock; otherwise fail at once with `LockBusyError` */
  readonly wait: boolean
}

/**
 * Someone else holds the schema's lock and the caller did not want to wait.
 *
 * @since 0.1.0
 * @category errors
 */
export class LockBusyError extends Data.TaggedError("LockBusyError")<{
  readonly schema: string
  readonly mode: LockMode
}> {
  override get message(): string {
    return `another finalize or ingest is running on schema ${this.schema}; use --wait to wait`
  }
}

/** The lock key is computed server-side from the schema name, passed as a parameter. */
const KEY = "hashtext('xml2pg:' || $1::text)"

const functions = {
  shared: {
    tryLock: "pg_try_advisory_lock_shared",
    lock: "pg_advisory_lock_shared",
    unlock: "pg_advisory_unlock_shared"
  },
  exclusive: { tryLock: "pg_try_advisory_lock", lock: "pg_advisory_lock", unlock: "pg_advisory_unlock" }
} as const

/**
 * Runs `self` while holding the schema's advisory lock in `mode`: `shared` for ingest
 * (ingests run side by side), `exclusive` for finalize. With `wait: false` a held lock
 * fails fast with `LockBusyError`; with `wait: true` it queues behind the holder, and an
 * interruption while waiting cancels the wait on the server.
 *
 * @since 0.1.0
 * @category locks
 */
export const withSchemaLock = (schema: string, mode: LockMode, options: LockOptions) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | LockBusyError | DbError, R | PgPool> =>
  Effect.acquireUseRelease(
    Scope.make(),
    (scope) =>
      Effect.gen(function*() {
        const pool = yield* PgPool
        const fn = functions[mode]
        let attempted = false
        // The unlock queues behind a cancelled wait on the same client, so it runs after the
        // wait has settled: it releases a lock granted just before the cancel, and is a no-op
        // otherwise. A connection that cannot unlock is destroyed, which ends the session and
        // with it the lock.
        const client = yield* scopedClient("lock", () =>
          attempted ? { sql: `select ${fn.unlock}(${KEY})`, values: [schema], timeout: "10 seconds" } : undefined
        ).pipe(Scope.extend(scope))
        const pid = (yield* clientQuery<{ pid: number }>(client, "lock", "select pg_backend_pid() as pid")).rows[0]!.pid
        attempted = true
        const tried = yield* clientQuery<{ ok: boolean }>(client, "lock", `select ${fn.tryLock}(${KEY}) as ok`, [schema])
        if (!tried.rows[0]!.ok) {
          if (!options.wait) return yield* new LockBusyError({ schema, mode })
          yield* Effect.logInfo(`schema ${schema} is locked by another finalize or ingest; waiting`)
          yield* Effect.tryPromise({
            try: (signal) => {
              signal.addEventListener("abort", () => {
                pool.query("select pg_cancel_backend($1)", [pid]).catch(() => undefined)
              })
              return client.query(`select ${fn.lock}(${KEY})`, [schema])
            },
            catch: toDbError("lock wait")
          })
          yield* Effect.logInfo(`schema ${schema}: lock acquired`)
        }
        return yield* self
      }),
    (scope, exit) => Scope.close(scope, exit)
  )
