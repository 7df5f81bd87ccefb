import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import * as zlib from "node:zlib"
import { type Batch, tableFormats } from "../src/pipeline/Batch.js"
import { GroupsDocument } from "../src/shape/GroupEvents.js"
import { toWire } from "../src/shape/Shape.js"
import {
  dropPrestartedWorker,
  makeParseWorkers,
  type ParseWorker,
  startParseWorker,
  workerBatches
} from "../src/xml/ParseThread.js"
import type { ProducerOptions, ResumePoint } from "../src/xml/Producer.js"
import { batches, inspectInput, openInput } from "../src/xml/XmlSource.js"
import { tmpDir, writeXml } from "./utils.js"
import { copyRows } from "./copyText.js"

const dir = tmpDir()
const groupsWire = toWire(GroupsDocument)!
const plain = path.join(dir, "groups.xml")
writeXml(plain, { groups: 2000, eventsPerGroup: 2, seed: 5 })
const gzip = path.join(dir, "groups.xml.gz")
fs.writeFileSync(gzip, zlib.gzipSync(fs.readFileSync(plain)))
const larger = path.join(dir, "larger.xml")
writeXml(larger, { groups: 12000, eventsPerGroup: 2, seed: 6 })
// lines longer than a shared region: every 500th group's description is 40,000 characters, and
// every 3000th's 400,000, past the largest region the worker keeps once released
const long = path.join(dir, "long-lines.xml")
let groupNo = 0
fs.writeFileSync(
  long,
  fs.readFileSync(larger, "utf8").replace(
    /<description>[^<]*<\/description>/g,
    (d) => {
      const n = ++groupNo % 3000 === 0 ? 10 : groupNo % 500 === 0 ? 1 : 0
      return n === 0 ? d : `<description>${"ж".repeat(20_000 * n)}${"x".repeat(20_000 * n)}</description>`
    }
  )
)

const options = (file: string, resumeAt?: ResumePoint): ProducerOptions => ({
  file,
  doc: GroupsDocument,
  runId: 3,
  limits: { rows: 500, bytes: 1 << 20 },
  ...(resumeAt === undefined ? {} : { resumeAt })
})

/** What a batch carries, its COPY data as base64. */
const plainBatch = ({ release: _release, ...b }: Batch) => ({
  ...b,
  tables: b.tables.map((t) => ({ rows: t.rows, data: Buffer.concat(t.chunks).toString("base64") }))
})

const load = (file: string, worker: boolean, resumeAt?: ResumePoint, started?: ParseWorker) =>
  Effect.gen(function*() {
    const info = yield* inspectInput(file)
    const input = yield* openInput(info, resumeAt?.byte ?? 0)
    const stream = worker
      ? workerBatches(input, groupsWire, options(file, resumeAt), started)
      : batches(input, options(file, resumeAt))
    const out = Chunk.toReadonlyArray(yield* Stream.runCollect(stream)).map(plainBatch)
    return { out, xmlBytes: input.progress.xmlBytes, records: input.progress.records }
  })

/** An input the worker fails to read: a directory. */
const readsDir = () => ({
  file: { path: dir, start: 0 },
  readable: () => assert.fail("not read on the main thread"),
  progress: { sourceBytes: () => 0, xmlBytes: 0, records: 0, rejects: 0, sourceSize: undefined }
})

/** Resolves with the worker's exit code once its thread has exited. */
const exitOf = (w: ParseWorker) => new Promise<number>((resolve) => w.worker.once("exit", resolve))

