import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { qualify, quoteIdent } from "../src/db/Identifiers.js"
import { DatabaseLive } from "../src/db/PgPool.js"
import { initSchema } from "../src/db/Staging.js"
import { type Batch, tableFormats } from "../src/pipeline/Batch.js"
import { ingestFile } from "../src/pipeline/Ingest.js"
import { makeRejectsFile } from "../src/pipeline/RejectsFile.js"
import {
  attribute,
  child,
  type Column,
  type DocumentShape,
  fromWire,
  parentKey,
  type RecordShape,
  toWire,
  ValueType
} from "../src/shape/Shape.js"
import { workerBatches } from "../src/xml/ParseThread.js"
import type { ProducerOptions } from "../src/xml/Producer.js"
import { batches, inspectInput, openInput } from "../src/xml/XmlSource.js"
import { databaseUrl, newSchema, settingsFor, tmpDir } from "./utils.js"

// A format of a library user's own: <catalog><item sku added><title/><price id currency cents/></item></catalog>
const Price: RecordShape = {
  element: "price",
  table: "price",
  stagingTable: "stg_price",
  key: "price_id",
  columns: [
    attribute("id", "price_id", ValueType.id, true),
    parentKey("item_id"),
    attribute("currency", "currency", ValueType.nonEmptyText, true),
    attribute("cents", "cents", ValueType.smallint(0, 30000), true)
  ],
  children: []
}
const Item: RecordShape = {
  element: "item",
  table: "item",
  stagingTable: "stg_item",
  key: "item_id",
  columns: [
    attribute("sku", "item_id", ValueType.id, true),
    child("title", "title", ValueType.text, true),
    attribute("added", "added_at", ValueType.timestamptz)
  ],
  children: [Price]
}
const Catalog: DocumentShape = { root: "catalog", record: Item }

/** The same format with a check of the user's own: it cannot cross to a worker. */
const upperCurrency = { sql: "text", check: (s: string) => (/^[A-Z]{3}$/.test(s) ? undefined : "not a currency code") }
const OwnCheck: DocumentShape = {
  root: "catalog",
  record: {
    ...Item,
    children: [{
      ...Price,
      columns: Price.columns.map((c) => (c.name === "currency" ? { ...c, type: upperCurrency } : c))
    }]
  }
}

const ITEMS = 3000
const title = (i: number) => `Товар ${i}\twith a tab, a back\\slash & "quotes"`
/** every 100th item has a price out of range (that price is rejected); every 250th a bad date (the item and its prices are) */
const badCents = (i: number) => i % 100 === 0
const badDate = (i: number) => i % 250 === 0
const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;")

const dir = tmpDir()
const file = path.join(dir, "catalog.xml")
{
  const parts = [`<?xml version="1.0" encoding="UTF-8"?>\n<catalog>\n`]
  for (let i = 1; i <= ITEMS; i++) {
    const added = badDate(i) ? "yesterday" : `2026-03-${String(1 + (i % 28)).padStart(2, "0")}T10:00:00Z`
    parts.push(
      `  <item sku="${i}" added="${added}">\n    <title>${escapeXml(title(i))}</title>\n` +
        `    <price id="${2 * i - 1}" currency="EUR" cents="${badCents(i) ? 40000 : i}"/>\n` +
        `    <price id="${2 * i}" currency="USD" cents="${i + 1}"/>\n  </item>\n`
    )
  }
  parts.push(`</catalog>\n`)
  fs.writeFileSync(file, parts.join(""))
}
const rejectedItems = Math.floor(ITEMS / 250)
// a rejected item takes both its prices along; a bad price of a rejected item is counted there
const badPricesOfGoodItems = Math.floor(ITEMS / 100) - Math.floor(ITEMS / 500)
const loadedItems = ITEMS - rejectedItems
const loadedPrices = 2 * loadedItems - badPricesOfGoodItems

const producerOptions = (doc: DocumentShape): ProducerOptions => ({
  file,
  doc,
  runId: 1,
  limits: { rows: 700, bytes: 1 << 20 }
})

/** What a batch carries, its COPY data as base64. */
const plainBatch = ({ release: _release, ...b }: Batch) => ({
  ...b,
  tables: b.tables.map((t) => ({ rows: t.rows, data: Buffer.concat(t.chunks).toString("base64") }))
})

