import { assert, describe, it } from "@effect/vitest"
import { copyLine, escapeCopyText } from "../src/db/CopyText.js"
import { unescapeField } from "./copyText.js"

/** PostgreSQL's COPY text reading of one field, for the escapes the encoder may produce. */
const decodeLine = (line: string): Array<string | null> => {
  if (!line.endsWith("\n")) assert.fail(`a COPY line ends with a newline: ${JSON.stringify(line)}`)
  const body = line.slice(0, -1)
  if (/[\n\r]/.test(body)) assert.fail(`raw newline or CR inside a COPY line: ${JSON.stringify(line)}`)
  return body.split("\t").map(unescapeField)
}

/** mulberry32: a small deterministic PRNG, so failures reproduce. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const ALPHABET = ["\\", "\t", "\n", "\r", "N", ".", " ", "a", "\\N", "ж", "€", "😀", "𝄞", "\"", "'", ",", "|"]

describe("escapeCopyText", () => {
  it("escapes backslash, tab, newline and carriage return", () => {
    assert.strictEqual(escapeCopyText("a\\b"), "a\\\\b")
    assert.strictEqual(escapeCopyText("a\tb"), "a\\tb")
    assert.strictEqual(escapeCopyText("a\nb"), "a\\nb")
    assert.strictEqual(escapeCopyText("a\rb"), "a\\rb")
    assert.strictEqual(escapeCopyText("\r\n\t\\"), "\\r\\n\\t\\\\")
    assert.strictEqual(escapeCopyText("\\\\"), "\\\\\\\\")
  })

  it("a literal \\N in the text is not NULL", () => {
    assert.strictEqual(escapeCopyText("\\N"), "\\\\N")
    assert.strictEqual(unescapeField(escapeCopyText("\\N")), "\\N")
  })

  it("leaves everything else untouched", () => {
    for (const s of ["", "plain", "N", "Группа №1 & co", "😀🎉 𝄞", "quotes \" ' , ; | {}", "\u00a0\u2028\u2029\u0085"]) {
      assert.strictEqual(escapeCopyText(s), s)
    }
    assert.strictEqual(escapeCopyText("Привет, мир 😀"), "Привет, мир 😀")
  })
})

describe("copyLine", () => {
  it("joins a prefix and values with tabs, null as \\N, and ends with a newline", () => {
    assert.strictEqual(copyLine("1\t2\t3", ["a", null, "", "b\tc"]), "1\t2\t3\ta\t\\N\t\tb\\tc\n")
  })

  it("tells the empty string from null", () => {
    assert.deepStrictEqual(decodeLine(copyLine("p", ["", null, "\\N", "N"])), ["p", "", null, "\\N", "N"])
  })

  it("with no values is the prefix alone", () => {
    assert.strictEqual(copyLine("7", []), "7\n")
  })

  it("round-trips 10k random strings", () => {
    const random = prng(20260101)
    for (let n = 0; n < 10_000; n++) {
      const values: Array<string | null> = []
      const fields = 1 + Math.floor(random() * 4)
      for (let f = 0; f < fields; f++) {
        if (random() < 0.1) {
          values.push(null)
          continue
        }
        let s = ""
        const length = Math.floor(random() * 12)
        for (let i = 0; i < length; i++) s += ALPHABET[Math.floor(random() * ALPHABET.length)]!
        values.push(s)
      }
      const expected = ["1", "1", String(n), ...values]
      const decoded = decodeLine(copyLine("1\t1\t" + n, values))
      if (JSON.stringify(decoded) !== JSON.stringify(expected)) assert.deepStrictEqual(decoded, expected)
    }
  })
})
