/**
 * Retry of transient database errors: exponential backoff with jitter, capped, limited in
 * count, and only for errors a retry can cure.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { DbError } from "../Errors.js"

/**
 * How a batch transaction is retried after a transient error: at most `retries` times,
 * waiting from `base`, doubling with jitter, at most `maxDelay` each time.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetrySettings {
  readonly retries: number
  readonly base: Duration.DurationInput
  readonly maxDelay: Duration.DurationInput
}

// 40001 serialization failure, 40P01 deadlock, 57P01-03 admin/crash shutdown or cannot connect now,
// 55P03 lock not available, 57014 statement timeout / query canceled
const TRANSIENT_STATES = new Set([
  "40001",
  "40P01",
  "57P01",
  "57P02",
  "57P03",
  "55P03",
  "57014",
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH"
])

const TRANSIENT_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|ECONNRESET|socket hang up|Client has encountered a connection error/i

/**
 * Connection loss (class 08, errno), insufficient resources incl. too many connections
 * (class 53), serialization failure, deadlock, server shutdown, statement timeout.
 *
 * @since 0.1.0
 * @category retry
 */
export const isTransient = (e: DbError): boolean => {
  const s = e.sqlState
  if (s === undefined) return e.cause instanceof Error && TRANSIENT_MESSAGE.test(e.cause.message)
  return s.startsWith("08") || s.startsWith("53") || TRANSIENT_STATES.has(s)
}

/**
 * The retry schedule: exponential from `base` (factor 2), each delay capped at `maxDelay`,
 * jittered, at most `retries` times, and only while the error `isTransient`.
 *
 * @since 0.1.0
 * @category retry
 */
export const retryPolicy = (settings: RetrySettings) =>
  Schedule.exponential(settings.base, 2).pipe(
    Schedule.union(Schedule.spaced(settings.maxDelay)),
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(settings.retries)),
    Schedule.whileInput(isTransient)
  )

/**
 * Retries `self` (a whole transaction) on transient errors; `onRetry` runs before each retry.
 *
 * @since 0.1.0
 * @category retry
 */
export const withDbRetry = (settings: RetrySettings, onRetry: (e: DbError) => Effect.Effect<void>) =>
<A, R>(self: Effect.Effect<A, DbError, R>): Effect.Effect<A, DbError, R> =>
  self.pipe(
    Effect.tapError((e) =>
      isTransient(e)
        ? Effect.logWarning(`transient database error, will retry: ${e.message}`).pipe(Effect.zipRight(onRetry(e)))
        : Effect.void
    ),
    Effect.retry(retryPolicy(settings))
  )
