/**
 * `xml2pg run` on a generated file with duplicate ids: the final tables hold exactly the
 * last occurrence of every id, as the generator says.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import pg from "pg"
import { afterAll, inject } from "vitest"
import { type GenerateOptions, generateGroups } from "../src/generate/Generator.js"
import type { EventRow, GroupRow } from "./utils.js"
import { eventRow, groupRow, newSchema, tmpDir, writeXml } from "./utils.js"

const url = inject("databaseUrl")
const schema = newSchema()

const query = async <T extends pg.QueryResultRow>(text: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text)).rows
  } finally {
    await client.end()
  }
}

afterAll(() => query(`drop schema if exists "${schema}" cascade`))

/** Last occurrence wins, in file order. */
const expectedFinal = (options: GenerateOptions) => {
  const groups = new Map<string, GroupRow>()
  const events = new Map<string, EventRow>()
  let occurrences = 0
  for (const g of generateGroups(options)) {
    occurrences += 1 + g.events.length
    groups.set(g.group_id, groupRow(g))
    for (const e of g.events) events.set(e.event_id, eventRow(e))
  }
  const byId = <A>(m: Map<string, A>) => [...m.entries()].sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1)).map(([, v]) => v)
  return { groups: byId(groups), events: byId(events), occurrences }
}

const utc = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

describe("xml2pg run with duplicates", () => {
  it("final tables equal the generator's last occurrence of every id, row by row", async () => {
    const dir = tmpDir()
    const file = path.join(dir, "dups.xml")
    const options = { groups: 1500, eventsPerGroup: 3, seed: 17, duplicateRate: 0.1 }
    writeXml(file, options)
    const expected = expectedFinal(options)
    const unique = expected.groups.length + expected.events.length
    assert.isAbove(expected.occurrences - unique, 400, "the file has duplicates")

    const r = spawnSync(process.execPath, [path.resolve("dist/bin.js"), "run", "--schema", schema, "--batch-rows", "500", file], {
      env: { PATH: process.env["PATH"], DATABASE_URL: url },
      cwd: dir,
      encoding: "utf8",
      timeout: 120_000
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.match(r.stderr, /finalize t_\w+: first-load/)

    const groups = await query<GroupRow>(
      `select group_id::text, code, name, description, ${utc("created_at")} as created_at
       from "${schema}".group_event g order by g.group_id`
    )
    const events = await query<EventRow>(
      `select event_id::text, group_id::text, type, ${utc("occurred_at")} as occurred_at, severity, source, payload
       from "${schema}".event e order by e.event_id`
    )
    assert.strictEqual(groups.length, expected.groups.length)
    assert.strictEqual(events.length, expected.events.length)
    assert.deepStrictEqual(groups, expected.groups)
    assert.deepStrictEqual(events, expected.events)
    const [staged] = await query<{ n: number }>(
      `select (select count(*) from "${schema}".stg_group_event) + (select count(*) from "${schema}".stg_event) as n`
    )
    assert.strictEqual(Number(staged!.n), 0)
  })
})
