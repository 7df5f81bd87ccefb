/**
 * Pipeline settings as an Effect `Config`, read from `XML2PG_*` environment variables,
 * `.env` or a config file; CLI flags fall back to these. Defaults live here only.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"

/**
 * Everything a load needs besides the connection: schema, writers, queue and batch limits,
 * retries, the rejects file, error limits and the progress interval.
 *
 * @since 0.1.0
 * @category models
 */
export interface IngestSettings {
  /** schema holding every table (quoted, created by `init`) */
  readonly schema: string
  /** concurrent COPY writers, each on its own connection */
  readonly writers: number
  /** batches parsed ahead of the writers: the bounded queue */
  readonly queueSize: number
  readonly batchRows: number
  /** approximate encoded size of a batch */
  readonly batchBytes: number
  readonly retries: number
  /** first retry delay; doubles each attempt, with jitter */
  readonly retryBaseMillis: number
  /** cap on one retry delay */
  readonly retryMaxDelayMillis: number
  /** NDJSON file rejected records are appended to */
  readonly rejectsPath: string
  /** a record (with its nested records) larger than this is rejected */
  readonly maxRecordBytes: number
  readonly progressEveryMillis: number
  /** no recovery from malformed XML: the first break fails the run */
  readonly strict: boolean
  /** stop the run after more rejected records than this; null = no limit */
  readonly maxErrors: number | null
  /** parse on a worker thread, so the main thread's event loop is free for the COPY sockets */
  readonly parseWorker: boolean
  /**
   * parse workers for one plain file, each taking a byte range of it (see Split.ts); 1: no
   * split. A run keeps the ranges it began with.
   */
  readonly parsers: number
}

/**
 * The default of every setting: what the CLI flags and `IngestConfig` fall back to.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaults: IngestSettings = {
  schema: "public",
  writers: 2,
  queueSize: 4,
  batchRows: 10_000,
  batchBytes: 4 * 1024 * 1024,
  retries: 8,
  retryBaseMillis: 200,
  retryMaxDelayMillis: 10_000,
  rejectsPath: "xml2pg-rejects.ndjson",
  maxRecordBytes: 16 * 1024 * 1024,
  progressEveryMillis: 5_000,
  strict: false,
  maxErrors: null,
  parseWorker: true,
  parsers: 1
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
  parsers: Config.integer("XML2PG_PARSERS").pipe(
    Config.validate({ message: "XML2PG_PARSERS must be in 1..64", validation: (n) => n >= 1 && n <= 64 }),
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
