/**
 * Typed errors of the pipeline. Each has a `message` a user can act on.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The input could not be read (missing file, permission, broken gzip).
 *
 * @since 0.1.0
 * @category errors
 */
export class ReadError extends Data.TaggedError("ReadError")<{
  readonly file: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot read ${this.file}: ${causeMessage(this.cause)}`
  }
}

/**
 * The input is not well-formed XML, or not the expected document.
 *
 * @since 0.1.0
 * @category errors
 */
export class XmlParseError extends Data.TaggedError("XmlParseError")<{
  readonly file: string
  readonly offset: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: XML error at byte ${this.offset}: ${this.reason}`
  }
}

/** What to do next, for the SQLSTATEs a user can act on. */
const hints: Readonly<Record<string, string>> = {
  "42P01": " (run `xml2pg init` first?)",
  // committed batches stay: the same ingest resumes after the last of them
  "53100": " (the database server's disk is full: free space there, then run the same command again to resume)"
}

/**
 * A database operation failed. `sqlState` is the PostgreSQL SQLSTATE or a Node errno.
 *
 * @since 0.1.0
 * @category errors
 */
export class DbError extends Data.TaggedError("DbError")<{
  readonly op: string
  readonly sqlState: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const state = this.sqlState === undefined ? "" : ` [${this.sqlState}]`
    return `database ${this.op} failed${state}: ${causeMessage(this.cause)}${hints[this.sqlState ?? ""] ?? ""}`
  }
}

/**
 * Bad settings: an invalid flag value, config file or connection string.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigurationError extends Data.TaggedError("ConfigurationError")<{
  readonly reason: string
}> {
  override get message(): string {
    return this.reason
  }
}

/**
 * The rejects file could not be written.
 *
 * @since 0.1.0
 * @category errors
 */
export class RejectsWriteError extends Data.TaggedError("RejectsWriteError")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot write rejects file ${this.path}: ${causeMessage(this.cause)}`
  }
}

/**
 * The messages along a cause chain, outermost first, so a wrapper such as SqlError's
 * "Failed to execute statement" is followed by what PostgreSQL said.
 *
 * @internal
 */
export const causeMessage = (cause: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = cause
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const message = current instanceof Error ? current.message : typeof current === "string" ? current : String(current)
    if (message !== "" && !parts.includes(message)) parts.push(message)
    current = typeof current === "object" ? (current as { cause?: unknown }).cause : undefined
  }
  return parts.join(": ")
}

/** @internal */
export const sqlStateOf = (cause: unknown): string | undefined => {
  let current: unknown = cause
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** @internal */
export const toDbError = (op: string) => (cause: unknown): DbError => new DbError({ op, sqlState: sqlStateOf(cause), cause })
