import { assert, describe, it } from "@effect/vitest"
import { isUtf8 } from "node:buffer"
import { completeSlices, decodeUtf8 } from "../src/xml/Producer.js"
import { random } from "./utils.js"

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** Valid UTF-8 of every length of character, the edges of each range, a BOM and NULs. */
const samples = [
  "",
  "\uFEFF<groups/>",
  "plain ascii \u0000 with a NUL",
  "Группа №2, Москва",
  "€ \u0800 \uFFFD \uFFFF \uFEFF inside",
  "😀 \u{10000} \u{10FFFF} astral",
  "\u007F\u0080\u07FF\u0800\uD7FF\uE000"
]

describe("decodeUtf8", () => {
  it("decodes valid UTF-8 exactly as TextDecoder does, a BOM kept as U+FEFF", () => {
    for (const s of samples) {
      const bytes = new Uint8Array(Buffer.from(s, "utf8"))
      assert.strictEqual(decodeUtf8(bytes), s)
      assert.strictEqual(decodeUtf8(bytes), decoder.decode(bytes))
    }
    // code points of each UTF-8 length in turn (1 to 4 bytes), surrogates left out
    const next = random(1)
    const ranges = [[0, 0x80], [0x80, 0x800], [0x800, 0xd800], [0xe000, 0x10000], [0x10000, 0x110000]] as const
    let mixed = ""
    for (let i = 0; i < 20_000; i++) {
      const [lo, hi] = ranges[i % ranges.length]!
      mixed += String.fromCodePoint(lo + Math.floor(next() * (hi - lo)))
    }
    const bytes = Buffer.from(mixed, "utf8")
    assert.strictEqual(decodeUtf8(bytes), mixed)
    // a view from inside the buffer, starting and ending on characters
    const chars = Array.from(mixed)
    const view = bytes.subarray(Buffer.byteLength(chars.slice(0, 5).join("")), Buffer.byteLength(chars.slice(0, 12_000).join("")))
    assert.isTrue(isUtf8(view))
    assert.strictEqual(decodeUtf8(view), chars.slice(5, 12_000).join(""))
  })

  it("completeSlices cuts input, however it is chunked, into slices that end on characters", () => {
    const text = `${"Ж😀a".repeat(10_000)}`
    const input = Buffer.from(text, "utf8")
    for (const size of [1, 2, 5, 65_537, input.length]) {
      let pending = new Uint8Array(0)
      let out = ""
      const sizes: Array<number> = []
      for (let at = 0; at < input.length; at += size) {
        pending = completeSlices(pending, input.subarray(at, at + size), (slice) => {
          sizes.push(slice.length)
          out += decodeUtf8(slice)
        })
      }
      assert.strictEqual(pending.length, 0, `chunk size ${size}`)
      assert.strictEqual(out, text, `chunk size ${size}`)
      assert.isAtMost(Math.max(...sizes), 32 * 1024 + 3, `chunk size ${size}`)
    }
  })
})
