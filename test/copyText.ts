import { BinaryKind } from "../src/db/CopyBinary.js"
import type { TableFormat } from "../src/pipeline/Batch.js"

/** Reads one COPY text field back: `\N` is NULL; the escapes `\\`, `\t`, `\n`, `\r` are undone. */
export const unescapeField = (field: string): string | null => {
  if (field === "\\N") return null
  let out = ""
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!
    if (c !== "\\") {
      out += c
      continue
    }
    const e = field[++i]
    if (e === "\\") out += "\\"
    else if (e === "t") out += "\t"
    else if (e === "n") out += "\n"
    else if (e === "r") out += "\r"
    else throw new Error(`bad escape \\${e} in ${JSON.stringify(field)}`)
  }
  return out
}

/** A binary timestamptz (microseconds since 2000-01-01 UTC) as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`. */
const isoOf = (micros: bigint): string => {
  const epoch2000 = 946684800000000n
  const total = micros + epoch2000
  const fraction = ((total % 1000000n) + 1000000n) % 1000000n
  const seconds = (total - fraction) / 1000000n
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19)
  return fraction === 0n ? `${whole}Z` : `${whole}.${String(fraction).padStart(6, "0")}Z`
}

/**
 * A table's COPY data back to rows of fields, staging prefix first: COPY text split and
 * unescaped, or binary COPY rows (no header or trailer) read by `format`'s column kinds,
 * integers in decimal and timestamps as UTC instants.
 */
export const copyRows = (chunks: ReadonlyArray<Uint8Array>, format: TableFormat): Array<Array<string | null>> => {
  const data = Buffer.concat(chunks)
  if (format._tag === "text") {
    const lines = data.toString("utf8").split("\n")
    if (lines.pop() !== "") throw new Error("COPY text does not end with a newline")
    return lines.map((l) => l.split("\t").map(unescapeField))
  }
  // run_id and batch_seq are int4, which no column kind is
  const kinds: Array<BinaryKind | "int4"> = ["int4", "int4", BinaryKind.int8, ...format.kinds]
  const rows: Array<Array<string | null>> = []
  let at = 0
  while (at < data.length) {
    const count = data.readInt16BE(at)
    if (count !== kinds.length) throw new Error(`row of ${count} fields at byte ${at}, expected ${kinds.length}`)
    at += 2
    const row: Array<string | null> = []
    for (const kind of kinds) {
      const n = data.readInt32BE(at)
      at += 4
      if (n === -1) {
        row.push(null)
        continue
      }
      const field = data.subarray(at, at + n)
      at += n
      const expected = kind === BinaryKind.int2 ? 2 : kind === "int4" ? 4 : kind === BinaryKind.text ? n : 8
      if (n !== expected) throw new Error(`field of ${n} bytes, expected ${expected}`)
      row.push(
        kind === BinaryKind.text
          ? field.toString("utf8")
          : kind === BinaryKind.int2
          ? String(field.readInt16BE(0))
          : kind === "int4"
          ? String(field.readInt32BE(0))
          : kind === BinaryKind.int8
          ? String(field.readBigInt64BE(0))
          : isoOf(field.readBigInt64BE(0))
      )
    }
    rows.push(row)
  }
  return rows
}
