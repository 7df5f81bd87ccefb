/**
 * Finalize against its bare SQL: the statements a `finalize` run executed (logged at debug
 * level as `finalize statement {json}`) are written out as a psql script, with their
 * parameters inlined and the schema renamed to a twin schema holding the same staging rows,
 * and timed through `psql -f`. The ratio of the two is finalize's own overhead: process
 * start-up, connecting, the schema lock, inspection queries and round trips.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { spawnSync } from "node:child_process"
import Pg from "pg"
import { BenchError, type Measured, runMeasured, tail } from "./Child.js"

export interface LoggedStatement {
  readonly step: string
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly millis: number
}

const MARK = "finalize statement "

/** The end of the JSON value starting at `text[start]` (an object or array), or -1. */
const jsonEnd = (text: string, start: number): number => {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === "\\") i++
      else if (c === "\"") inString = false
    } else if (c === "\"") inString = true
    else if (c === "{" || c === "[") depth++
    else if (c === "}" || c === "]") {
      if (--depth === 0) return i + 1
    }
  }
  return -1
}

/** The statements a finalize child logged, in order. */
export const loggedStatements = (measured: Measured): Array<LoggedStatement> =>
  measured.stderrLines.flatMap(({ line }) => {
    const at = line.indexOf(MARK)
    if (at < 0) return []
    const start = at + MARK.length
    const end = jsonEnd(line, start)
    if (end < 0) return []
    try {
      return [JSON.parse(line.slice(start, end)) as LoggedStatement]
    } catch {
      return []
    }
  })

const { escapeLiteral } = Pg

/** A parameter as an SQL literal (untyped, as a bound text parameter would be). */
export const literal = (value: unknown): string => {
  if (value === null || value === undefined) return "NULL"
  if (typeof value === "number" || typeof value === "bigint") return String(value)
  if (typeof value === "boolean") return value ? "true" : "false"
  if (Array.isArray(value)) {
    return escapeLiteral(`{${value.map((v) => (typeof v === "number" ? String(v) : JSON.stringify(String(v)))).join(",")}}`)
  }
  return escapeLiteral(typeof value === "string" ? value : JSON.stringify(value))
}

/** `$n` placeholders replaced by the literals of `params`. */
export const inline = (sql: string, params: ReadonlyArray<unknown>): string =>
  sql.replace(/\$(\d+)/g, (whole, n: string) => (Number(n) <= params.length ? literal(params[Number(n) - 1]) : whole))

/**
 * A psql script running `statements` as finalize did: the bookkeeping DDL first, then the
 * rest in one transaction. `rename` maps the logged schema to the twin's.
 */
export const psqlScript = (statements: ReadonlyArray<LoggedStatement>, rename: (sql: string) => string): string => {
  const out = ["\\set ON_ERROR_STOP on", "\\timing on"]
  let inTransaction = false
  for (const s of statements) {
    if (!inTransaction && s.step !== "create bookkeeping tables") {
      out.push("BEGIN;")
      inTransaction = true
    }
    out.push(`-- ${s.step} (finalize: ${s.millis.toFixed(1)} ms)`, `${rename(inline(s.sql, s.params))};`)
  }
  if (inTransaction) out.push("COMMIT;")
  return out.join("\n") + "\n"
}

/** True when `psql` runs here. */
export const psqlAvailable = (): boolean => {
  try {
    return spawnSync("psql", ["--version"], { stdio: "ignore" }).status === 0
  } catch {
    return false
  }
}

/** The connection URL as libpq variables, so no password shows on a command line. */
export const libpqEnv = (url: string): Record<string, string> => {
  const u = new URL(url)
  const env: Record<string, string> = {}
  const put = (key: string, value: string | null) => {
    if (value !== null && value !== "") env[key] = decodeURIComponent(value)
  }
  put("PGHOST", u.hostname.replace(/^\[(.*)\]$/, "$1"))
  put("PGPORT", u.port)
  put("PGUSER", u.username)
  put("PGPASSWORD", u.password)
  put("PGDATABASE", u.pathname.replace(/^\//, ""))
  put("PGSSLMODE", u.searchParams.get("sslmode"))
  put("PGHOST", u.searchParams.get("host"))
  return env
}

/**
 * Writes the script of `finalizeRun`'s statements, renamed from `schema` to `twin`, to
 * `scriptFile`, and runs it with `psql -f` against `url`.
 */
export const runBareSql = (options: {
  readonly finalizeRun: Measured
  readonly schema: string
  readonly twin: string
  readonly scriptFile: string
  readonly url: string
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
}) =>
  Effect.gen(function*() {
    const statements = loggedStatements(options.finalizeRun)
    if (statements.length === 0) {
      return yield* new BenchError({ message: "finalize logged no statements: is its log level debug?" })
    }
    // schema names the bench makes are plain identifiers, and the twin's name is the schema's plus a suffix
    const rename = (sql: string) => sql.split(options.schema).join(options.twin)
    yield* Effect.sync(() => fs.writeFileSync(options.scriptFile, psqlScript(statements, rename)))
    const measured = yield* runMeasured({
      args: ["psql", "-X", "-q", "-f", options.scriptFile],
      env: { ...options.env, ...libpqEnv(options.url) },
      cwd: options.cwd,
      executable: true
    })
    if (measured.code !== 0) {
      return yield* new BenchError({ message: `psql -f ${options.scriptFile} failed: ${tail(measured.stderr)}` })
    }
    return { measured, statements: statements.length, finalizeSqlMillis: statements.reduce((n, s) => n + s.millis, 0) }
  })
