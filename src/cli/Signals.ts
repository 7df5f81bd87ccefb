/**
 * Ctrl-C / SIGTERM. The first signal during a load asks it to stop reading and finish
 * its in-flight batches; outside a load, or on the second signal, the program is
 * interrupted (open transactions roll back); a third exits at once.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"

export interface StopSignalService {
  /** completes on the first signal */
  readonly requested: Effect.Effect<void>
  /** runs `self` as a load that a first signal stops gracefully rather than interrupts */
  readonly graceful: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export class StopSignal extends Context.Tag("xml2pg/StopSignal")<StopSignal, StopSignalService>() {}

export const ABORT_EXIT_CODE = 130

export const makeStopSignal = () => {
  const deferred = Deferred.unsafeMake<void>(FiberId.none)
  let gracefulRunning = 0
  const service: StopSignalService = {
    requested: Deferred.await(deferred),
    graceful: (self) =>
      Effect.acquireUseRelease(
        Effect.sync(() => gracefulRunning++),
        () => self,
        () => Effect.sync(() => gracefulRunning--)
      )
  }
  const install = (fiber: Fiber.RuntimeFiber<unknown, unknown>, write: (line: string) => void) => {
    let signals = 0
    const handler = (signal: NodeJS.Signals) => {
      signals++
      if (signals === 1 && gracefulRunning > 0) {
        write(`${signal}: stopping after in-flight batches; press Ctrl-C again to abort`)
        Deferred.unsafeDone(deferred, Exit.void)
      } else if (signals <= 2) {
        write(`${signal}: aborting; open transactions roll back`)
        fiber.unsafeInterruptAsFork(FiberId.none)
        setTimeout(() => process.exit(ABORT_EXIT_CODE), 10_000).unref()
      } else {
        process.exit(ABORT_EXIT_CODE)
      }
    }
    process.on("SIGINT", handler)
    process.on("SIGTERM", handler)
  }
  return { service, install } as const
}
