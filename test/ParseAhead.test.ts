import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { copyTargets, writeBatch } from "../src/db/Copy.js"
import { qualify } from "../src/db/Identifiers.js"
import { type Batch, setRunId } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { guessInit, guessInput, sameParse } from "../src/xml/ParseAhead.js"
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

  it("is kept only for the same shape, options but the run's id, and the whole of the same, unchanged file", () => {
    const file = xmlFile("same.xml")
    const fd = fs.openSync(file, "r")
    const other = fs.openSync(file, "r")
    try {
      const guess = guessInit(file, fd)
      // what the main thread sends: a run's id, its own descriptor
      const told = (change: (init: WorkerInit) => WorkerInit = (i) => i): WorkerInit =>
        change({ ...guess.init, options: { ...guess.init.options, runId: 12 }, file: { fd: other, start: 0 } })
      assert.isTrue(sameParse(guess, told(), 4096))
      // the first range of the file, not passed yet
      const firstRange = (end: number) => told((i) => ({ ...i, file: { fd: other, start: 0, end } }))
      assert.isTrue(sameParse(guess, firstRange(4096), 4096))
      assert.isFalse(sameParse(guess, firstRange(4095), 4096))
      const differ: Record<string, (init: WorkerInit) => WorkerInit> = {
        "batch rows": (i) => ({ ...i, options: { ...i.options, limits: { ...i.options.limits, rows: 50 } } }),
        "strict": (i) => ({ ...i, options: { ...i.options, recover: false } }),
        "text COPY": (i) => ({ ...i, options: { ...i.options, formats: ["text", "binary"] } }),
        "a resumed run": (i) => ({ ...i, options: { ...i.options, resumeAt: { byte: 100, seq: 2, ord: 3 } } }),
        "another path to it": (i) => ({ ...i, options: { ...i.options, file: `./${path.relative(".", file)}` } }),
        "a later range": (i) => ({ ...i, file: { fd: other, start: 1000 } }),
        "chunks posted": (i) => ({ ...i, file: undefined }),
        "another shape": (i) => ({ ...i, shape: { ...i.shape, root: "other" } })
      }
      for (const [what, change] of Object.entries(differ)) assert.isFalse(sameParse(guess, told(change), 4096), what)
      // another file, then the same file changed
      const elsewhere = fs.openSync(xmlFile("elsewhere.xml"), "r")
      try {
        assert.isFalse(sameParse(guess, told((i) => ({ ...i, file: { fd: elsewhere, start: 0 } })), 4096))
      } finally {
        fs.closeSync(elsewhere)
      }
      fs.appendFileSync(file, "\n")
      assert.isFalse(sameParse(guess, told(), 4096))
    } finally {
      fs.closeSync(fd)
      fs.closeSync(other)
    }
  })
})

describe("parsing ahead: what is dropped", () => {
  it("gives each of its regions back once, whether its input had ended or not", () => {
    for (const [groups, ended] of [[40, true], [3_000, false]] as const) {
      const regions = new WorkerRegions()
      const bytes = fs.readFileSync(xmlFile(`drop-${groups}.xml`, groups))
      const producer = new Producer(
        { file: "f", doc: GroupsDocument, runId: 0, limits: { rows: 500, bytes: 1 << 22 } },
        regions
      )
      const emitted = [...producer.write(bytes.subarray(0, bytes.length >> 1)), ...(ended ? producer.write(bytes.subarray(bytes.length >> 1)) : [])]
      if (ended) emitted.push(...producer.end())
      for (const b of emitted) for (const t of b.tables) for (const c of t.chunks) regions.reclaim(c)
      producer.discard()
      const made = regions.takeNew().length
      assert.isAbove(made, 2)
      // every region is free again, each once: as many distinct ones as were made
      const handedOut = new Set(Array.from({ length: made + 1 }, () => regions.allocate(1).buffer))
      assert.strictEqual(handedOut.size, made + 1, `groups ${groups}: a region handed out twice`)
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
      for (const b of before) for (const t of b.tables) for (const c of t.chunks) setRunId(c, RUN)
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
