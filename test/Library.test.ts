/**
 * An Effect app that brings its own PgClient layer and its own pg.Pool for COPY, and runs
 * an ingest in its own runtime through the public API.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as path from "node:path"
import { defaults, PgPool, Xml2Pg } from "../src/index.js"
import { databaseUrl, expectedRows, newSchema, stagedRows, tmpDir, writeXml } from "./utils.js"

describe("library use", () => {
  it("a host app provides its own PgClient and pool, and runs ingest in its own runtime", async () => {
    const schema = newSchema()
    const dir = tmpDir()
    const file = path.join(dir, "lib.xml")
    const options = { groups: 250, eventsPerGroup: 2, seed: 21 }
    writeXml(file, options)

    // the host's own database layers: its PgClient (own pool inside) and a pool for COPY
    const HostDatabase = Layer.mergeAll(
      PgClient.layer({ url: databaseUrl(), maxConnections: 3 }),
      PgPool.layer({ url: databaseUrl(), maxConnections: 4, applicationName: "host-app" })
    )
    const runtime = ManagedRuntime.make(Xml2Pg.Default.pipe(Layer.provideMerge(HostDatabase)))
    try {
      const program = Effect.gen(function*() {
        const loader = yield* Xml2Pg
        yield* loader.init(schema)
        const [summary] = yield* loader.ingest({
          files: [file],
          settings: { ...defaults, schema, batchRows: 100, rejectsPath: path.join(dir, "r.ndjson") }
        })
        const staged = yield* stagedRows(schema, summary!.runId)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`drop schema "${schema}" cascade`)
        return { summary: summary!, staged }
      })
      const { staged, summary } = await runtime.runPromise(program)
      const expected = expectedRows(options)
      assert.strictEqual(summary.rowsLoaded, expected.groups.length + expected.events.length)
      assert.deepStrictEqual(staged.groups, expected.groups)
      assert.deepStrictEqual(staged.events, expected.events)
    } finally {
      await runtime.dispose()
    }
  })
})
