/**
 * Logs go to stderr, so stdout carries only what a command prints: one plain line each
 * (`--log-format text`, the default) or one JSON object each (`--log-format json`).
 * `--quiet` keeps errors only. On a terminal a live status line may sit below the logs;
 * every stderr write here goes above it.
 */
import * as Options from "@effect/cli/Options"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

export type LogFormat = "text" | "json"

export interface LoggingSettings {
  readonly format: LogFormat
  readonly quiet: boolean
}

// == stderr with a live status line

const CLEAR_LINE = "\r\x1b[2K"

const status = { line: "", exitHook: false }

/** Writes one line to stderr, above the live status line if one is shown. */
export const writeStderr = (text: string): void => {
  process.stderr.write(status.line === "" ? `${text}\n` : `${CLEAR_LINE}${text}\n${status.line}`)
}

/** Draws `line` in place of the current status line (a terminal is assumed). */
export const showStatusLine = (line: string): void => {
  if (!status.exitHook) {
    status.exitHook = true
    process.once("exit", clearStatusLine)
  }
  status.line = line
  process.stderr.write(`${CLEAR_LINE}${line}`)
}

/** Erases the status line, leaving the cursor at the start of an empty line. */
export const clearStatusLine = (): void => {
  if (status.line === "") return
  status.line = ""
  process.stderr.write(CLEAR_LINE)
}

// == loggers

const render = (value: unknown): string => (typeof value === "string" ? value : safeJson(value))

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)) ?? String(value)
  } catch {
    return String(value)
  }
}

const messageText = (message: unknown): string =>
  Array.isArray(message) ? message.map(render).join(" ") : render(message)

export const stderrLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  let line = `${date.toISOString()} ${logLevel.label.padEnd(5)} ${messageText(message)}`
  for (const [key, value] of HashMap.toEntries(annotations)) line += ` ${key}=${render(value)}`
  if (!Cause.isEmpty(cause)) line += ` ${Cause.pretty(cause)}`
  writeStderr(line)
})

/** One JSON object per line: `time`, `level`, `message`, the log annotations, and `cause`. */
export const jsonLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const entry: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.label.toLowerCase(),
    message: messageText(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) if (!(key in entry)) entry[key] = value
  if (!Cause.isEmpty(cause)) entry["cause"] = Cause.pretty(cause)
  writeStderr(safeJson(entry))
})

export const loggerLayer = (format: LogFormat): Layer.Layer<never> =>
  Logger.replace(Logger.defaultLogger, format === "json" ? jsonLogger : stderrLogger)

export const LoggingLive = loggerLayer("text")

export const parseLogLevel = (name: string): LogLevel.LogLevel | undefined =>
  LogLevel.allLevels.find((l) => l.label.toLowerCase() === name.toLowerCase() || l._tag.toLowerCase() === name.toLowerCase())

// == options

export const LogFormatConfig: Config.Config<LogFormat> = Config.literal("text", "json")("XML2PG_LOG_FORMAT").pipe(
  Config.withDefault<LogFormat>("text")
)
export const QuietConfig: Config.Config<boolean> = Config.boolean("XML2PG_QUIET").pipe(Config.withDefault(false))

/** Options of the root command, accepted before or after the subcommand. */
export const loggingOptions = {
  logFormat: Options.choice("log-format", ["text", "json"]).pipe(
    Options.withDescription("log lines as plain text or JSON objects, on stderr (env XML2PG_LOG_FORMAT)"),
    Options.withFallbackConfig(LogFormatConfig)
  ),
  quiet: Options.boolean("quiet").pipe(
    Options.withAlias("q"),
    Options.withDescription("print only errors and the final summary (env XML2PG_QUIET)"),
    Options.withFallbackConfig(QuietConfig)
  )
}

/**
 * The logging settings read straight from argv and the environment, for the logger that
 * bin.ts installs before the command line is parsed (so that its own error lines follow
 * `--log-format` too). The parsed options win inside commands.
 */
export const loggingFromArgs = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): LoggingSettings => {
  let format: LogFormat = env["XML2PG_LOG_FORMAT"] === "json" ? "json" : "text"
  let quiet = /^(true|1|yes|on)$/i.test(env["XML2PG_QUIET"] ?? "")
  args.forEach((arg, i) => {
    if (arg === "--quiet" || arg === "-q") quiet = true
    const value = arg.startsWith("--log-format=") ? arg.slice("--log-format=".length) : arg === "--log-format"
      ? args[i + 1]
      : undefined
    if (value === "json" || value === "text") format = value
  })
  return { format, quiet }
}

/** The settings from the root command's options and, where it has them, the subcommand's. */
export const resolveLogging = (
  ...levels: ReadonlyArray<{ readonly logFormat: LogFormat; readonly quiet: boolean }>
): LoggingSettings => ({
  format: levels.some((l) => l.logFormat === "json") ? "json" : "text",
  quiet: levels.some((l) => l.quiet)
})

/**
 * Inside a command: JSON lines only when `format` is json, and errors only when `quiet`.
 * Neither is ever turned off here, since bin.ts may have set them from argv already.
 */
export const withLogging = (settings: LoggingSettings) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    settings.quiet ? Logger.withMinimumLogLevel(LogLevel.Error) : (effect) => effect,
    settings.format === "json" ? Effect.locally(FiberRef.currentLoggers, HashSet.make(jsonLogger)) : (effect) => effect
  )
