import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { transactionClient } from "../src/db/Copy.js"
import { clientQuery, PgPool } from "../src/db/PgPool.js"
import { databaseUrl } from "./utils.js"

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
        const client = yield* transactionClient
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
        const client = yield* transactionClient
        yield* clientQuery(client, "boom", "select 1/0")
      })).pipe(Effect.flip)
      assert.strictEqual(failed.op, "boom")
      const afterFailure = (yield* Effect.promise(() =>
        pool.query<{ synchronous_commit: string }>("show synchronous_commit")
      )).rows[0]!.synchronous_commit
      assert.strictEqual(afterFailure, sessionDefault)
    }).pipe(Effect.provide(OneConnection)))
})
