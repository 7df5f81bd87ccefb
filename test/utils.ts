import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { inject } from "vitest"
import { defaults, type IngestSettings } from "../src/config/Settings.js"
import { qualify, quoteIdent } from "../src/db/Identifiers.js"
import {
  canonicalTimestamp,
  type GenerateOptions,
  type GenEvent,
  type GenGroup,
  generateGroups,
  renderXml
} from "../src/generate/Generator.js"
import type { ByteSpan } from "../src/xml/RecordParser.js"
import { Xml2Pg } from "../src/Xml2Pg.js"

/** A seeded generator (mulberry32) of numbers in [0, 1), so a failure can be replayed. */
export const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** A record's byte range as a parser hands it to its sink. */
export const byteSpan = (start: number, end: number): ByteSpan => ({ byteStart: () => start, byteEnd: () => end })

export const databaseUrl = (): Redacted.Redacted<string> => Redacted.make(inject("databaseUrl"))

/** A fresh schema name per test file; `process.pid` alone collides under worker threads. */
/**
 * The environment of a user who set only `extra` (DATABASE_URL, say), for a CLI process a
 * test starts; its code cache goes to the test run's folder (see globalSetup.ts).
 */
export const userEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  PATH: process.env["PATH"],
  HOME: process.env["HOME"],
  XDG_CACHE_HOME: inject("cacheHome"),
  ...extra
})

export const newSchema = (): string => `t_${randomUUID().slice(0, 8)}`

/**
 * The loader over a real database, with `schema` created by `init` and dropped when the
 * layer is released.
 */
export const TestLoader = (schema: string) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const loader = yield* Xml2Pg
    const sql = yield* SqlClient.SqlClient
    yield* loader.init(schema)
    yield* Effect.addFinalizer(() => sql.unsafe(`drop schema if exists ${quoteIdent(schema)} cascade`).pipe(Effect.orDie))
  })).pipe(Layer.provideMerge(Xml2Pg.layer({ url: databaseUrl(), maxConnections: 8 })))

export const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "xml2pg-"))

export const settingsFor = (schema: string, dir: string, overrides: Partial<IngestSettings> = {}): IngestSettings => ({
  ...defaults,
  schema,
  rejectsPath: path.join(dir, "rejects.ndjson"),
  progressEveryMillis: 60_000,
  retryBaseMillis: 20,
  retryMaxDelayMillis: 200,
  ...overrides
})

export const writeXml = (file: string, options: GenerateOptions): void => {
  fs.writeFileSync(file, Array.from(renderXml(options)).join(""))
}

const utc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

export interface GroupRow {
  readonly group_id: string
  readonly code: string
  readonly name: string
  readonly description: string | null
  readonly created_at: string
}
export interface EventRow {
  readonly event_id: string
  readonly group_id: string
  readonly type: string
  readonly occurred_at: string
  readonly severity: number | null
  readonly source: string | null
  readonly payload: string | null
}

/** Staging rows of `runId` in file order, with timestamps as UTC text. */
export const stagedRows = (schema: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const groups = yield* sql.unsafe<GroupRow>(
      `select group_id::text, code, name, description, ${utc("created_at")} as created_at
       from ${qualify(schema, "stg_group_event")} where run_id = $1 order by ord`,
      [runId]
    )
    const events = yield* sql.unsafe<EventRow>(
      `select event_id::text, group_id::text, type, ${utc("occurred_at")} as occurred_at, severity, source, payload
       from ${qualify(schema, "stg_event")} where run_id = $1 order by ord`,
      [runId]
    )
    return { groups, events }
  })

/** A generated group or event in the form the database gives back (timestamps as UTC text). */
export const groupRow = (g: GenGroup): GroupRow => ({
  group_id: g.group_id,
  code: g.code,
  name: g.name,
  description: g.description,
  created_at: canonicalTimestamp(g.created_at)
})
export const eventRow = (e: GenEvent): EventRow => ({
  event_id: e.event_id,
  group_id: e.group_id,
  type: e.type,
  occurred_at: canonicalTimestamp(e.occurred_at),
  severity: e.severity === null ? null : Number(e.severity),
  source: e.source,
  payload: e.payload
})

/** What the generator says the staging tables must hold, in the same form as `stagedRows`. */
export const expectedRows = (options: GenerateOptions) => {
  const groups: Array<GroupRow> = []
  const events: Array<EventRow> = []
  for (const g of generateGroups(options)) {
    groups.push(groupRow(g))
    for (const e of g.events) events.push(eventRow(e))
  }
  return { groups, events }
}
