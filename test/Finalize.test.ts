import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"
import { finalize, type FinalizeReport, finalizeStatements, type TableReport } from "../src/db/Finalize.js"
import { qualify, quoteIdent } from "../src/db/Identifiers.js"
import { withSchemaLock } from "../src/db/Locks.js"
import { status } from "../src/db/Status.js"
import { canonicalTimestamp, type GenerateOptions } from "../src/generate/Generator.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { Xml2Pg } from "../src/Xml2Pg.js"
import {
  type EventRow,
  expectedRows,
  type GroupRow,
  newSchema,
  settingsFor,
  TestLoader,
  tmpDir,
  writeXml
} from "./utils.js"

const dir = tmpDir()
let fileNo = 0

// == hand-written XML and the rows it must end up as

interface G {
  readonly id: number
  readonly code: string
  readonly name: string
  readonly description?: string
  readonly createdAt: string
  /** renders an invalid created_at, so ingest rejects the group and its events */
  readonly bad?: boolean
  readonly events: ReadonlyArray<E>
}
interface E {
  readonly id: number
  readonly type: string
  readonly occurredAt: string
  readonly severity?: number
  readonly payload?: string
  /** renders severity="9", so ingest rejects this occurrence */
  readonly bad?: boolean
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const renderEvent = (e: E) =>
  `<event id="${e.id}" type="${esc(e.type)}" occurred_at="${e.occurredAt}"` +
  (e.bad ? ` severity="9"` : e.severity === undefined ? "" : ` severity="${e.severity}"`) +
  (e.payload === undefined ? "/>" : `><payload>${esc(e.payload)}</payload></event>`)

const renderGroup = (g: G) =>
  `<group id="${g.id}" code="${esc(g.code)}" created_at="${g.bad ? "yesterday" : g.createdAt}">` +
  `<name>${esc(g.name)}</name>` +
  (g.description === undefined ? "" : `<description>${esc(g.description)}</description>`) +
  g.events.map(renderEvent).join("") + `</group>`

const writeGroups = (groups: ReadonlyArray<G>): string => {
  const file = path.join(dir, `hand-${++fileNo}.xml`)
  const body = groups.map(renderGroup).join("\n")
  fs.writeFileSync(file, `<?xml version="1.0" encoding="UTF-8"?>\n<groups>\n${body}\n</groups>\n`)
  return file
}

interface Expected {
  readonly groups: Map<string, GroupRow>
  readonly events: Map<string, EventRow>
}

const emptyExpected = (): Expected => ({ groups: new Map(), events: new Map() })

/** Last accepted occurrence wins: later files over earlier ones, later records over earlier ones. */
const applyGroups = (expected: Expected, groups: ReadonlyArray<G>): Expected => {
  for (const g of groups) {
    if (g.bad) continue
    expected.groups.set(String(g.id), {
      group_id: String(g.id),
      code: g.code,
      name: g.name,
      description: g.description ?? null,
      created_at: canonicalTimestamp(g.createdAt)
    })
    for (const e of g.events) {
      if (e.bad) continue
      expected.events.set(String(e.id), {
        event_id: String(e.id),
        group_id: String(g.id),
        type: e.type,
        occurred_at: canonicalTimestamp(e.occurredAt),
        severity: e.severity ?? null,
        source: null,
        payload: e.payload ?? null
      })
    }
  }
  return expected
}

const applyGenerated = (expected: Expected, options: GenerateOptions): Expected => {
  const rows = expectedRows(options)
  rows.groups.forEach((g) => expected.groups.set(g.group_id, g))
  rows.events.forEach((e) => expected.events.set(e.event_id, e))
  return expected
}

const sorted = <A>(m: Map<string, A>): Array<A> =>
  Array.from(m.entries()).sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1)).map(([, v]) => v)

// == database helpers

const utc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

const finalRows = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const groups = yield* sql.unsafe<GroupRow>(
      `select group_id::text, code, name, description, ${utc("created_at")} as created_at
       from ${qualify(schema, "group_event")} t order by t.group_id`
    )
    const events = yield* sql.unsafe<EventRow>(
      `select event_id::text, group_id::text, type, ${utc("occurred_at")} as occurred_at, severity, source, payload
       from ${qualify(schema, "event")} t order by t.event_id`
    )
    return { groups: Array.from(groups), events: Array.from(events) }
  })

