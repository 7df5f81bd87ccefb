/**
 * The settings of a load and their defaults, apart from how they are read (Settings.ts), so
 * that the parse worker can guess a load's options without loading Effect's Config.
 *
 * @since 0.1.0
 */

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
   * split; "auto" (default): 2 for a file of 64 MiB or more on a machine of 2 CPUs or more,
   * else 1 (see `parsersFor`). A run keeps the ranges it began with.
   */
  readonly parsers: number | "auto"
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
  // each COPY has a fixed cost to both sides (PostgreSQL 15 sets up to 1000 tuple slots per COPY,
  // the ledger row, the main thread's per-batch work): 20 000 rows against 10 000 cost ~3 MB
  // of peak RSS and saved 8 % of the server's and 25 % of the main thread's CPU (session 20)
  batchRows: 20_000,
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
  parsers: "auto"
}
