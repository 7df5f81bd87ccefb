import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import { writeEach } from "../src/pipeline/Writers.js"

/** A write that takes `millis`, recording how many run at once and which finished or were interrupted. */
const recorder = () => {
  const log = { running: 0, most: 0, taken: [] as Array<number>, finished: [] as Array<number>, interrupted: [] as Array<number> }
  const write = (millis: (i: number) => number, fails?: number) => (i: number) =>
    Effect.gen(function*() {
      log.taken.push(i)
      log.running++
      log.most = Math.max(log.most, log.running)
      yield* Effect.sleep(millis(i))
      if (i === fails) return yield* Effect.fail(`write ${i} failed`)
      log.finished.push(i)
    }).pipe(
      Effect.onInterrupt(() => Effect.sync(() => log.interrupted.push(i))),
      Effect.ensuring(Effect.sync(() => log.running--))
    )
  return { log, write }
}

const range = (n: number) => Stream.range(1, n)

describe("writeEach", () => {
  it.live("writes every item, at most `writers` at once, each as soon as a writer is free", () =>
    Effect.gen(function*() {
      const { log, write } = recorder()
      // item 1 is slow: the others pass it, as they would a batch in a retry's backoff
      yield* writeEach(range(12), 3, write((i) => (i === 1 ? 120 : 5)))
      assert.deepStrictEqual([...log.finished].sort((a, b) => a - b), Array.from({ length: 12 }, (_, k) => k + 1))
      assert.strictEqual(log.most, 3)
      assert.strictEqual(log.finished.at(-1), 1)
      assert.strictEqual(log.running, 0)
    }))

  it.live("a failed write fails the whole at once: no more items are taken, and the writes in flight are interrupted", () =>
    Effect.gen(function*() {
      const { log, write } = recorder()
      const exit = yield* Effect.exit(writeEach(range(100), 3, write((i) => (i === 2 ? 10 : 200), 2)))
      assert.deepStrictEqual(exit, Exit.fail("write 2 failed"))
      // the failed write's slot may let one more item in before the load stops: it is interrupted too
      assert.includeMembers(log.taken, [1, 2, 3])
      assert.isAtMost(log.taken.length, 4)
      assert.deepStrictEqual(log.finished, [])
      assert.deepStrictEqual([...log.interrupted].sort(), log.taken.filter((i) => i !== 2).sort())
      assert.strictEqual(log.running, 0)
    }))

  it.live("a failed stream fails the whole, and the writes in flight are interrupted", () =>
    Effect.gen(function*() {
      const { log, write } = recorder()
      const items = Stream.concat(range(2), Stream.fromEffect(Effect.zipRight(Effect.sleep(10), Effect.fail("read failed"))))
      const exit = yield* Effect.exit(writeEach(items, 3, write(() => 200)))
      assert.deepStrictEqual(exit, Exit.fail("read failed"))
      assert.deepStrictEqual(log.finished, [])
      assert.deepStrictEqual([...log.interrupted].sort(), [1, 2])
    }))

  it.live("when the stream ends, the writes in flight finish first; the last of them failing still fails the whole", () =>
    Effect.gen(function*() {
      const { log, write } = recorder()
      yield* writeEach(range(3), 3, write(() => 30))
      assert.deepStrictEqual([...log.finished].sort(), [1, 2, 3])
      const last = recorder()
      const exit = yield* Effect.exit(writeEach(range(3), 3, last.write((i) => (i === 3 ? 40 : 10), 3)))
      assert.deepStrictEqual(exit, Exit.fail("write 3 failed"))
      assert.deepStrictEqual([...last.log.finished].sort(), [1, 2])
    }))
})
