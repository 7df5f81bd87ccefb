import { assert, describe, it } from "@effect/vitest"
import { PIECE } from "../src/pipeline/Batch.js"
import { MainRegions, regionIds, WorkerRegions } from "../src/xml/SharedPieces.js"

describe("shared COPY regions", () => {
  it("a released or reclaimed region is handed out again; a larger piece has a buffer of its own, not shared", () => {
    const worker = new WorkerRegions()
    const main = new MainRegions()
    const a = worker.allocate(PIECE)
    const b = worker.allocate(PIECE)
    const big = worker.allocate(3 * PIECE)
    assert.strictEqual(a.byteLength, PIECE)
    assert.instanceOf(a.buffer, SharedArrayBuffer)
    assert.strictEqual(big.byteLength, 3 * PIECE)
    assert.notInstanceOf(big.buffer, SharedArrayBuffer)
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

describe("buffers of their own", () => {
  it("once posted, the largest of up to 1 MiB is reused for the next long line; a larger one is not kept", () => {
    const worker = new WorkerRegions()
    const small = worker.allocate(2 * PIECE)
    const large = worker.allocate(4 * PIECE)
    // not posted yet: still the batch's, so never handed out again
    assert.notStrictEqual(worker.allocate(2 * PIECE).buffer, small.buffer)
    worker.posted([worker.piece(small.subarray(0, 10))])
    worker.posted([worker.piece(large.subarray(0, 10))])
    worker.posted([worker.piece(worker.allocate(PIECE).subarray(0, 10))])
    // the larger is kept, whole, and handed out once
    const reused = worker.allocate(3 * PIECE)
    assert.strictEqual(reused.buffer, large.buffer)
    assert.strictEqual(reused.byteLength, 4 * PIECE)
    assert.notStrictEqual(worker.allocate(3 * PIECE).buffer, large.buffer)
    // too small for the request: a fresh one, and the spare stays
    worker.posted([worker.piece(small)])
    assert.notStrictEqual(worker.allocate(3 * PIECE).buffer, small.buffer)
    assert.strictEqual(worker.allocate(2 * PIECE).buffer, small.buffer)
    // past 1 MiB: not kept
    const huge = worker.allocate(2 ** 20 + 1)
    worker.posted([worker.piece(huge)])
    assert.notStrictEqual(worker.allocate(2 * PIECE).buffer, huge.buffer)
  })
})
