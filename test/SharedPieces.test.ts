import { assert, describe, it } from "@effect/vitest"
import { PIECE } from "../src/pipeline/Batch.js"
import { MainRegions, regionIds, WorkerRegions } from "../src/xml/SharedPieces.js"

describe("shared COPY regions", () => {
  it("a released or reclaimed region is handed out again, and the main thread sees its bytes", () => {
    const worker = new WorkerRegions()
    const main = new MainRegions()
    const a = worker.allocate(PIECE)
    const b = worker.allocate(PIECE)
    const big = worker.allocate(3 * PIECE)
    assert.strictEqual(a.byteLength, PIECE)
    assert.instanceOf(a.buffer, SharedArrayBuffer)
    // a larger piece gets a large region, a power of two in size, shared as well
    assert.strictEqual(big.byteLength, 4 * PIECE)
    assert.instanceOf(big.buffer, SharedArrayBuffer)
    const changes = worker.takeChanges()
    assert.deepStrictEqual(changes.made.map((r) => r.id), [0, 1, 2])
    assert.deepStrictEqual(changes.dropped, [])
    assert.deepStrictEqual(worker.takeChanges(), { made: [], dropped: [] })
    main.apply(changes)

    a.write("hello\n")
    big.write("world\n")
    const pieces = [worker.piece(a.subarray(0, 6)), worker.piece(big.subarray(0, 6))]
    assert.deepStrictEqual(pieces, [{ region: 0, length: 6 }, { region: 2, length: 6 }])
    assert.deepStrictEqual(regionIds(pieces), [0, 2])
    // the main thread sees the worker's bytes without a copy
    assert.strictEqual(pieces.map((p) => main.view(p).toString()).join(""), "hello\nworld\n")
    assert.throws(() => worker.piece(Buffer.alloc(10)), /outside the shared regions/)

    worker.release(regionIds(pieces))
    assert.strictEqual(worker.allocate(PIECE), a)
    assert.strictEqual(worker.allocate(2 * PIECE + 1), big)
    worker.reclaim(b)
    assert.strictEqual(worker.allocate(PIECE), b)
    worker.reclaim(big)
    const fresh = worker.allocate(PIECE)
    assert.notStrictEqual(fresh.buffer, a.buffer)
    assert.notStrictEqual(fresh.buffer, b.buffer)
    assert.notStrictEqual(fresh.buffer, big.buffer)
    assert.deepStrictEqual(worker.takeChanges().made.map((r) => r.id), [3])
  })
})

describe("large regions", () => {
  it("the smallest free one that fits is reused; one past 1 MiB is dropped once released, and the main thread forgets it", () => {
    const worker = new WorkerRegions()
    const main = new MainRegions()
    const small = worker.allocate(2 * PIECE)
    const large = worker.allocate(5 * PIECE)
    assert.deepStrictEqual([small.length, large.length], [2 * PIECE, 8 * PIECE])
    // in use: never handed out again
    assert.notStrictEqual(worker.allocate(2 * PIECE).buffer, small.buffer)
    worker.reclaim(small)
    worker.reclaim(large)
    assert.strictEqual(worker.allocate(PIECE + 1).buffer, small.buffer)
    assert.strictEqual(worker.allocate(PIECE + 1).buffer, large.buffer)
    // none free: a new one
    assert.notStrictEqual(worker.allocate(PIECE + 1).buffer, small.buffer)
    main.apply(worker.takeChanges())

    const huge = worker.allocate(2 ** 20 + 1)
    assert.strictEqual(huge.length, 2 ** 21)
    huge.write("long line")
    const piece = worker.piece(huge.subarray(0, 9))
    const made = worker.takeChanges()
    main.apply(made)
    assert.strictEqual(main.view(piece).toString(), "long line")
    worker.release([piece.region])
    // dropped, not kept: the next long line gets a new region, and the main thread is told
    const next = worker.allocate(2 ** 20 + 1)
    assert.notStrictEqual(next.buffer, huge.buffer)
    const changes = worker.takeChanges()
    assert.deepStrictEqual(changes.dropped, [piece.region])
    assert.notInclude(changes.made.map((r) => r.id), piece.region)
    main.apply(changes)
    assert.throws(() => main.view(piece))
  })
})
