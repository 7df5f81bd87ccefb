import { assert, describe, it } from "@effect/vitest"
import { ByteOffsets } from "../src/xml/ByteOffsets.js"
import { random } from "./utils.js"

/** A deterministic mix of 1-, 2-, 3- and 4-byte characters, and runs of ASCII alone. */
const sampleText = (n: number, seed: number): string => {
  const pieces = ["a", "<g>", "ж", "€", "😀", " ", "long ascii run, long enough for the slice path of the count "]
  const next = random(seed)
  let s = ""
  while (s.length < n) s += pieces[Math.floor(next() * pieces.length)]!
  return s
}

describe("ByteOffsets", () => {
  it("gives the byte offset of any position, asked in any order, over chunks of any text", () => {
    const base = 1000
    const chunks = [sampleText(5000, 1), "ascii only ".repeat(300), sampleText(3000, 2), "", sampleText(7000, 3)]
    const offsets = new ByteOffsets(base)
    for (const c of chunks) offsets.push(c, Buffer.byteLength(c), 0)
    const text = chunks.join("")
    // positions on character boundaries (never between the halves of a surrogate pair)
    const positions: Array<number> = []
    for (let i = 0; i <= text.length; i++) {
      const c = text.charCodeAt(i - 1)
      if (!(c >= 0xd800 && c <= 0xdbff)) positions.push(i)
    }
    const next = random(7)
    for (let k = 0; k < 3000; k++) {
      const p = positions[Math.floor(next() * positions.length)]!
      assert.strictEqual(offsets.at(p), base + Buffer.byteLength(text.slice(0, p)), `position ${p}`)
    }
    for (const p of [0, text.length, ...positions.slice(-50).reverse(), ...positions.slice(0, 50)]) {
      assert.strictEqual(offsets.at(p), base + Buffer.byteLength(text.slice(0, p)), `position ${p}`)
    }
  })
})