const assertFinal = (schema: string, expected: Expected) =>
  Effect.gen(function*() {
    const rows = yield* finalRows(schema)
    assert.deepStrictEqual(rows.groups, sorted(expected.groups))
    assert.deepStrictEqual(rows.events, sorted(expected.events))
  })

/** Every row of the final tables with its row version: equal only if nothing was written. */
const snapshot = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [r] = yield* sql.unsafe<{ g: string | null; e: string | null; o: string | null }>(
      `select (select md5(string_agg(t.xmin::text || ':' || t::text, '|' order by group_id)) from ${
        qualify(schema, "group_event")
      } t) as g,
        (select md5(string_agg(t.xmin::text || ':' || t::text, '|' order by event_id)) from ${
        qualify(schema, "event")
      } t) as e,
        (select md5(string_agg(t::text, '|' order by table_name, run_id, ord)) from ${
        qualify(schema, "xml2pg_orphan")
      } t) as o`
    )
    return r!
  })

const count = (schema: string, table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(schema, table)}`)).pipe(
      Effect.map((r) => r[0]!.n)
    )

const constraints = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ name: string }>(
      `select conname as name from pg_constraint c join pg_namespace n on n.oid = c.connamespace
       where n.nspname = $1 and c.contype in ('p', 'f', 'u') order by conname`,
      [schema]
    )).pipe(Effect.map((rows) => rows.map((r) => r.name)))

const indexes = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ def: string }>(
      `select indexdef as def from pg_indexes where schemaname = $1 and tablename in ('group_event', 'event')
       order by indexname`,
      [schema]
    )).pipe(Effect.map((rows) => rows.map((r) => r.def.replace(/^.* USING /, ""))))

/** A fresh schema, initialised, dropped after `f`. */
const withSchema = <A, E, R>(f: (schema: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.gen(function*() {
      const schema = newSchema()
      yield* (yield* Xml2Pg).init(schema)
      return schema
    }),
    f,
    (schema) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`drop schema if exists ${quoteIdent(schema)} cascade`))
        .pipe(Effect.orDie)
  )

const ingest = (schema: string, ...files: Array<string>) =>
  Effect.flatMap(Xml2Pg, (loader) =>
    loader.ingest({ files, settings: settingsFor(schema, dir, { batchRows: 50, writers: 2 }) }))

const run = (schema: string, options: { keepStaging?: boolean; wait?: boolean } = {}) =>
  finalize(GroupsDocument, schema, { keepStaging: options.keepStaging ?? false, wait: options.wait ?? false })

const tableReport = (r: FinalizeReport, table: string): Omit<TableReport, "table" | "stagingTable"> => {
  const { stagingTable: _s, table: _t, ...rest } = r.tables.find((t) => t.table === table)!
  return rest
}

const ts = (second: number) => `2026-03-01T10:00:${String(second).padStart(2, "0")}Z`

// == tests

layer(TestLoader(newSchema()), { excludeTestServices: true, timeout: 120_000 })("finalize", (it) => {
  it.effect("in-file duplicates: the last accepted occurrence wins, keys and indexes are built", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const groups: Array<G> = [
          { id: 1, code: "A", name: "first", createdAt: ts(1), events: [
            { id: 10, type: "click", occurredAt: ts(2), severity: 1 },
            { id: 11, type: "view", occurredAt: ts(3), payload: "kept" }
          ] },
          { id: 2, code: "B", name: "two", description: "d", createdAt: ts(4), events: [
            { id: 12, type: "view", occurredAt: ts(5) }
          ] },
          // group 1 again: new values; event 10 moves here from its first occurrence
          { id: 1, code: "A2", name: "second", description: "now with one", createdAt: ts(6), events: [
            { id: 13, type: "buy", occurredAt: ts(7) }
          ] },
          { id: 3, code: "C", name: "three", createdAt: ts(8), events: [
            { id: 10, type: "moved", occurredAt: ts(9), severity: 7 },
            // a rejected later occurrence never overrides the accepted one
            { id: 11, type: "rejected", occurredAt: ts(10), bad: true }
          ] },
          // a rejected group (and its events) override nothing either
          { id: 2, code: "B-bad", name: "bad", createdAt: ts(11), bad: true, events: [
            { id: 12, type: "bad", occurredAt: ts(12) }
          ] },
          { id: 1, code: "A3", name: "third", createdAt: ts(13), events: [] }
        ]
        const file = writeGroups(groups)
        const [summary] = yield* ingest(schema, file)
        assert.strictEqual(summary!.rejected, 3)

        const report = yield* run(schema)
        assert.strictEqual(report.mode, "first-load")
        assert.deepStrictEqual(report.runs, [summary!.runId])
        assert.deepStrictEqual(tableReport(report, "group_event"), {
          staged: 5,
          duplicates: 2,
          orphans: 0,
          orphansKept: 0,
          inserted: 3,
          updated: 0,
          unchanged: 0
        })
        assert.deepStrictEqual(tableReport(report, "event"), {
          staged: 5,
          duplicates: 1,
          orphans: 0,
          orphansKept: 0,
          inserted: 4,
          updated: 0,
          unchanged: 0
        })
        yield* assertFinal(schema, applyGroups(emptyExpected(), groups))
        const final = yield* finalRows(schema)
        assert.deepStrictEqual(final.events.find((e) => e.event_id === "10")!.group_id, "3")

        assert.deepStrictEqual(yield* constraints(schema), [
          "event_group_id_fkey",
          "event_pkey",
          "group_event_pkey",
          "xml2pg_batch_pkey",
          "xml2pg_finalize_pkey",
          "xml2pg_orphan_pkey",
          "xml2pg_run_pkey"
        ])
        assert.deepStrictEqual(yield* indexes(schema), [
          "btree (group_id)",
          "btree (occurred_at)",
          "btree (event_id)",
          "btree (created_at)",
          "btree (group_id)"
        ])
        assert.strictEqual(yield* count(schema, "stg_group_event"), 0)
        assert.strictEqual(yield* count(schema, "stg_event"), 0)
        assert.isTrue(report.stagingRemoved)
        const steps = report.steps.map((s) => s.step)
        for (const s of ["load group_event", "orphans event", "load event", "primary key event", "analyze", "commit"]) {
          assert.include(steps, s)
        }
      })
    ))

  it.effect("cross-run merge of generated files equals the generator's last-wins rows; a re-run updates nothing", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const a = { groups: 300, eventsPerGroup: 2, seed: 1 }
        const b = { groups: 200, eventsPerGroup: 3, seed: 2 }
        const fileA = path.join(dir, "merge-a.xml")
        const fileB = path.join(dir, "merge-b.xml")
        writeXml(fileA, a)
        writeXml(fileB, b)
        const expected = applyGenerated(emptyExpected(), a)

        yield* ingest(schema, fileA)
        const first = yield* run(schema)
        assert.strictEqual(first.mode, "first-load")
        yield* assertFinal(schema, expected)

        yield* ingest(schema, fileB)
        const second = yield* run(schema)
        assert.strictEqual(second.mode, "merge")
        const known = new Set(expected.events.keys())
        const newEvents = expectedRows(b).events.filter((e) => !known.has(e.event_id)).length
        applyGenerated(expected, b)
        yield* assertFinal(schema, expected)
        const g = tableReport(second, "group_event")
        assert.strictEqual(g.staged, 200)
        assert.strictEqual(g.inserted, 0)
        assert.strictEqual(g.updated + g.unchanged, 200)
        assert.isAbove(g.updated, 150)
        const e = tableReport(second, "event")
        assert.strictEqual(e.staged, 600)
        assert.strictEqual(e.inserted, newEvents)
        assert.strictEqual(e.updated + e.unchanged, 600 - newEvents)
        assert.isAbove(e.updated, 400)

        // the same file again: every winner equals its final row, nothing is written
        const before = yield* snapshot(schema)
        yield* ingest(schema, fileB)
        const again = yield* run(schema)
        assert.deepStrictEqual(tableReport(again, "group_event"), {
          staged: 200,
          duplicates: 0,
          orphans: 0,
          orphansKept: 0,
          inserted: 0,
          updated: 0,
          unchanged: 200
        })
        assert.deepStrictEqual([tableReport(again, "event").inserted, tableReport(again, "event").updated], [0, 0])
        assert.deepStrictEqual(yield* snapshot(schema), before)

        // a third run: new ids next to existing ones, and an event moving to a new group
        const third: Array<G> = [
          { id: 5000, code: "N", name: "new", createdAt: ts(1), events: [
            { id: 7, type: "moved", occurredAt: ts(2) },
            { id: 9000, type: "new", occurredAt: ts(3), payload: "fresh" }
          ] }
        ]
        yield* ingest(schema, writeGroups(third))
        const r3 = yield* run(schema)
        applyGroups(expected, third)
        yield* assertFinal(schema, expected)
        const e3 = tableReport(r3, "event")
        assert.deepStrictEqual([tableReport(r3, "group_event").inserted, e3.inserted, e3.updated], [1, 1, 1])
      })
    ))

  /** Takes a group out of staging, so that its events name a parent that exists nowhere. */
  const unstageGroup = (schema: string, id: number) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.unsafe(`delete from ${qualify(schema, "stg_group_event")} where group_id = ${id}`))

  it.effect("a first load with no key staged twice loads every row as staged, orphans set aside", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const groups: Array<G> = [
          { id: 1, code: "A", name: "one", createdAt: ts(1), events: [
            { id: 1, type: "a", occurredAt: ts(2), severity: 3, payload: "p\tq" },
            { id: 2, type: "b", occurredAt: ts(3) }
          ] },
          { id: 2, code: "B", name: "two", description: "d", createdAt: ts(4), events: [
            { id: 3, type: "c", occurredAt: ts(5) }
          ] },
          { id: 3, code: "C", name: "three", createdAt: ts(6), events: [{ id: 4, type: "d", occurredAt: ts(7) }] }
        ]
        yield* ingest(schema, writeGroups(groups))
        // group 2 leaves staging: its event 3 names a parent that exists nowhere
        yield* unstageGroup(schema, 2)

        const report = yield* run(schema)
        assert.strictEqual(report.mode, "first-load")
        assert.deepStrictEqual(tableReport(report, "event"), {
          staged: 4,
          duplicates: 0,
          orphans: 1,
          orphansKept: 0,
          inserted: 3,
          updated: 0,
          unchanged: 0
        })
        assert.strictEqual(tableReport(report, "group_event").inserted, 2)
        yield* assertFinal(schema, applyGroups(emptyExpected(), [groups[0]!, groups[2]!]))
        const orphans = yield* (yield* SqlClient.SqlClient).unsafe<{ record_id: string }>(
          `select record_id from ${qualify(schema, "xml2pg_orphan")}`
        )
        assert.deepStrictEqual(orphans.map((o) => o.record_id), ["3"])
        assert.include(report.steps.map((s) => s.step), "count keys event")
      })
    ))

  it.effect("orphans are set aside with their reason; an existing final row is kept", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const first: Array<G> = [
          { id: 1, code: "A", name: "one", createdAt: ts(1), events: [
            { id: 1, type: "a", occurredAt: ts(2) },
            { id: 2, type: "b", occurredAt: ts(3) }
          ] }
        ]
        yield* ingest(schema, writeGroups(first))
        yield* run(schema)
        const second: Array<G> = [
          { id: 7, code: "G", name: "seven", createdAt: ts(4), events: [
            { id: 2, type: "b-new", occurredAt: ts(5) },
            { id: 3, type: "c", occurredAt: ts(6) }
          ] },
          { id: 1, code: "A", name: "one", createdAt: ts(1), events: [{ id: 4, type: "d", occurredAt: ts(7) }] }
        ]
        const [s2] = yield* ingest(schema, writeGroups(second))
        // group 7 disappears from staging: its events now belong to a group that exists nowhere
        yield* unstageGroup(schema, 7)

        const report = yield* run(schema)
        assert.strictEqual(report.mode, "merge")
        assert.deepStrictEqual(tableReport(report, "event"), {
          staged: 3,
          duplicates: 0,
          orphans: 2,
          orphansKept: 1,
          inserted: 1,
          updated: 0,
          unchanged: 0
        })
        const expected = applyGroups(emptyExpected(), first)
        applyGroups(expected, [{ ...second[1]! }])
        yield* assertFinal(schema, expected)
        const sql = yield* SqlClient.SqlClient
        const orphans = yield* sql.unsafe<{
          record_id: string
          parent_id: string
          reason: string
          kept_existing: boolean
          run_id: number
          type: string
        }>(
          `select record_id, parent_id, reason, kept_existing, run_id, record->>'type' as type
           from ${qualify(schema, "xml2pg_orphan")} order by record_id`
        )
        assert.deepStrictEqual(Array.from(orphans), [
          {
            record_id: "2",
            parent_id: "7",
            reason: "group group_id = 7 found neither in staging nor in group_event; the existing row in event is kept",
            kept_existing: true,
            run_id: s2!.runId,
            type: "b-new"
          },
          {
            record_id: "3",
            parent_id: "7",
            reason: "group group_id = 7 found neither in staging nor in group_event",
            kept_existing: false,
            run_id: s2!.runId,
            type: "c"
          }
        ])
        const st = yield* status(GroupsDocument, schema)
        assert.deepStrictEqual(st.orphans, [{ table: "event", rows: 2 }])
      })
    ))

  it.effect("a second finalize in a row changes nothing, with or without --keep-staging", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const file = writeGroups([
          { id: 1, code: "A", name: "one", createdAt: ts(1), events: [{ id: 1, type: "a", occurredAt: ts(2) }] },
          { id: 1, code: "A", name: "uno", createdAt: ts(1), events: [{ id: 2, type: "b", occurredAt: ts(3) }] }
        ])
        const [summary] = yield* ingest(schema, file)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(
          `insert into ${qualify(schema, "stg_event")} (run_id, batch_seq, ord, event_id, group_id, type, occurred_at)
           values ($1, 99, 99, 50, 404, 'orphan', now())`,
          [summary!.runId]
        )
        const kept = yield* run(schema, { keepStaging: true })
        assert.strictEqual(kept.mode, "first-load")
        assert.isFalse(kept.stagingRemoved)
        assert.strictEqual(yield* count(schema, "stg_event"), 3)
        assert.isFalse((yield* status(GroupsDocument, schema)).finalizePending)
        const before = yield* snapshot(schema)

        const again = yield* run(schema, { keepStaging: true })
        assert.strictEqual(again.mode, "merge")
        assert.deepStrictEqual(tableReport(again, "event"), {
          staged: 3,
          duplicates: 0,
          orphans: 1,
          orphansKept: 0,
          inserted: 0,
          updated: 0,
          unchanged: 2
        })
        assert.deepStrictEqual(yield* snapshot(schema), before)

        const consumed = yield* run(schema)
        assert.isTrue(consumed.stagingRemoved)
        assert.deepStrictEqual(yield* snapshot(schema), before)
        assert.strictEqual(yield* count(schema, "stg_event"), 0)
        const st = yield* status(GroupsDocument, schema)
        assert.isFalse(st.finalizePending)

        const nothing = yield* run(schema)
        assert.strictEqual(nothing.mode, "nothing-to-do")
        assert.isTrue(nothing.tables.every((t) => t.staged === 0 && t.inserted === 0 && t.updated === 0))
        assert.deepStrictEqual(yield* snapshot(schema), before)
        assert.strictEqual(yield* count(schema, "xml2pg_finalize"), 3)
      })
    ))

  it.effect("a failure at the last step of a first load leaves everything as it was; a re-run completes", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const options = { groups: 50, eventsPerGroup: 2, seed: 3 }
        const file = path.join(dir, "fail-first.xml")
        writeXml(file, options)
        yield* ingest(schema, file)
        for (const statement of finalizeStatements(schema)) yield* sql.unsafe(statement)
        const history = qualify(schema, "xml2pg_finalize")
        yield* sql.unsafe(`create function ${qualify(schema, "boom")}() returns trigger language plpgsql as
          $$ begin raise exception 'injected failure'; end $$`)
        yield* sql.unsafe(
          `create trigger boom before insert on ${history} for each row execute function ${qualify(schema, "boom")}()`
        )

        const error = yield* Effect.flip(run(schema))
        assert.strictEqual(error._tag, "DbError")
        assert.include(error.message, "injected failure")
        assert.strictEqual(yield* count(schema, "group_event"), 0)
        assert.strictEqual(yield* count(schema, "event"), 0)
        assert.strictEqual(yield* count(schema, "stg_group_event"), 50)
        assert.strictEqual(yield* count(schema, "stg_event"), 100)
        assert.deepStrictEqual(
          (yield* constraints(schema)).filter((c) => c.startsWith("event") || c.startsWith("group")),
          []
        )

        yield* sql.unsafe(`drop trigger boom on ${history}`)
        const report = yield* run(schema)
        assert.strictEqual(report.mode, "first-load")
        yield* assertFinal(schema, applyGenerated(emptyExpected(), options))
      })
    ))

  it.effect("a failure in the middle of a merge leaves the final tables untouched; a re-run completes", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const a = { groups: 40, eventsPerGroup: 2, seed: 4 }
        const b = { groups: 60, eventsPerGroup: 2, seed: 5 }
        const fileA = path.join(dir, "fail-a.xml")
        const fileB = path.join(dir, "fail-b.xml")
        writeXml(fileA, a)
        writeXml(fileB, b)
        yield* ingest(schema, fileA)
        yield* run(schema)
        const before = yield* snapshot(schema)
        yield* ingest(schema, fileB)
        // group_event merges first, then event fails on its 100th row
        const event = qualify(schema, "event")
        yield* sql.unsafe(`create function ${qualify(schema, "boom")}() returns trigger language plpgsql as
          $$ begin if new.event_id = 100 then raise exception 'injected failure'; end if; return new; end $$`)
        yield* sql.unsafe(
          `create trigger boom before insert or update on ${event} for each row execute function ${
            qualify(schema, "boom")
          }()`
        )
        const error = yield* Effect.flip(run(schema))
        assert.include(error.message, "injected failure")
        assert.deepStrictEqual(yield* snapshot(schema), before)
        assert.strictEqual(yield* count(schema, "stg_event"), 120)

        yield* sql.unsafe(`drop trigger boom on ${event}`)
        const report = yield* run(schema)
        assert.strictEqual(report.mode, "merge")
        yield* assertFinal(schema, applyGenerated(applyGenerated(emptyExpected(), a), b))
      })
    ))

  it.effect("two finalizes cannot interleave: the second fails fast, or waits with wait: true", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const options = { groups: 30, eventsPerGroup: 2, seed: 6 }
        const file = path.join(dir, "lock.xml")
        writeXml(file, options)
        yield* ingest(schema, file)

        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* withSchemaLock(schema, "exclusive", { wait: false })(
          Deferred.succeed(held, undefined).pipe(Effect.zipRight(Deferred.await(release)))
        ).pipe(Effect.fork)
        yield* Deferred.await(held)

        const busy = yield* Effect.flip(run(schema))
        assert.strictEqual(busy._tag, "LockBusyError")
        assert.strictEqual(
          busy.message,
          `another finalize or ingest is running on schema ${schema}; use --wait to wait`
        )
        const shared = yield* Effect.flip(withSchemaLock(schema, "shared", { wait: false })(Effect.void))
        assert.strictEqual(shared._tag, "LockBusyError")

        const waiting = yield* run(schema, { wait: true }).pipe(Effect.fork)
        yield* Effect.sleep("300 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
        assert.strictEqual(yield* count(schema, "group_event"), 0)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        const report = yield* Fiber.join(waiting)
        assert.strictEqual(report.mode, "first-load")
        yield* assertFinal(schema, applyGenerated(emptyExpected(), options))

        // two at once: one does the work, the other finds nothing left
        yield* ingest(schema, file)
        const both = yield* Effect.all([run(schema, { wait: true }), run(schema, { wait: true })], {
          concurrency: 2
        })
        assert.deepStrictEqual(both.map((r) => r.mode).sort(), ["merge", "nothing-to-do"])
        yield* assertFinal(schema, applyGenerated(emptyExpected(), options))
      })
    ))

  it.effect("a finalize during an ingest fails fast, or waits for it and consumes all of it", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const options = { groups: 4000, eventsPerGroup: 3, seed: 8 }
        const file = path.join(dir, "during-ingest.xml")
        writeXml(file, options)
        const loader = yield* Xml2Pg
        const loading = yield* loader.ingest({
          files: [file],
          settings: settingsFor(schema, dir, { batchRows: 200, writers: 1, queueSize: 1 })
        }).pipe(Effect.fork)
        const ingestHoldsLock = sql<{ n: number }>`select count(*)::int as n from pg_locks
          where locktype = 'advisory' and granted and mode = 'ShareLock' and objsubid = 1
            and objid::bigint = (hashtext('xml2pg:' || ${schema}::text)::bigint & 4294967295)`.pipe(
            Effect.map((r) => r[0]!.n > 0)
          )
        while (!(yield* ingestHoldsLock)) {
          assert.isTrue(Option.isNone(yield* Fiber.poll(loading)), "the ingest ended before it was seen holding its lock")
          yield* Effect.sleep("10 millis")
        }

        const busy = yield* Effect.flip(run(schema))
        assert.strictEqual(busy._tag, "LockBusyError")
        const report = yield* run(schema, { wait: true })
        const [summary] = yield* Fiber.join(loading)
        assert.strictEqual(summary!.state, "done")
        assert.deepStrictEqual(report.runs, [summary!.runId])
        assert.strictEqual(tableReport(report, "event").staged, 12_000)
        yield* assertFinal(schema, applyGenerated(emptyExpected(), options))
        assert.strictEqual(yield* count(schema, "stg_event"), 0)
      })
    ))

  it.effect("shared locks coexist; an interrupted waiter leaves no lock request behind", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const both = yield* withSchemaLock(schema, "shared", { wait: false })(
          withSchemaLock(schema, "shared", { wait: false })(Effect.succeed("two readers"))
        )
        assert.strictEqual(both, "two readers")

        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* withSchemaLock(schema, "shared", { wait: false })(
          Deferred.succeed(held, undefined).pipe(Effect.zipRight(Deferred.await(release)))
        ).pipe(Effect.fork)
        yield* Deferred.await(held)
        const waiter = yield* withSchemaLock(schema, "exclusive", { wait: true })(Effect.void).pipe(Effect.fork)
        const locks = (granted: boolean) =>
          sql<{ n: number }>`select count(*)::int as n from pg_locks
            where locktype = 'advisory' and objsubid = 1 and granted = ${granted}
              and objid::bigint = (hashtext('xml2pg:' || ${schema}::text)::bigint & 4294967295)`.pipe(
              Effect.map((r) => r[0]!.n)
            )
        const waits = locks(false)
        yield* Effect.sleep("300 millis")
        assert.strictEqual(yield* waits, 1)
        yield* Fiber.interrupt(waiter)
        yield* Effect.sleep("100 millis")
        assert.strictEqual(yield* waits, 0)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        assert.strictEqual(yield* locks(true), 0)
        assert.strictEqual(yield* withSchemaLock(schema, "exclusive", { wait: false })(Effect.succeed(1)), 1)
      })
    ))

  it.effect("status: counts, runs and whether finalize is pending", () =>
    withSchema((schema) =>
      Effect.gen(function*() {
        const options = { groups: 20, eventsPerGroup: 2, seed: 7 }
        const file = path.join(dir, "status.xml")
        writeXml(file, options)
        const [summary] = yield* ingest(schema, file)
        const pending = yield* status(GroupsDocument, schema)
        assert.deepStrictEqual(pending.staging, [
          { table: "stg_group_event", rows: 20 },
          { table: "stg_event", rows: 40 }
        ])
        assert.deepStrictEqual(pending.final, [{ table: "group_event", rows: 0 }, { table: "event", rows: 0 }])
        assert.isTrue(pending.finalizePending)
        assert.deepStrictEqual(pending.pendingRuns, [summary!.runId])
        assert.strictEqual(pending.lastFinalize, null)
        const r = pending.runs[0]!
        assert.deepStrictEqual(
          [r.runId, r.file, r.state, r.rowsLoaded, r.rejected, r.staged],
          [summary!.runId, file, "done", 60, 0, 60]
        )
        assert.strictEqual(r.xmlBytes, fs.statSync(file).size)
        assert.isTrue(r.mbPerSecond !== null && r.mbPerSecond > 0)

        yield* run(schema)
        const done = yield* status(GroupsDocument, schema)
        assert.deepStrictEqual(done.final, [{ table: "group_event", rows: 20 }, { table: "event", rows: 40 }])
        assert.isFalse(done.finalizePending)
        assert.strictEqual(done.lastFinalize!.mode, "first-load")
        assert.deepStrictEqual(done.lastFinalize!.runs, [summary!.runId])
        assert.strictEqual(done.runs[0]!.staged, 0)
      })
    ))
})
