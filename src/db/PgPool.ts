/**
 * The app owns one `pg.Pool`: COPY checks raw clients out of it, and `@effect/sql` runs
 * over the same pool through `PgClient.layerFromPool`.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import Pg from "pg"
import { type DbError, toDbError } from "../Errors.js"

/**
 * How to open a `pg.Pool`: the connection URL (kept `Redacted`), its size, and the
 * `application_name` shown in `pg_stat_activity`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolSettings {
  readonly url: Redacted.Redacted<string>
  readonly maxConnections: number
  readonly applicationName?: string
}

/**
 * The `pg.Pool` that COPY writers check raw connections out of, one per writer for the
 * length of a batch. `PgPool.layer(settings)` opens one and ends it with its scope; a host
 * app may provide its own pool under this tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class PgPool extends Context.Tag("xml2pg/PgPool")<PgPool, Pg.Pool>() {
  /**
   * Opens a pool, checks it with `select 1`, and ends it when the scope closes.
   */
  static readonly make = (settings: PoolSettings) =>
    Effect.acquireRelease(
      Effect.gen(function*() {
        const runFork = Runtime.runFork(yield* Effect.runtime<never>())
        const pool = new Pg.Pool({
          connectionString: Redacted.value(settings.url),
          max: settings.maxConnections,
          application_name: settings.applicationName ?? "xml2pg",
          connectionTimeoutMillis: 15_000
        })
        pool.on("error", (err) => runFork(Effect.logWarning(`idle database connection failed: ${err.message}`)))
        yield* Effect.tryPromise({ try: () => pool.query("select 1"), catch: toDbError("connect") }).pipe(
          Effect.tapError(() => Effect.promise(() => pool.end()))
        )
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption("5 seconds"))
    )

  static readonly layer = (settings: PoolSettings): Layer.Layer<PgPool, DbError> =>
    Layer.scoped(PgPool, PgPool.make(settings))
}

/**
 * `SqlClient`/`PgClient` over the app's `PgPool`; the pool's lifetime stays with PgPool.
 *
 * @since 0.1.0
 * @category layers
 */
export const SqlFromPool = Layer.unwrapEffect(
  Effect.map(PgPool, (pool) => PgClient.layerFromPool({ acquire: Effect.succeed(pool), applicationName: "xml2pg" }))
)

/**
 * A pool and an `SqlClient` over it.
 *
 * @since 0.1.0
 * @category layers
 */
export const DatabaseLive = (settings: PoolSettings) => SqlFromPool.pipe(Layer.provideMerge(PgPool.layer(settings)))

/**
 * A query on a raw client; a failure is a `DbError` naming `op`.
 *
 * @internal
 */
export const clientQuery = <R extends Pg.QueryResultRow = Pg.QueryResultRow>(
  client: Pg.PoolClient,
  op: string,
  text: string,
  values: ReadonlyArray<unknown> = []
) => Effect.tryPromise({ try: () => client.query<R>(text, values as Array<unknown>), catch: toDbError(op) })

/**
 * A statement that must run before a client goes back to the pool (ROLLBACK, unlock).
 *
 * @internal
 */
export interface Closing {
  readonly sql: string
  readonly values: ReadonlyArray<unknown>
  readonly timeout: Duration.DurationInput
}

/**
 * A raw client checked out of the pool for the scope, with its connection errors logged
 * (an unhandled "error" event would crash the process). On release, `closing` (given the
 * scope's exit) may name a statement to run first; a client on which it fails or times out
 * is destroyed rather than reused.
 *
 * @internal
 */
export const scopedClient = (
  what: string,
  closing: (exit: Exit.Exit<unknown, unknown>) => Closing | undefined
): Effect.Effect<Pg.PoolClient, DbError, PgPool | Scope.Scope> =>
  Effect.gen(function*() {
    const pool = yield* PgPool
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const onError = (err: Error) => runFork(Effect.logWarning(`${what} connection failed: ${err.message}`))
    return yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => pool.connect(), catch: toDbError(`${what} connect`) }).pipe(
        Effect.tap((c) => Effect.sync(() => c.on("error", onError)))
      ),
      (client, exit) => {
        const statement = closing(exit)
        return (statement === undefined
          ? Effect.sync(() => client.release())
          : clientQuery(client, `${what} close`, statement.sql, statement.values).pipe(
            Effect.timeout(statement.timeout),
            Effect.match({ onFailure: () => client.release(true), onSuccess: () => client.release() })
          )).pipe(Effect.ensuring(Effect.sync(() => client.off("error", onError))))
      }
    )
  })
