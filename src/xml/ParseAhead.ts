/**
 * Parsing ahead. The parse worker the CLI starts before it loads its bundle (`src/bin.ts`)
 * would idle while the CLI loads, reads its settings, connects and opens the run: 0.06 s here,
 * 0.2–0.3 s on slower machines, with the parser cold at first. So it parses the first input
 * meanwhile, on a guess of what it will be told: the first argument that names a plain XML
 * file, with the default settings and shape (or its first range, when it is split). When told, it keeps what it parsed only if the
 * guess was right to the letter (the same file, still unchanged, the same shape and options
 * but for the run's id, which it then sets in the rows); else it drops it, as if it had
 * never started. It stops after `AHEAD_LIMIT` bytes of XML, so what it holds stays small.
 */
import * as fs from "node:fs"
import { isDeepStrictEqual } from "node:util"
import { defaults } from "../config/Defaults.js"
import { tableFormats } from "../pipeline/Batch.js"
import { GroupsDocument } from "../shape/GroupEvents.js"
import { toWire } from "../shape/Shape.js"
import type { WorkerInit } from "./ParseThread.js"

/** XML bytes parsed ahead at most: ~0.25 s of parsing, ~12 MB of batches */
export const AHEAD_LIMIT = 16 * 2 ** 20

/** What `bin.ts` tells the worker it starts: the arguments after the subcommand. */
export interface AheadHint {
  readonly args: ReadonlyArray<string>
}

const BOM = [0xef, 0xbb, 0xbf]
const isSpace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d

/** A regular file that starts with `<`, after a BOM and white space: not gzip, not NDJSON. */
const looksLikeXml = (file: string): boolean => {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, "r")
    if (!fs.fstatSync(fd).isFile()) return false
    const head = Buffer.alloc(256)
    const n = fs.readSync(fd, head, 0, head.length, 0)
    let i = BOM.every((b, k) => head[k] === b) ? 3 : 0
    while (i < n && isSpace(head[i]!)) i++
    return i < n && head[i] === 0x3c
  } catch {
    return false
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/**
 * The input an ingest will most likely parse first: the first argument that is not an option
 * and names an XML file (an option's value, a rejects file say, is passed over as not XML).
 */
export const guessInput = (hint: AheadHint): string | undefined =>
  hint.args.find((arg) => !arg.startsWith("-") && looksLikeXml(arg))

/** What identifies a file's content, enough for the moment between a guess and its check. */
interface FileState {
  readonly dev: number
  readonly ino: number
  readonly size: number
  readonly mtimeMs: number
}

const stateOf = (fd: number): FileState => {
  const { dev, ino, size, mtimeMs } = fs.fstatSync(fd)
  return { dev, ino, size, mtimeMs }
}

/** A guess: what the worker parses ahead, and the state of the file as it began. */
export interface Guess {
  readonly init: WorkerInit
  readonly state: FileState
}

/**
 * What an ingest of `file` (open as `fd`) with the default settings and shape tells its
 * worker, its run unknown (0).
 */
export const guessInit = (file: string, fd: number): Guess => ({
  init: {
    shape: toWire(GroupsDocument)!,
    options: {
      file,
      runId: 0,
      limits: { rows: defaults.batchRows, bytes: defaults.batchBytes },
      maxRecordChars: defaults.maxRecordBytes,
      recover: !defaults.strict,
      formats: tableFormats(GroupsDocument).map((f) => f._tag)
    },
    file: { fd, start: 0 }
  },
  state: stateOf(fd)
})

const unchanged = (state: FileState, fd: number): boolean => {
  try {
    return isDeepStrictEqual(stateOf(fd), state)
  } catch {
    return false
  }
}

/**
 * Whether `init` asks for the parse `guess` made, now at byte `parsedTo`, but for the run's id:
 * the same shape and options; the same file, unchanged since (by device, inode, size and
 * modification time), from its start, to its end or to a range's end not passed yet; and
 * binary COPY rows, whose run_id can be set afterwards.
 */
export const sameParse = ({ init: guess, state }: Guess, init: WorkerInit, parsedTo: number): boolean =>
  init.file !== undefined && init.file.start === 0 && (init.file.end === undefined || parsedTo <= init.file.end) &&
  isDeepStrictEqual(init.shape, guess.shape) &&
  isDeepStrictEqual({ ...init.options, runId: guess.options.runId }, guess.options) &&
  guess.options.formats?.every((f) => f === "binary") === true &&
  unchanged(state, init.file.fd)