describe("parse worker", () => {
  it.live("reads a plain file itself: the same batches as the main thread, from the start and from a resume point", () =>
    Effect.gen(function*() {
      const main = yield* load(plain, false)
      assert.isAbove(main.out.length, 5)
      assert.strictEqual(main.records, 6000)
      const worker = yield* load(plain, true)
      assert.deepStrictEqual(worker, main)
      assert.strictEqual(worker.xmlBytes, fs.statSync(plain).size)

      const cut = main.out[2]!
      const resumeAt = { byte: cut.byteEnd, seq: cut.seq + 1, ord: cut.lastOrd }
      const resumed = yield* load(plain, true, resumeAt)
      assert.deepStrictEqual(resumed.out, main.out.slice(3))
      // a gzip file is read on the main thread and posted to the worker: the same batches again
      assert.deepStrictEqual((yield* load(gzip, true, resumeAt)).out, resumed.out)
    }))

  it.live("batches released once written lend their memory to later batches, which still carry their own rows, long ones too", () =>
    Effect.gen(function*() {
      const main = yield* load(long, false)
      const longLines = main.out
        .flatMap((b) => copyRows([Buffer.from(b.tables[0]!.data, "base64")], tableFormats(GroupsDocument)[0]!))
        .filter((fields) => fields.some((f) => f !== null && f.length >= 40_000))
      assert.strictEqual(longLines.length, Math.floor(groupNo / 500))
      assert.isAbove(longLines.length, 10)
      const longest = longLines.filter((fields) => fields.some((f) => f !== null && f.length >= 400_000))
      assert.strictEqual(longest.length, Math.floor(groupNo / 3000))
      assert.isAtLeast(longest.length, 3)
      const input = yield* openInput(yield* inspectInput(long))
      const regions = new Set<ArrayBufferLike>()
      let pieces = 0
      const out = yield* Stream.runCollect(Stream.map(workerBatches(input, groupsWire, options(long)), (b) => {
        const copied = plainBatch(b)
        for (const t of b.tables) for (const c of t.chunks) regions.add(c.buffer)
        pieces += b.tables.reduce((n, t) => n + t.chunks.length, 0)
        // as a writer does: done with the batch; a second release must not free its regions twice
        b.release!()
        b.release!()
        return copied
      }))
      assert.deepStrictEqual(Chunk.toReadonlyArray(out), main.out)
      assert.isAbove(pieces, 100)
      assert.isBelow(regions.size, pieces / 2)
    }))

  it.live("a load stopped early terminates the worker and closes the file", () =>
    Effect.gen(function*() {
      const openFds = () => fs.readdirSync("/proc/self/fd").length
      const before = openFds()
      const input = yield* openInput(yield* inspectInput(plain))
      const first = yield* Stream.runCollect(Stream.take(workerBatches(input, groupsWire, options(plain)), 1))
      assert.strictEqual(Chunk.size(first), 1)
      assert.strictEqual(openFds(), before)
    }))

  it.live("a worker started ahead parses what its first message names, and is stopped when its load ends, before its file closes", () =>
    Effect.scoped(Effect.gen(function*() {
      const started = yield* startParseWorker
      // is the load's file still open when the worker exits?
      const fileOpen = () =>
        fs.readdirSync("/proc/self/fd").some((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`) === plain
          } catch {
            return false
          }
        })
      const exited = new Promise<{ code: number; fileOpen: boolean }>((resolve) =>
        started.worker.once("exit", (code) => resolve({ code, fileOpen: fileOpen() }))
      )
      const main = yield* load(plain, false)
      const input = yield* openInput(yield* inspectInput(plain))
      const ahead = Chunk.toReadonlyArray(
        yield* Stream.runCollect(workerBatches(input, groupsWire, options(plain), started))
      ).map(plainBatch)
      assert.deepStrictEqual(ahead, main.out)
      // the scope holding the worker is still open: the load's end stopped it
      assert.deepStrictEqual(yield* Effect.promise(() => exited).pipe(Effect.timeout("10 seconds")), {
        code: 1,
        fileOpen: true
      })
      assert.isFalse(fileOpen())
    })))

  it.live("a worker the CLI started ahead is taken once and parses like any other; one that has exited is replaced; unneeded, it is ended", () =>
    Effect.scoped(Effect.gen(function*() {
      // what src/bin.ts leaves for an ingest: a worker of the built script, unref'd
      const key = Symbol.for("xml2pg.prestartedParseWorker")
      const global = globalThis as Record<symbol, unknown>
      const script = new URL("../dist/xml/ParseWorker.js", import.meta.url)
      const ahead = (): Worker => {
        const worker = new Worker(script)
        worker.unref()
        global[key] = worker
        return worker
      }
      // whatever this test leaves behind
      yield* Effect.addFinalizer(() => Effect.sync(() => delete global[key]))
      const first = ahead()
      yield* Effect.addFinalizer(() => Effect.promise(() => first.terminate()))
      const taken = yield* startParseWorker
      assert.strictEqual(taken.worker, first)
      assert.isUndefined(global[key])
      const main = yield* load(plain, false)
      assert.deepStrictEqual((yield* load(plain, true, undefined, taken)).out, main.out)
      // one that has exited before it was taken is dropped for a new one
      const dead = ahead()
      yield* Effect.promise(() => dead.terminate())
      const fresh = yield* startParseWorker
      assert.notStrictEqual(fresh.worker, dead)
      assert.isUndefined(global[key])
      assert.deepStrictEqual((yield* load(plain, true, undefined, fresh)).out, main.out)
      // a load that parses on the main thread ends it
      const unneeded = ahead()
      const exited = new Promise<number>((resolve) => unneeded.once("exit", resolve))
      yield* dropPrestartedWorker
      assert.isUndefined(global[key])
      // ended, not left to sit until the process exits
      yield* Effect.promise(() => exited).pipe(Effect.timeout("1 second"))
      assert.strictEqual(unneeded.threadId, -1)
    })))

  it.live("one worker parses the inputs of a load in turn, plain and gzip, reusing its regions; the load's end terminates it", () =>
    Effect.gen(function*() {
      const main = yield* load(plain, false)
      const cut = main.out[2]!
      const resumeAt = { byte: cut.byteEnd, seq: cut.seq + 1, ord: cut.lastOrd }
      const { exited, threads, regionsPerInput } = yield* Effect.scoped(Effect.gen(function*() {
        const workers = yield* makeParseWorkers
        const threads: Array<number> = []
        const regionsPerInput: Array<Set<ArrayBufferLike>> = []
        let first: ParseWorker | undefined
        for (const [file, from, expected] of [
          [plain, undefined, main.out],
          [gzip, undefined, main.out],
          [plain, resumeAt, main.out.slice(3)],
          [gzip, resumeAt, main.out.slice(3)]
        ] as const) {
          const regions = new Set<ArrayBufferLike>()
          const out = yield* Effect.scoped(Effect.gen(function*() {
            const w = yield* workers.take
            first ??= w
            threads.push(w.worker.threadId)
            const input = yield* openInput(yield* inspectInput(file), from?.byte ?? 0)
            return yield* Stream.runCollect(Stream.map(workerBatches(input, groupsWire, options(file, from), w), (b) => {
              for (const t of b.tables) for (const c of t.chunks) regions.add(c.buffer)
              const copied = plainBatch(b)
              b.release!()
              return copied
            }))
          }))
          assert.deepStrictEqual(Chunk.toReadonlyArray(out), expected, file)
          regionsPerInput.push(regions)
        }
        return { exited: exitOf(first!), threads, regionsPerInput }
      }))
      assert.strictEqual(new Set(threads).size, 1)
      // later inputs write into the regions the first one made
      for (const later of regionsPerInput.slice(1)) {
        for (const r of later) assert.isTrue(regionsPerInput[0]!.has(r))
      }
      assert.strictEqual(yield* Effect.promise(() => exited).pipe(Effect.timeout("10 seconds")), 1)
    }))

  it.live("an input that fails, is stopped early or whose load fails after terminates its worker; the next input gets a new one", () =>
    Effect.scoped(Effect.gen(function*() {
      const workers = yield* makeParseWorkers
      const main = yield* load(plain, false)
      /** Runs `use` on a taken worker; `failAfter`: its scope then closes with a failure, as a load whose writer failed. */
      const attempt = <A, E>(use: (w: ParseWorker) => Effect.Effect<A, E>, failAfter = false) =>
        Effect.merge(Effect.scoped(Effect.flatMap(workers.take, (w) => {
          // a thread's id reads -1 once it has exited
          const thread = w.worker.threadId
          const exited = exitOf(w)
          return Effect.flatMap(Effect.either(use(w)), (result) => {
            const outcome = { thread, result, exited }
            return failAfter ? Effect.fail(outcome) : Effect.succeed(outcome)
          })
        })))

      const failed = yield* attempt((w) => Stream.runDrain(workerBatches(readsDir(), groupsWire, options(dir), w)))
      assert.strictEqual(failed.result._tag, "Left")
      assert.strictEqual(yield* Effect.promise(() => failed.exited).pipe(Effect.timeout("10 seconds")), 1)

      const info = yield* inspectInput(plain)
      const stopped = yield* attempt((w) =>
        Effect.flatMap(openInput(info), (input) =>
          Stream.runCollect(Stream.take(workerBatches(input, groupsWire, options(plain), w), 1)))
      )
      assert.notStrictEqual(stopped.thread, failed.thread)
      assert.strictEqual(yield* Effect.promise(() => stopped.exited).pipe(Effect.timeout("10 seconds")), 1)

      // parsed to the end, but the load failed after (a writer, say): not kept either
      const after = yield* attempt((w) => load(plain, true, undefined, w), true)
      assert.deepStrictEqual(after.result._tag === "Right" ? after.result.right.out : undefined, main.out)
      assert.notStrictEqual(after.thread, stopped.thread)
      assert.strictEqual(yield* Effect.promise(() => after.exited).pipe(Effect.timeout("10 seconds")), 1)

      const next = yield* attempt((w) => load(plain, true, undefined, w))
      assert.notStrictEqual(next.thread, after.thread)
      assert.deepStrictEqual(next.result._tag === "Right" ? next.result.right.out : undefined, main.out)
    })))

  it.live("a read error on the worker is a ReadError naming the file and the cause", () =>
    Effect.gen(function*() {
      const error = yield* Stream.runDrain(workerBatches(readsDir(), groupsWire, options(dir))).pipe(Effect.flip)
      assert.strictEqual(error._tag, "ReadError")
      assert.strictEqual(error.message, `cannot read ${dir}: EISDIR: illegal operation on a directory, read`)
    }))
})