describe("a document shape of one's own", () => {
  it("made of built-in types, crosses to a worker as plain data and comes back with the same checks", () => {
    const wire = toWire(Catalog)
    assert.isDefined(wire)
    // what postMessage does to it: a function anywhere would throw here
    const rebuilt = fromWire(structuredClone(wire!))
    const strip = (r: RecordShape): unknown => ({
      ...r,
      columns: r.columns.map((c) => ({ ...c, type: c.type.sql })),
      children: r.children.map(strip)
    })
    assert.deepStrictEqual(strip(rebuilt.record), strip(Catalog.record))
    const cents = rebuilt.record.children[0]!.columns[3]!.type
    assert.strictEqual(cents.check("30000"), undefined)
    assert.strictEqual(cents.check("30001"), "not an integer in 0..30000")
    assert.strictEqual(rebuilt.record.columns[2]!.type.check("yesterday"), Item.columns[2]!.type.check("yesterday"))
    assert.isUndefined(toWire(OwnCheck), "a check of the user's own stays on the main thread")
    // a user's shape object may carry more than the shape: only the shape crosses
    const extra = { ...Item, describe: () => "an item" } as RecordShape
    assert.deepStrictEqual(structuredClone(toWire({ root: "catalog", record: extra })), wire)
  })

  it.live("is parsed on the worker into the same batches as on the main thread, rejects included", () =>
    Effect.gen(function*() {
      const collect = (stream: Stream.Stream<Batch, unknown>) =>
        Effect.map(Stream.runCollect(stream), (c) => Chunk.toReadonlyArray(c).map(plainBatch))
      const info = yield* inspectInput(file)
      const main = yield* collect(batches(yield* openInput(info), producerOptions(Catalog)))
      const worker = yield* collect(workerBatches(yield* openInput(info), toWire(Catalog)!, producerOptions(Catalog)))
      assert.deepStrictEqual(worker, main)
      assert.isAbove(main.length, 5)
      const rejects = main.flatMap((b) => b.rejects)
      assert.strictEqual(rejects.filter((r) => r.element === "item").length, rejectedItems)
      const price = rejects.find((r) => r.element === "price" && r.kind === "price: bad attribute cents")!
      assert.strictEqual(price.reason, `bad attribute cents: "40000" not an integer in 0..30000`)
    }))
})

const schema = newSchema()

