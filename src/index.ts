/**
 * xml2pg as a library: stream XML of any size into PostgreSQL from your own Effect app.
 *
 * @since 0.1.0
 */
export { defaults, IngestConfig, type IngestSettings, SettingConfigs } from "./config/Settings.js"
export { ConnectionConfig, describeUrl, resolveDatabaseUrl } from "./db/Connection.js"
export { startEmbedded } from "./db/Embedded.js"
export {
  finalize,
  type FinalizeOptions,
  type FinalizeReport,
  finalizeStatements,
  type TableReport
} from "./db/Finalize.js"
export { LockBusyError, withSchemaLock } from "./db/Locks.js"
export { DatabaseLive, PgPool, type PoolSettings, SqlFromPool } from "./db/PgPool.js"
export { isTransient, retryPolicy, type RetrySettings } from "./db/Retry.js"
export { cleanStaging, initSchema, schemaStatements } from "./db/Staging.js"
export { status, type StatusReport } from "./db/Status.js"
export { ConfigurationError, DbError, ReadError, RejectsWriteError, XmlParseError } from "./Errors.js"
export { canonicalTimestamp, type GenerateOptions, generateGroups, renderXml, writeSample } from "./generate/Generator.js"
export * as Metrics from "./metrics/Metrics.js"
export * as MetricsServer from "./metrics/MetricsServer.js"
export type { Batch, BatchLimits } from "./pipeline/Batch.js"
export {
  type IngestError,
  ingestFile,
  type IngestOptions,
  type IngestSummary,
  ResumeError,
  TooManyRejectsError
} from "./pipeline/Ingest.js"
export { logProgress, type ProgressReporter, type ProgressSnapshot } from "./pipeline/Progress.js"
export { makeRejectsFile, type RejectLine, type RejectsFile } from "./pipeline/RejectsFile.js"
export { Event, Group, GroupsDocument } from "./shape/GroupEvents.js"
export {
  attribute,
  child,
  type Column,
  type DocumentShape,
  parentKey,
  type RecordShape,
  recordShapes,
  ValueType,
  type ValueTypeSpec
} from "./shape/Shape.js"
export { makeParseWorkers, type ParseWorker, type ParseWorkers } from "./xml/ParseThread.js"
export type { Reject } from "./xml/RecordParser.js"
export { type IngestRequest, Xml2Pg } from "./Xml2Pg.js"
