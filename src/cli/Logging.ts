/**
 * Logs go to stderr as one plain line each, so stdout carries only what a command prints.
 */
import { Cause, HashMap, Logger, LogLevel } from "effect"

const render = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value))

export const stderrLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const parts = Array.isArray(message) ? message.map(render) : [render(message)]
  let line = `${date.toISOString()} ${logLevel.label.padEnd(5)} ${parts.join(" ")}`
  for (const [key, value] of HashMap.toEntries(annotations)) line += ` ${key}=${render(value)}`
  if (!Cause.isEmpty(cause)) line += ` ${Cause.pretty(cause)}`
  process.stderr.write(line + "\n")
})

export const LoggingLive = Logger.replace(Logger.defaultLogger, stderrLogger)

export const parseLogLevel = (name: string): LogLevel.LogLevel | undefined =>
  LogLevel.allLevels.find((l) => l.label.toLowerCase() === name.toLowerCase() || l._tag.toLowerCase() === name.toLowerCase())
