import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { copyTargets, writeBatch } from "../src/db/Copy.js"
import { qualify } from "../src/db/Identifiers.js"
import { type Batch, setBatchRunId } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { guessInit, guessInput, mismatch } from "../src/xml/ParseAhead.js"
import type { WorkerInit } from "../src/xml/ParseThread.js"
import { Producer } from "../src/xml/Producer.js"
import { WorkerRegions } from "../src/xml/SharedPieces.js"
import { expectedRows, newSchema, stagedRows, TestLoader, tmpDir, writeXml } from "./utils.js"

const dir = tmpDir()
const schema = newSchema()

const xmlFile = (name: string, groups = 50) => {
  const file = path.join(dir, name)
  writeXml(file, { groups, eventsPerGroup: 2, seed: 5 })
  return file
}

describe("parsing ahead: the guess", () => {
  it("takes the first argument naming an XML file: not an option, its value, gzip, stdin or a folder", () => {
    const xml = xmlFile("guess.xml")
    const rejects = path.join(dir, "old-rejects.ndjson")
    fs.writeFileSync(rejects, "{\"kind\":\"x\"}\n")
    const gz = path.join(dir, "guess.xml.gz")
    fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(xml)))
    const bom = path.join(dir, "bom.xml")
    fs.writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("\n  <groups></groups>")]))
    assert.strictEqual(guessInput({ args: ["--schema", "s", "--rejects", rejects, xml, bom] }), xml)
    assert.strictEqual(guessInput({ args: [bom, xml] }), bom)
    assert.strictEqual(guessInput({ args: ["--batch-rows", "50", gz, dir, "-", "missing.xml"] }), undefined)
    assert.strictEqual(guessInput({ args: [] }), undefined)
  })

  it("is kept only for the same shape, options but the run's id, and the same, unchanged file from its start", () => {
    const file = xmlFile("same.xml")
    const fd = fs.openSync(file, "r")
    const other = fs.openSync(file, "r")
    try {
      const guess = guessInit(file, fd)!
      // what the main thread sends: a run's id, its own descriptor
      const told = (change: (init: WorkerInit) => WorkerInit = (i) => i): WorkerInit =>
        change({ ...guess.init, options: { ...guess.init.options, runId: 12 }, file: { fd: other, start: 0 } })
      assert.isUndefined(mismatch(guess, told(), 4096))
      // the first range of the file, not passed yet
      const firstRange = (end: number) => told((i) => ({ ...i, file: { fd: other, start: 0, end } }))
      assert.isUndefined(mismatch(guess, firstRange(4096), 4096))
      const differ: Array<[string, (init: WorkerInit) => WorkerInit]> = [
        ["other settings", (i) => ({ ...i, options: { ...i.options, limits: { ...i.options.limits, rows: 50 } } })],
        ["other settings", (i) => ({ ...i, options: { ...i.options, recover: false } })],
        ["other settings", (i) => ({ ...i, options: { ...i.options, formats: ["text", "binary"] } })],
        ["other settings", (i) => ({ ...i, options: { ...i.options, resumeAt: { byte: 100, seq: 2, ord: 3 } } })],
        ["another input", (i) => ({ ...i, options: { ...i.options, file: `./${path.relative(".", file)}` } })],
        ["another input", (i) => ({ ...i, file: undefined })],
        ["a later range of the file", (i) => ({ ...i, file: { fd: other, start: 1000 } })],
        ["parsed past the first range's end", () => firstRange(4095)],
        ["another shape", (i) => ({ ...i, shape: { ...i.shape, root: "other" } })]
      ]
      assert.deepStrictEqual(differ.map(([, change]) => mismatch(guess, told(change), 4096)), differ.map(([why]) => why))
      // another file under the guessed name, then the same file changed
      const elsewhere = fs.openSync(xmlFile("elsewhere.xml"), "r")
      try {
        assert.strictEqual(mismatch(guess, told((i) => ({ ...i, file: { fd: elsewhere, start: 0 } })), 4096), "the file changed")
      } finally {
        fs.closeSync(elsewhere)
      }
      fs.appendFileSync(file, "\n")
      assert.strictEqual(mismatch(guess, told(), 4096), "the file changed")
    } finally {
      fs.closeSync(fd)
      fs.closeSync(other)
    }
  })
})

describe("parsing ahead: what is dropped", () => {
  it("gives each of its regions back, once, whether its input had ended or not", () => {
    for (const [groups, ended] of [[40, true], [3_000, false]] as const) {
      const regions = new WorkerRegions()
      const bytes = fs.readFileSync(xmlFile(`drop-${groups}.xml`, groups))
      const producer = new Producer(
        { file: "f", doc: GroupsDocument, runId: 0, limits: { rows: 500, bytes: 1 << 22 } },
        regions
      )
      const emitted = producer.write(bytes.subarray(0, bytes.length >> 1))
      if (ended) emitted.push(...producer.write(bytes.subarray(bytes.length >> 1)), ...producer.end())
      assert.isAbove(emitted.length, 0)
      producer.discard(emitted)
      const made = regions.takeChanges().made.length
      assert.isAbove(made, 2)
      // every region is free again, each once: `made` distinct ones, and no new one made for them
      const handedOut = new Set(Array.from({ length: made }, () => regions.allocate(1).buffer))
      assert.strictEqual(handedOut.size, made, `groups ${groups}: a region handed out twice`)
      assert.deepStrictEqual(regions.takeChanges().made, [], `groups ${groups}: a region not given back`)
    }
  })
})

layer(TestLoader(schema))("parsing ahead: rows parsed before their run", (it) => {
  it.effect("take the run's id once known, in batches emitted and rows held alike, and load exactly", () =>
    Effect.gen(function*() {
      const options = { groups: 3_000, eventsPerGroup: 2, seed: 17 }
      const file = path.join(dir, "rerun.xml")
      writeXml(file, options)
      const RUN = 41
      const producer = new Producer({ file, doc: GroupsDocument, runId: 0, limits: { rows: 1_000, bytes: 1 << 22 } })
      const bytes = fs.readFileSync(file)
      const third = Math.floor(bytes.length / 3)
      const before = producer.write(bytes.subarray(0, third))
      assert.isAbove(before.length, 0, "batches emitted before the run is known")
      for (const b of before) setBatchRunId(b, RUN)
      producer.rerun(RUN)
      const batches: Array<Batch> = [...before, ...producer.write(bytes.subarray(third)), ...producer.end()]
      const targets = copyTargets(GroupsDocument, schema)
      for (const batch of batches) yield* writeBatch(targets, RUN, batch)
      assert.deepStrictEqual(yield* stagedRows(schema, RUN), expectedRows(options))
      const sql = yield* SqlClient.SqlClient
      const strays = yield* sql.unsafe<{ n: number }>(
        `select (select count(*) from ${qualify(schema, "stg_group_event")} where run_id <> ${RUN})::int +
                (select count(*) from ${qualify(schema, "stg_event")} where run_id <> ${RUN})::int as n`
      )
      assert.deepStrictEqual(strays, [{ n: 0 }])
    }))
})
