/**
 * The CLI program: settings, logging, Ctrl-C and exit codes around `run`. `dist/bin.js`
 * (src/bin.ts) starts it from its bundle, `dist/cli.cjs`.
 */
import * as ConfigFile from "@effect/cli/ConfigFile"
import * as ValidationError from "@effect/cli/ValidationError"
import * as PlatformConfigProvider from "@effect/platform/PlatformConfigProvider"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { run } from "./Cli.js"
import { loggerLayer, loggingFromArgs, parseLogLevel, writeStderr } from "./Logging.js"
import { ABORT_EXIT_CODE, makeStopSignal, StopSignal } from "./Signals.js"
import { ConfigurationError } from "../Errors.js"

// Settings: flags > environment > .env > xml2pg.json / xml2pg.ini (keys like `writers`, `batch-rows`).
const ConfigLive = Layer.unwrapEffect(Effect.gen(function*() {
  const file = yield* ConfigFile.makeProvider("xml2pg", { formats: ["json", "ini"] })
  const dotEnv = yield* PlatformConfigProvider.fromDotEnv(".env").pipe(
    Effect.orElseSucceed(() => ConfigProvider.fromMap(new Map()))
  )
  const fileKeys = file.pipe(
    ConfigProvider.mapInputPath((key) => key.replace(/^XML2PG_/, "").toLowerCase().replace(/_/g, "-"))
  )
  return Layer.setConfigProvider(
    ConfigProvider.fromEnv().pipe(ConfigProvider.orElse(() => dotEnv), ConfigProvider.orElse(() => fileKeys))
  )
}))

const logging = loggingFromArgs(process.argv.slice(2), process.env)
const logLevel = logging.quiet
  ? LogLevel.Error
  : parseLogLevel(process.env["XML2PG_LOG_LEVEL"] ?? "info") ?? LogLevel.Info
const stop = makeStopSignal()

const USAGE = 2

const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return typeof process.exitCode === "number" ? process.exitCode : 0
  if (Cause.isInterruptedOnly(exit.cause)) return ABORT_EXIT_CODE
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (ValidationError.isValidationError(e)) return USAGE
    if (e instanceof ConfigurationError || ConfigError.isConfigError(e)) return USAGE
  }
  return 1
}

const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return Cause.pretty(cause)
  const e = failure.value
  return e instanceof Error ? e.message : String(e)
}

const program = run(process.argv).pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    if (Option.exists(failure, ValidationError.isValidationError)) return Effect.void
    return Effect.logError(`xml2pg: ${describeFailure(cause)}`)
  }),
  Effect.provideService(StopSignal, stop.service),
  Effect.provide(ConfigLive),
  Effect.provide(NodeContext.layer),
  Effect.provide(loggerLayer(logging.format)),
  Logger.withMinimumLogLevel(logLevel)
)

const fiber = Effect.runFork(program)
stop.install(fiber, writeStderr)
fiber.addObserver((exit) => {
  process.exit(exitCodeOf(exit))
})
