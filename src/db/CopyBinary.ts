/**
 * PostgreSQL's binary COPY format for the built-in value types. The server takes binary
 * integers and timestamps as they are, where the text format makes it parse each one.
 * Measured on the staging load, binary COPY costs the server about a fifth less CPU, and
 * the server shares the loader's two cores with the parser (docs/benchmarks.md, session 8).
 *
 * A stream is a header, then per row a field count and per field a 32-bit length (-1 for
 * NULL) and the value's bytes, all big-endian, then a trailer.
 */
import { isBuiltIn, type RecordShape, type ValueType } from "../shape/Shape.js"
import { readTimestamp } from "../shape/Values.js"

/** How a column's validated text is written: UTF-8 text, int2, int8, timestamptz. */
export const BinaryKind = { text: 0, int2: 1, int8: 2, timestamptz: 3 } as const
export type BinaryKind = typeof BinaryKind[keyof typeof BinaryKind]

/** "PGCOPY\n\377\r\n\0", flags 0, header extension length 0 */
export const BINARY_HEADER: Buffer = Buffer.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0
])

/** a field count of -1 */
export const BINARY_TRAILER: Buffer = Buffer.from([0xff, 0xff])

/** The binary kind of a column type, if it is a built-in one (see `isBuiltIn`). */
const binaryKind = (type: ValueType): BinaryKind | undefined => {
  if (!isBuiltIn(type)) return undefined
  const spec = type.spec
  switch (spec._tag) {
    case "text":
    case "nonEmptyText":
      return BinaryKind.text
    case "id":
      return BinaryKind.int8
    case "timestamptz":
      return BinaryKind.timestamptz
    case "smallint":
      // a range past int2's passes the check but not the server: as text it fails loudly there
      return spec.min >= -32768 && spec.max <= 32767 ? BinaryKind.int2 : undefined
  }
}

/**
 * The binary kind of each of `shape`'s columns, or undefined when one of them is not a
 * built-in type: such a table is loaded as COPY text, which the server parses (and checks)
 * whatever the column's type.
 */
export const binaryKinds = (shape: RecordShape): ReadonlyArray<BinaryKind> | undefined => {
  const kinds: Array<BinaryKind> = []
  for (const c of shape.columns) {
    const kind = binaryKind(c.type)
    if (kind === undefined) return undefined
    kinds.push(kind)
  }
  return kinds
}

/** The most bytes a field of `kind` holding `value` takes, its length word included. */
export const fieldBound = (kind: BinaryKind, value: string | null): number =>
  value === null ? 4 : kind === BinaryKind.text ? 4 + 3 * value.length : 12

const TWO_32 = 4294967296

/** Writes a 32-bit big-endian integer (signed or not: the low 32 bits of `n`). */
const int32 = (b: Buffer, at: number, n: number): void => {
  b[at] = n >>> 24
  b[at + 1] = n >>> 16
  b[at + 2] = n >>> 8
  b[at + 3] = n
}

/** Writes the int8 field `hi * 2^32 + lo`, `lo` in [0, 2^32): length word and value; returns the bytes written. */
const int8Field = (b: Buffer, at: number, hi: number, lo: number): number => {
  int32(b, at, 8)
  int32(b, at + 4, hi)
  int32(b, at + 8, lo)
  return 12
}

/** Writes a safe integer as an int8 field; returns the bytes written. */
export const writeInt8Field = (b: Buffer, at: number, n: number): number => {
  const hi = Math.floor(n / TWO_32)
  return int8Field(b, at, hi, n - hi * TWO_32)
}

/** Writes a 32-bit integer field; returns the bytes written. */
export const writeInt4Field = (b: Buffer, at: number, n: number): number => {
  int32(b, at, 4)
  int32(b, at + 4, n)
  return 8
}

/** seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 */
const PG_EPOCH_SECONDS = 946684800

/** Writes a timestamp that passed `checkTimestamp` as a timestamptz field: microseconds since 2000-01-01 UTC. */
const writeTimestamp = (b: Buffer, at: number, s: string): number => {
  const t = readTimestamp(s)
  // seconds * 10^6 + micros can pass 2^53: 10^6 = 15625 * 2^6, and seconds * 15625 stays
  // below 2^53 for years 1..9999, so the product is split at 2^26 before the shift by 2^6.
  const w = (t.seconds - PG_EPOCH_SECONDS) * 15625
  let hi = Math.floor(w / 67108864)
  let lo = (w - hi * 67108864) * 64 + t.micros
  if (lo >= TWO_32) {
    hi++
    lo -= TWO_32
  }
  return int8Field(b, at, hi, lo)
}

/**
 * `b.write(s, at)` without `Buffer#write`'s argument checks: Node's own `utf8Write`, which it
 * calls after them (on every Node line; protobufjs and msgpackr call it too). The producer
 * ran 1.5 % faster (stage 2, 8 interleaved pairs: median 1.486 against 1.508 s).
 */
const utf8Write = (b: Buffer, s: string, at: number): number =>
  (b as Buffer & { utf8Write(s: string, at: number): number }).utf8Write(s, at)

/**
 * The value of a string of decimal digits (an id that passed `checkId`). `+s` costs a call into
 * V8's runtime for a string whose hash is not computed yet, as a fresh one's is not.
 */
const decimal = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) n = n * 10 + s.charCodeAt(i) - 48
  return n
}

/**
 * Writes one validated value (or NULL) as a field of `kind`; returns the bytes written.
 * The buffer must have `fieldBound(kind, value)` bytes free at `at`.
 */
export const writeField = (b: Buffer, at: number, kind: BinaryKind, value: string | null): number => {
  if (value === null) {
    int32(b, at, -1)
    return 4
  }
  switch (kind) {
    case BinaryKind.text: {
      const n = utf8Write(b, value, at + 4)
      int32(b, at, n)
      return 4 + n
    }
    case BinaryKind.int8:
      // ids of up to 15 digits are exact as numbers; longer ones go through BigInt
      if (value.length <= 15) return writeInt8Field(b, at, decimal(value))
      int32(b, at, 8)
      b.writeBigInt64BE(BigInt(value), at + 4)
      return 12
    case BinaryKind.int2: {
      const n = +value
      int32(b, at, 2)
      b[at + 4] = n >>> 8
      b[at + 5] = n
      return 6
    }
    case BinaryKind.timestamptz:
      return writeTimestamp(b, at, value)
  }
}
