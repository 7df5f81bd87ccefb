import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { copyTargets, transactionClient, writeBatch } from "../src/db/Copy.js"
import { qualify } from "../src/db/Identifiers.js"
import { clientQuery, PgPool } from "../src/db/PgPool.js"
import { type Batch, BatchBuilder, type CopyFormats, tableFormats } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { byteSpan, databaseUrl, newSchema, TestLoader } from "./utils.js"

/** `SHOW synchronous_commit` on a raw client. */
const show = (client: Parameters<typeof clientQuery>[0]) =>
  clientQuery<{ synchronous_commit: string }>(client, "show", "show synchronous_commit").pipe(
    Effect.map((r) => r.rows[0]!.synchronous_commit)
  )

// one connection, so every checkout below is the same server session
const OneConnection = PgPool.layer({ url: databaseUrl(), maxConnections: 1, applicationName: "xml2pg-test-copy" })

describe("writer transactions", () => {
  it.effect("run with synchronous_commit off, and leave the pooled session as the server set it", () =>
    Effect.gen(function*() {
      const pool = yield* PgPool
      const sessionDefault = (yield* Effect.promise(() => pool.query<{ synchronous_commit: string }>(
        "show synchronous_commit"
      ))).rows[0]!.synchronous_commit
      assert.notStrictEqual(sessionDefault, "off", "the test needs a server whose sessions commit synchronously")
      const pid = (yield* Effect.promise(() => pool.query<{ pid: number }>("select pg_backend_pid() as pid"))).rows[0]!
        .pid

      const inside = yield* Effect.scoped(Effect.gen(function*() {
        // as writeBatch opens its transaction: BEGIN with a first statement (its ledger row)
        const client = yield* transactionClient({ op: "first", sql: "select 1" })
        const r = yield* clientQuery<{ pid: number }>(client, "probe", "select pg_backend_pid() as pid")
        const setting = yield* show(client)
        yield* clientQuery(client, "commit", "COMMIT") // as writeBatch ends its transaction
        return { setting, pid: r.rows[0]!.pid }
      }))
      assert.strictEqual(inside.pid, pid, "the writer used the pool's one session")
      assert.strictEqual(inside.setting, "off")

      // SET LOCAL ended with the transaction: the same session is back to the default
      const after = (yield* Effect.promise(() =>
        pool.query<{ synchronous_commit: string; pid: number }>(
          "select current_setting('synchronous_commit') as synchronous_commit, pg_backend_pid() as pid"
        )
      )).rows[0]!
      assert.strictEqual(after.pid, pid)
      assert.strictEqual(after.synchronous_commit, sessionDefault)

      // a failed writer transaction rolls back and also leaves the default behind
      const failed = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* transactionClient()
        yield* clientQuery(client, "boom", "select 1/0")
      })).pipe(Effect.flip)
      assert.strictEqual(failed.op, "boom")
      const afterFailure = (yield* Effect.promise(() =>
        pool.query<{ synchronous_commit: string }>("show synchronous_commit")
      )).rows[0]!.synchronous_commit
      assert.strictEqual(afterFailure, sessionDefault)
    }).pipe(Effect.provide(OneConnection)))
})

const schema = newSchema()

/** One batch of `runId` (7): two groups, three events and one rejected record, bytes 100..900. */
const sampleBatch = (runId = 7, formats?: CopyFormats): Batch => {
  const out: Array<Batch> = []
  const limits = { rows: 1000, bytes: 1 << 30 }
  const b = new BatchBuilder(tableFormats(GroupsDocument, formats), runId, limits, (batch) => out.push(batch), 4)
  b.row(0, ["1", "G-1", "one", null, "2026-01-01T00:00:00Z"], 1)
  b.row(1, ["10", "1", "click", "2026-01-01T00:00:01Z", "3", "web", "{\"a\":1}"], 2)
  b.row(1, ["11", "1", "view", "2026-01-01T00:00:02Z", null, null, null], 3)
  b.recordEnd(byteSpan(100, 400))
  b.reject({ file: "f.xml", offset: 400, element: "group", id: "2", kind: "k", reason: "missing <name>", ord: 4 })
  b.recordEnd(byteSpan(400, 500))
  b.row(0, ["3", "G-3", "three", "it's \\ odd", "2026-01-01T00:00:03Z"], 5)
  b.row(1, ["12", "3", "buy", "2026-01-01T00:00:04Z", "0", "api", null], 6)
  b.recordEnd(byteSpan(500, 900))
  b.finish()
  return out[0]!
}

layer(TestLoader(schema))("writeBatch", (it) => {
  it.effect("lands rows, rejects and the ledger row in one transaction, and a repeat of the batch lands nothing more", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const targets = copyTargets(GroupsDocument, schema)
      const batch = sampleBatch()
      assert.strictEqual(batch.rows, 5)
      assert.strictEqual(yield* writeBatch(targets, 7, batch), 5)
      // a retry after a COMMIT whose acknowledgement was lost: the ledger already has the batch
      assert.strictEqual(yield* writeBatch(targets, 7, batch), 5)

      const count = (table: string) =>
        sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(schema, table)}`).pipe(
          Effect.map((r) => r[0]!.n)
        )
      assert.strictEqual(yield* count("stg_group_event"), 2)
      assert.strictEqual(yield* count("stg_event"), 3)
      assert.strictEqual(yield* count("xml2pg_reject"), 1)
      const ledger = yield* sql.unsafe<Record<string, unknown>>(
        `select run_id, batch_seq, byte_start::int, byte_end::int, first_ord::int, last_ord::int, row_counts, rejected
         from ${qualify(schema, "xml2pg_batch")}`
      )
      assert.deepStrictEqual(ledger, [{
        run_id: 7,
        batch_seq: 4,
        byte_start: 100,
        byte_end: 900,
        first_ord: 1,
        last_ord: 6,
        row_counts: { stg_group_event: 2, stg_event: 3 },
        rejected: 1
      }])
      const groups = yield* sql.unsafe<{ batch_seq: number; ord: number; code: string; description: string | null }>(
        `select batch_seq, ord::int, code, description from ${qualify(schema, "stg_group_event")} order by ord`
      )
      assert.deepStrictEqual(groups, [
        { batch_seq: 4, ord: 1, code: "G-1", description: null },
        { batch_seq: 4, ord: 5, code: "G-3", description: "it's \\ odd" }
      ])
    }))

  it.effect("COPY text (a run begun before binary COPY, or a shape of one's own) lands the same rows as binary", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const text: CopyFormats = ["text", "text"]
      assert.strictEqual(yield* writeBatch(copyTargets(GroupsDocument, schema, text), 8, sampleBatch(8, text)), 5)
      assert.strictEqual(yield* writeBatch(copyTargets(GroupsDocument, schema), 9, sampleBatch(9)), 5)
      for (const [table, columns] of [
        ["stg_group_event", "batch_seq, ord, group_id, code, name, description, created_at"],
        ["stg_event", "batch_seq, ord, event_id, group_id, type, occurred_at, severity, source, payload"]
      ] as const) {
        const rows = (runId: number) =>
          sql.unsafe(`select ${columns} from ${qualify(schema, table)} where run_id = ${runId} order by ord`)
        const [asText, asBinary] = [yield* rows(8), yield* rows(9)]
        assert.isAbove(asText.length, 1)
        assert.deepStrictEqual(asText, asBinary, table)
      }
    }))
})
