/**
 * Pipeline settings as an Effect `Config`, read from `XML2PG_*` environment variables,
 * `.env` or a config file; CLI flags fall back to these. The defaults are in Defaults.ts.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { defaults, type IngestSettings } from "./Defaults.js"

export { defaults, type IngestSettings }

/** A `parsers` setting from text: "auto", or a whole number in 1..64; undefined if neither. */
export const parseParsers = (text: string): number | "auto" | undefined => {
  if (text === "auto") return "auto"
  const n = /^[1-9][0-9]?$/.test(text) ? Number(text) : 0
  return n >= 1 && n <= 64 ? n : undefined
}

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/**
 * Each setting and the variable it is read from.
 *
 * @since 0.1.0
 * @category config
 */
export const SettingConfigs = {
  schema: Config.string("XML2PG_SCHEMA").pipe(Config.withDefault(defaults.schema)),
  writers: positive("XML2PG_WRITERS", defaults.writers),
  queueSize: positive("XML2PG_QUEUE_SIZE", defaults.queueSize),
  batchRows: positive("XML2PG_BATCH_ROWS", defaults.batchRows),
  batchBytes: positive("XML2PG_BATCH_BYTES", defaults.batchBytes),
  retries: Config.integer("XML2PG_RETRIES").pipe(
    Config.validate({ message: "XML2PG_RETRIES must be ≥ 0", validation: (n) => n >= 0 }),
    Config.withDefault(defaults.retries)
  ),
  retryBaseMillis: positive("XML2PG_RETRY_BASE_MS", defaults.retryBaseMillis),
  retryMaxDelayMillis: positive("XML2PG_RETRY_MAX_DELAY_MS", defaults.retryMaxDelayMillis),
  rejectsPath: Config.string("XML2PG_REJECTS").pipe(Config.withDefault(defaults.rejectsPath)),
  maxRecordBytes: positive("XML2PG_MAX_RECORD_BYTES", defaults.maxRecordBytes),
  progressEveryMillis: positive("XML2PG_PROGRESS_EVERY_MS", defaults.progressEveryMillis),
  strict: Config.boolean("XML2PG_STRICT").pipe(Config.withDefault(defaults.strict)),
  maxErrors: Config.integer("XML2PG_MAX_ERRORS").pipe(
    Config.validate({ message: "XML2PG_MAX_ERRORS must be ≥ 0", validation: (n) => n >= 0 }),
    Config.option,
    Config.map(Option.getOrNull)
  ),
  parseWorker: Config.boolean("XML2PG_PARSE_WORKER").pipe(Config.withDefault(defaults.parseWorker)),
  parsers: Config.string("XML2PG_PARSERS").pipe(
    Config.mapOrFail((text) => {
      const parsers = parseParsers(text)
      return parsers === undefined
        ? Either.left(ConfigError.InvalidData([], "XML2PG_PARSERS must be auto or in 1..64"))
        : Either.right(parsers)
    }),
    Config.withDefault(defaults.parsers)
  )
} as const

/**
 * All settings at once, for embedding apps.
 *
 * @since 0.1.0
 * @category config
 */
export const IngestConfig: Config.Config<IngestSettings> = Config.all(SettingConfigs)
