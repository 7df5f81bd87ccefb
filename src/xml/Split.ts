/**
 * One plain file split into byte ranges, each parsed by its own worker, so a load can run
 * past one parser's speed. A range ends just past a top-level record's end tag, found by a
 * byte search: `</record>` with only whitespace before the next "<". The search can be
 * fooled (the same bytes inside a comment, a CDATA section, or a nested element of the same
 * name), so it is only a guess: the parser of the range before checks it on reaching it
 * (`Producer.endAtRecord`), and a range that starts at a wrong guess is dropped, its rows
 * deleted, while the range before parses on through it (see `Ingest.ts`).
 *
 * Ranges number their batches and records apart, so they need no coordination and document
 * order is kept: range k's batches are k·RANGE_SEQS + 1, …, its records k·RANGE_ORDS + 1, ….
 */
import * as fs from "node:fs"
import * as os from "node:os"

/** batch numbers per range; 64 ranges of them fill `batch_seq integer` */
export const RANGE_SEQS = 2 ** 25

/** record numbers per range (`ord bigint`, exact as a JavaScript number for 64 ranges) */
export const RANGE_ORDS = 2 ** 45

/** The range a batch belongs to. */
export const rangeOf = (seq: number): number => Math.floor((seq - 1) / RANGE_SEQS)

/** a range shorter than this is not worth a worker's start (~50 ms and ~25 MB) */
export const MIN_RANGE_BYTES = 1024 * 1024

/**
 * A file at least this large is parsed in two ranges by default (`parsers: "auto"`), on a
 * machine of 2 CPUs or more. Measured on 2 vCPUs with PostgreSQL on the same machine (ingest,
 * 2 parsers against 1, medians): 10 MB 0.58 against 0.45 s, 30 MB 0.80 against 0.77 s, 100 MB
 * 1.54 against 1.76 s, 1 GB 11.1 against 14.6 s; peak RSS ~25 MB more. A second worker's boot and
 * cold start cost more than a smaller file gives back. On a machine whose server took 3×
 * the CPU for the same COPY, 1 GB was 3 % slower with 2 (docs/benchmarks.md, sessions 14, 15).
 */
export const AUTO_SPLIT_BYTES = 64 * 2 ** 20

/** The parse workers for a plain file of `size` bytes under the `parsers` setting, on `cpus` CPUs. */
export const parsersFor = (parsers: number | "auto", size: number, cpus = os.availableParallelism()): number =>
  parsers !== "auto" ? parsers : size >= AUTO_SPLIT_BYTES && cpus >= 2 ? 2 : 1

/** how far past each split point the search looks before giving that split up */
const SEARCH_BYTES = 16 * 1024 * 1024

const WINDOW = 1024 * 1024

/** An XML white-space byte. */
export const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

/**
 * The first byte past `</element>` at or after `from` that only whitespace separates from
 * the next "<", or undefined within SEARCH_BYTES.
 */
const nextRecordEnd = (fd: number, size: number, from: number, needle: Buffer): number | undefined => {
  const buffer = Buffer.allocUnsafe(WINDOW)
  const limit = Math.min(size, from + SEARCH_BYTES)
  let at = from
  while (at < limit) {
    const n = fs.readSync(fd, buffer, 0, Math.min(WINDOW, size - at), at)
    const window = buffer.subarray(0, n)
    let i = window.indexOf(needle)
    while (i >= 0) {
      let j = i + needle.length
      while (j < n && isSpace(window[j]!)) j++
      if (j < n && window[j] === 0x3c) return at + i + needle.length
      // the whitespace runs to the window's end: look again from this match in the next one
      if (j === n) break
      i = window.indexOf(needle, i + 1)
    }
    if (at + n >= size) return undefined
    at = i > 0 ? at + i : at + n - needle.length
  }
  return undefined
}

/**
 * Where ranges of a plain file of `size` bytes end, for up to `parts` ranges of about equal
 * size whose records are `element`s: ascending byte offsets, fewer than `parts - 1` when the
 * file is small or no record end is found near a split point.
 */
export const splitPoints = (path: string, size: number, parts: number, element: string): Array<number> => {
  const count = Math.min(parts, Math.floor(size / MIN_RANGE_BYTES))
  if (count < 2) return []
  const needle = Buffer.from(`</${element}>`)
  const fd = fs.openSync(path, "r")
  try {
    const points: Array<number> = []
    for (let k = 1; k < count; k++) {
      const from = Math.max(Math.floor(size * k / count), points.at(-1) ?? 0)
      const point = nextRecordEnd(fd, size, from, needle)
      if (point !== undefined && point < size && point > (points.at(-1) ?? 0)) points.push(point)
    }
    return points
  } finally {
    fs.closeSync(fd)
  }
}
