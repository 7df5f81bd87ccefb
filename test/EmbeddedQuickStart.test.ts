/**
 * The quick start with no database configured: the CLI starts an embedded PostgreSQL,
 * loads the committed sample, and stops the server again.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { startEmbedded } from "../src/db/Embedded.js"
import { generateGroups } from "../src/generate/Generator.js"
import { tmpDir, userEnv } from "./utils.js"

const bin = path.resolve("dist/bin.js")
const sample = path.resolve("examples/sample.xml")

describe("quick start on the embedded server", () => {
  it("ingest with no POSTGRES_* or DATABASE_URL uses an embedded server and loads the sample", async () => {
    const cwd = tmpDir()
    fs.chmodSync(cwd, 0o755) // the server runs as user postgres and must enter this directory
    const env = userEnv()
    const run = (args: Array<string>) =>
      spawnSync(process.execPath, [bin, ...args], { cwd, env, encoding: "utf8", timeout: 180_000 })
    assert.strictEqual(run(["init"]).status, 0)
    const r = run(["ingest", sample])
    assert.strictEqual(r.status, 0, r.stderr)
    assert.include(r.stderr, "(embedded)")
    assert.include(r.stderr, "psql -h 127.0.0.1")
    assert.isTrue(fs.existsSync(path.join(cwd, ".xml2pg", "data", "PG_VERSION")))
    assert.isFalse(fs.existsSync(path.join(cwd, ".xml2pg", "data", "postmaster.pid")), "server left running")

    // the data persisted: start the same embedded server again and count
    const groups = Array.from(generateGroups({ groups: 200, eventsPerGroup: 2, seed: 42 }))
    const counts = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const url = yield* startEmbedded({ dir: path.join(cwd, ".xml2pg") })
      return yield* Effect.promise(async () => {
        const client = new pg.Client({ connectionString: Redacted.value(url) })
        await client.connect()
        try {
          const { rows } = await client.query(
            "select (select count(*)::int from stg_group_event) g, (select count(*)::int from stg_event) e"
          )
          return rows[0] as { g: number; e: number }
        } finally {
          await client.end()
        }
      })
    })))
    assert.deepStrictEqual(counts, { g: groups.length, e: groups.reduce((n, g) => n + g.events.length, 0) })
  })
})
