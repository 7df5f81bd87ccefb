import { assert, describe, it } from "@effect/vitest"
import { ValueType } from "../src/shape/Shape.js"
import { checkId, checkIntRange, checkTimestamp } from "../src/shape/Values.js"

const ok = (check: (s: string) => string | undefined, values: ReadonlyArray<string>) => {
  for (const v of values) assert.isUndefined(check(v), `expected ${JSON.stringify(v)} to be valid`)
}

const bad = (check: (s: string) => string | undefined, values: ReadonlyArray<string>) => {
  for (const v of values) assert.isString(check(v), `expected ${JSON.stringify(v)} to be rejected`)
}

describe("checkId", () => {
  it("accepts 1..2^63-1 in plain decimal", () => {
    ok(checkId, ["1", "7", "10", "1000000", "9223372036854775806", "9223372036854775807", "1000000000000000000"])
  })

  it("rejects zero, leading zeros, signs, spaces and overflow", () => {
    bad(checkId, [
      "",
      "0",
      "00",
      "01",
      "-1",
      "+1",
      " 1",
      "1 ",
      "1 2",
      "9223372036854775808",
      "9999999999999999999",
      "10000000000000000000",
      "12345678901234567890",
      "1e3",
      "0x1F",
      "1.0",
      "١",
      "１"
    ])
  })

  it("names the rule in its reason", () => {
    assert.strictEqual(checkId("0"), "not an id in 1..2^63-1")
  })
})

describe("checkTimestamp", () => {
  it("accepts Z and ±hh:mm with 0..6 fraction digits", () => {
    ok(checkTimestamp, [
      "2026-01-01T00:00:00Z",
      "2026-01-01T00:00:00+03:00",
      "2026-01-01T00:00:00-03:00",
      "2026-01-01T00:00:00-00:00",
      "2026-01-01T00:00:00.1Z",
      "2026-01-01T00:00:00.12Z",
      "2026-01-01T00:00:00.123Z",
      "2026-01-01T00:00:00.1234Z",
      "2026-01-01T00:00:00.12345Z",
      "2026-01-01T00:00:00.123456Z",
      "2026-01-01T00:00:00.123456+05:30",
      "2026-12-31T23:59:59.999999Z",
      "0001-01-01T00:00:00Z",
      "9999-12-31T23:59:59Z"
    ])
  })

  it("knows leap years", () => {
    ok(checkTimestamp, ["2024-02-29T12:00:00Z", "2000-02-29T12:00:00Z", "2023-02-28T12:00:00Z"])
    bad(checkTimestamp, ["2023-02-29T12:00:00Z", "1900-02-29T12:00:00Z", "2024-02-30T12:00:00Z"])
  })

  it("knows month lengths", () => {
    ok(checkTimestamp, ["2026-01-31T00:00:00Z", "2026-04-30T00:00:00Z", "2026-12-31T00:00:00Z"])
    bad(checkTimestamp, [
      "2026-04-31T00:00:00Z",
      "2026-06-31T00:00:00Z",
      "2026-09-31T00:00:00Z",
      "2026-11-31T00:00:00Z",
      "2026-01-32T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-13-10T00:00:00Z",
      "2026-01-00T00:00:00Z"
    ])
  })

  it("rejects times past 23:59:59", () => {
    bad(checkTimestamp, [
      "2026-01-01T24:00:00Z",
      "2026-01-01T23:60:00Z",
      "2026-01-01T23:59:60Z"
    ])
  })

  it("accepts offsets up to 14:59", () => {
    ok(checkTimestamp, ["2026-01-01T00:00:00+14:59", "2026-01-01T00:00:00-14:59", "2026-01-01T00:00:00+14:00"])
    bad(checkTimestamp, ["2026-01-01T00:00:00+15:00", "2026-01-01T00:00:00-15:00", "2026-01-01T00:00:00+14:60"])
    assert.strictEqual(checkTimestamp("2026-01-01T00:00:00+15:00"), "time zone offset out of range")
  })

  it("rejects anything not in the one accepted form", () => {
    bad(checkTimestamp, [
      "",
      "yesterday",
      "2026-01-01T00:00:00",
      "2026-01-01T00:00:00.000",
      "2026-01-01t00:00:00Z",
      "2026-01-01T00:00:00z",
      "2026-01-01 00:00:00Z",
      "2026-01-01T00:00:00.1234567Z",
      "2026-01-01T00:00:00.Z",
      "2026-1-1T00:00:00Z",
      "2026-01-01T0:00:00Z",
      "2026-01-01T00:00Z",
      "2026-01-01",
      "0000-01-01T00:00:00Z",
      "2026-01-01T00:00:00+0300",
      "2026-01-01T00:00:00+03",
      "2026-01-01T00:00:00+03:00:00",
      "2026-01-01T00:00:00Z ",
      " 2026-01-01T00:00:00Z",
      "2026-01-01T00:00:00ZZ",
      "2026-01-01T00:00:00UTC",
      "+2026-01-01T00:00:00Z",
      "20260-01-01T00:00:00Z",
      "２026-01-01T00:00:00Z"
    ])
  })

  it("says which part is wrong", () => {
    assert.strictEqual(checkTimestamp("2023-02-29T00:00:00Z"), "not a calendar date")
    assert.strictEqual(checkTimestamp("2026-01-01T24:00:00Z"), "not a time of day")
    assert.strictEqual(checkTimestamp("yesterday"), "not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)")
  })
})

describe("checkIntRange", () => {
  const severity = checkIntRange(0, 7)

  it("accepts 0..7", () => {
    ok(severity, ["0", "1", "2", "3", "4", "5", "6", "7"])
  })

  it("rejects values out of range and non-canonical forms", () => {
    bad(severity, ["8", "9", "10", "-1", "-", "03", "00", "", " 3", "3 ", "+3", "3.0", "1e0", "٣", "999999", "1234567"])
  })

  it("handles negative ranges", () => {
    const r = checkIntRange(-5, 5)
    ok(r, ["-5", "-1", "0", "5"])
    bad(r, ["-6", "6", "-01", "--1"])
    assert.strictEqual(r("6"), "not an integer in -5..5")
  })
})

describe("types marked plain", () => {
  // COPY text would need these escaped; a plain type's value goes into a line as it is
  const escaped = ["\t", "\n", "\r", "\\"]

  it("are the built-in types whose checks reject every value holding a tab, newline, carriage return or backslash", () => {
    const types: ReadonlyArray<ValueType> = [
      ValueType.id,
      ValueType.timestamptz,
      ValueType.smallint(-5, 5),
      ValueType.text,
      ValueType.nonEmptyText
    ]
    assert.deepStrictEqual(types.map((t) => t.plain === true), [true, true, true, false, false])
    const valid: ReadonlyArray<readonly [ValueType, string]> = [
      [ValueType.id, "12"],
      [ValueType.timestamptz, "2026-01-01T00:00:00.5+01:00"],
      [ValueType.smallint(-5, 5), "-5"]
    ]
    for (const [type, value] of valid) {
      assert.isUndefined(type.check(value))
      for (let at = 0; at <= value.length; at++) {
        for (const c of escaped) bad(type.check, [value.slice(0, at) + c + value.slice(at), value.slice(0, at) + c])
      }
    }
  })
})