layer(DatabaseLive({ url: databaseUrl(), maxConnections: 6 }), { excludeTestServices: true, timeout: 60_000 })(
  "a document shape of one's own, loaded into PostgreSQL",
  (it) => {
    const staged = (table: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe<{ item_id: string; title: string; added_at: string }>(
          `select item_id::text, title, to_char(added_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as added_at
           from ${qualify(schema, table)} order by item_id::bigint`
        ))
    const count = (table: string, runId: number) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(schema, table)} where run_id = ${runId}`)).pipe(
          Effect.map((rows) => rows[0]!.n)
        )

    it.effect("on the worker, or with a check of its own on the main thread: the same rows either way", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* initSchema(Catalog, schema)
        yield* Effect.addFinalizer(() => sql.unsafe(`drop schema if exists ${quoteIdent(schema)} cascade`).pipe(Effect.orDie))
        const load = (doc: DocumentShape) =>
          Effect.gen(function*() {
            const rejects = yield* makeRejectsFile(path.join(dir, "rejects.ndjson"))
            return yield* ingestFile(file, {
              doc,
              settings: settingsFor(schema, dir, { batchRows: 500, parseWorker: true }),
              rejects,
              resume: "never"
            })
          }).pipe(Effect.scoped)
        const onWorker = yield* load(Catalog)
        assert.strictEqual(onWorker.state, "done")
        assert.strictEqual(onWorker.rowsByTable["stg_item"], loadedItems)
        assert.strictEqual(onWorker.rowsByTable["stg_price"], loadedPrices)
        assert.strictEqual(onWorker.rejected, rejectedItems * 3 + badPricesOfGoodItems)
        assert.strictEqual(yield* count("stg_item", onWorker.runId), loadedItems)
        assert.strictEqual(yield* count("stg_price", onWorker.runId), loadedPrices)
        const items = yield* staged("stg_item")
        assert.deepStrictEqual(items[6], { item_id: "7", title: title(7), added_at: "2026-03-08 10:00:00" })
        assert.isUndefined(items.find((r) => r.item_id === "250"))

        const onMain = yield* load(OwnCheck)
        assert.strictEqual(onMain.state, "done")
        assert.deepStrictEqual(onMain.rowsByTable, onWorker.rowsByTable)
        assert.strictEqual(onMain.rejected, onWorker.rejected)
        // prices of the check of one's own went as COPY text, those of Catalog as binary COPY
        assert.deepStrictEqual(tableFormats(OwnCheck).map((f) => f._tag), ["binary", "text"])
        assert.deepStrictEqual(tableFormats(Catalog).map((f) => f._tag), ["binary", "binary"])
        const differing = (table: string, columns: string) =>
          sql.unsafe<{ n: number }>(
            `select count(*)::int as n from (
               (select ord, ${columns} from ${qualify(schema, table)} where run_id = ${onWorker.runId}
                except
                select ord, ${columns} from ${qualify(schema, table)} where run_id = ${onMain.runId})
               union all
               (select ord, ${columns} from ${qualify(schema, table)} where run_id = ${onMain.runId}
                except
                select ord, ${columns} from ${qualify(schema, table)} where run_id = ${onWorker.runId})) d`
          ).pipe(Effect.map((r) => r[0]!.n))
        assert.strictEqual(yield* differing("stg_item", "item_id, title, added_at"), 0)
        assert.strictEqual(yield* differing("stg_price", "price_id, item_id, currency, cents"), 0)
      }).pipe(Effect.scoped))

    it.effect("staging tables made for another shape stop the load before it starts, naming what differs", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const other = `${schema}_other`
        yield* Effect.addFinalizer(() => sql.unsafe(`drop schema if exists ${quoteIdent(other)} cascade`).pipe(Effect.orDie))
        const load = (doc: DocumentShape) =>
          Effect.gen(function*() {
            const rejects = yield* makeRejectsFile(path.join(dir, "rejects-other.ndjson"))
            return yield* ingestFile(file, { doc, settings: settingsFor(other, dir, { parseWorker: true }), rejects })
          }).pipe(Effect.scoped, Effect.flip)
        const withPrice = (columns: ReadonlyArray<Column>): DocumentShape => ({
          ...Catalog,
          record: { ...Item, children: [{ ...Price, columns }] }
        })
        const remedy = "the table was made for another shape. Finalize what it holds with that shape"
        // an earlier shape had the cents as text: binary smallints would have loaded as text
        yield* initSchema(withPrice(Price.columns.map((c) => (c.name === "cents" ? { ...c, type: ValueType.text } : c))), other)
        const typeError = yield* load(Catalog)
        assert.strictEqual(typeError._tag, "DbError")
        assert.include(typeError.message, `column "cents" of ${qualify(other, "stg_price")} is text, the shape's is smallint: ${remedy}`)
        // one without the currency
        yield* sql.unsafe(`drop table ${qualify(other, "stg_price")}`)
        yield* initSchema(withPrice(Price.columns.filter((c) => c.name !== "currency")), other)
        assert.include((yield* load(Catalog)).message, `column "currency" of ${qualify(other, "stg_price")} is missing: ${remedy}`)
        // the currency added back, last, and a column of one's own: COPY names its columns, so that is fine;
        // but a timestamp that keeps whole seconds would round the binary ones
        yield* sql.unsafe(`alter table ${qualify(other, "stg_price")} add column currency text, add column note text`)
        yield* sql.unsafe(`alter table ${qualify(other, "stg_item")} alter column added_at type timestamptz(0)`)
        assert.include(
          (yield* load(Catalog)).message,
          `column "added_at" of ${qualify(other, "stg_item")} is timestamp(0) with time zone, the shape's is timestamp with time zone`
        )
        // nothing was recorded or loaded
        const [runs] = yield* sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(other, "xml2pg_run")}`)
        assert.strictEqual(runs!.n, 0)
        const [items] = yield* sql.unsafe<{ n: number }>(`select count(*)::int as n from ${qualify(other, "stg_item")}`)
        assert.strictEqual(items!.n, 0)
        // with the shape's types, in any column order, the same file loads
        yield* sql.unsafe(`alter table ${qualify(other, "stg_item")} alter column added_at type timestamptz`)
        const done = yield* load(Catalog).pipe(Effect.flip)
        assert.strictEqual(done.rowsByTable["stg_item"], loadedItems)
        assert.strictEqual(done.rowsByTable["stg_price"], loadedPrices)
      }).pipe(Effect.scoped))
  }
)
