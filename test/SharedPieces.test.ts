import { assert, describe, it } from "@effect/vitest"
import { PIECE } from "../src/pipeline/Batch.js"
import { MainRegions, regionIds, WorkerRegions } from "../src/xml/SharedPieces.js"

describe("shared COPY regions", () => {
  it("a released or reclaimed region is handed out again; a larger piece has a shared buffer of its own, not pooled", () => {
    const worker = new WorkerRegions()
    const main = new MainRegions()
    const a = worker.allocate(PIECE)
    const b = worker.allocate(PIECE)
    const big = worker.allocate(3 * PIECE)
    assert.strictEqual(a.byteLength, PIECE)
    assert.instanceOf(a.buffer, SharedArrayBuffer)
    assert.strictEqual(big.byteLength, 3 * PIECE)
    // shared too: a transfer would detach it, and the worker's V8 would then deoptimize its loops
    assert.instanceOf(big.buffer, SharedArrayBuffer)
    const made = worker.takeNew()
    assert.deepStrictEqual(made.map((r) => r.id), [0, 1])
    assert.deepStrictEqual(worker.takeNew(), [])
    main.add(made)

    a.write("hello\n")
    big.write("world\n")
    const pieces = [worker.piece(a.subarray(0, 6)), worker.piece(big.subarray(0, 6))]
    assert.deepStrictEqual(pieces[0], { region: 0, length: 6 })
    assert.strictEqual((pieces[1] as { own: Uint8Array }).own.buffer, big.buffer)
    assert.deepStrictEqual(regionIds(pieces), [0])
    // the main thread sees the worker's bytes without a copy
    assert.strictEqual(pieces.map((p) => main.view(p).toString()).join(""), "hello\nworld\n")

    worker.release(regionIds(pieces))
    assert.strictEqual(worker.allocate(PIECE), a)
    worker.reclaim(b)
    assert.strictEqual(worker.allocate(PIECE), b)
    worker.reclaim(big)
    const fresh = worker.allocate(PIECE)
    assert.notStrictEqual(fresh.buffer, a.buffer)
    assert.notStrictEqual(fresh.buffer, b.buffer)
    assert.deepStrictEqual(worker.takeNew().map((r) => r.id), [2])
  })
})
