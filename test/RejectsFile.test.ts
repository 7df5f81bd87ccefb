import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeRejectsFile, type RejectLine } from "../src/pipeline/RejectsFile.js"
import { afterAll } from "vitest"
import { tmpDir } from "./utils.js"

const dir = tmpDir()
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const reject = (ord: number): RejectLine => ({
  file: "in.xml",
  offset: ord * 100,
  element: "event",
  id: String(ord),
  reason: "bad attribute severity: \"99\" not in 0..7",
  ord
})

describe("the rejects file", () => {
  it.scoped("lines name their run and batch; filed counts a run's lines per batch, for its input only", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "rejects.ndjson")
      const rejects = yield* makeRejectsFile(file)
      assert.deepStrictEqual([...(yield* rejects.filed("in.xml", 1))], [], "no file yet")
      yield* rejects.append(1, 1, [reject(1), reject(2)])
      yield* rejects.append(2, 1, [reject(3)])
      yield* rejects.append(1, 2, [reject(4)])
      yield* rejects.append(1, 3, [{ ...reject(5), file: "other.xml" }])
      const lines = fs.readFileSync(file, "utf8").split("\n")
      assert.deepStrictEqual(
        JSON.parse(lines[0]!),
        {
          run: 1,
          batch: 1,
          file: "in.xml",
          offset: 100,
          element: "event",
          id: "1",
          reason: "bad attribute severity: \"99\" not in 0..7",
          ord: 1
        }
      )
      assert.deepStrictEqual([...(yield* rejects.filed("in.xml", 1))], [[1, 2], [2, 1]])
      assert.deepStrictEqual([...(yield* rejects.filed("in.xml", 2))], [[1, 1]])
    }))

  it.scoped("a half line left by a cut-short write is not counted, and the next line starts on its own", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "torn.ndjson")
      const whole = `{"run":7,"batch":1,"file":"in.xml","offset":100,"element":"event","id":"1","reason":"r","ord":1}\n`
      fs.writeFileSync(file, whole + whole.slice(0, 40))
      const rejects = yield* makeRejectsFile(file)
      assert.deepStrictEqual([...(yield* rejects.filed("in.xml", 7))], [[1, 1]])
      yield* rejects.append(7, 2, [reject(2)])
      const lines = fs.readFileSync(file, "utf8").split("\n")
      assert.strictEqual(lines.length, 4)
      assert.strictEqual(lines[1], whole.slice(0, 40))
      assert.strictEqual(JSON.parse(lines[2]!).batch, 2)
      assert.strictEqual(lines[3], "")

      // a new run appending to the same file, without reading it first
      const other = path.join(dir, "torn-again.ndjson")
      fs.writeFileSync(other, whole.slice(0, 40))
      yield* (yield* makeRejectsFile(other)).append(8, 1, [reject(3)])
      assert.deepStrictEqual(fs.readFileSync(other, "utf8").split("\n").map((l) => l.slice(0, 18)), [
        whole.slice(0, 18),
        `{"run":8,"batch":1`,
        ""
      ])
    }))
})
