/**
 * One advisory lock per schema keeps `finalize` (exclusive) apart from `ingest` and other
 * `finalize` runs. The lock is a session lock held on a dedicated pool connection for as
 * long as the wrapped effect runs, and released on success, failure or interruption.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type Pg from "pg"
import { type DbError, toDbError } from "../Errors.js"
import { PgPool } from "./PgPool.js"

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

interface Held {
  readonly client: Pg.PoolClient
  readonly pid: number
  readonly onError: (err: Error) => void
  attempted: boolean
}

const query = <R extends Pg.QueryResultRow>(client: Pg.PoolClient, op: string, text: string, values: Array<unknown>) =>
  Effect.tryPromise({ try: () => client.query<R>(text, values), catch: toDbError(op) })

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
  Effect.gen(function*() {
    const pool = yield* PgPool
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const fn = functions[mode]
    const acquire = Effect.gen(function*() {
      const client = yield* Effect.tryPromise({ try: () => pool.connect(), catch: toDbError("lock connect") })
      const onError = (err: Error) => runFork(Effect.logWarning(`lock connection failed: ${err.message}`))
      client.on("error", onError)
      const pid = yield* query<{ pid: number }>(client, "lock", "select pg_backend_pid() as pid", []).pipe(
        Effect.map((r) => r.rows[0]!.pid),
        Effect.tapError(() =>
          Effect.sync(() => {
            client.off("error", onError)
            client.release(true)
          })
        )
      )
      const held: Held = { client, pid, onError, attempted: false }
      return held
    })
    const lock = (held: Held) =>
      Effect.gen(function*() {
        held.attempted = true
        const tried = yield* query<{ ok: boolean }>(held.client, "lock", `select ${fn.tryLock}(${KEY}) as ok`, [schema])
        if (tried.rows[0]!.ok) return
        if (!options.wait) return yield* new LockBusyError({ schema, mode })
        yield* Effect.logInfo(`schema ${schema} is locked by another finalize or ingest; waiting`)
        yield* Effect.tryPromise({
          try: (signal) => {
            signal.addEventListener("abort", () => {
              pool.query("select pg_cancel_backend($1)", [held.pid]).catch(() => undefined)
            })
            return held.client.query(`select ${fn.lock}(${KEY})`, [schema])
          },
          catch: toDbError("lock wait")
        })
        yield* Effect.logInfo(`schema ${schema}: lock acquired`)
      })
    // The unlock queues behind a cancelled wait on the same client, so it runs after the
    // wait has settled: it releases a lock granted just before the cancel, and is a no-op
    // otherwise. A connection that cannot unlock is destroyed, which ends the session and
    // with it the lock.
    const release = (held: Held) =>
      (held.attempted
        ? Effect.tryPromise(() => held.client.query(`select ${fn.unlock}(${KEY})`, [schema])).pipe(
          Effect.timeout("10 seconds"),
          Effect.match({ onFailure: () => held.client.release(true), onSuccess: () => held.client.release() })
        )
        : Effect.sync(() => held.client.release())).pipe(
          Effect.ensuring(Effect.sync(() => held.client.off("error", held.onError)))
        )
    return yield* Effect.acquireUseRelease(acquire, (held) => Effect.zipRight(lock(held), self), release)
  })
