/**
 * Parsing ahead. The parse worker the CLI starts before it loads its bundle (`src/bin.ts`)
 * would idle while the CLI loads, reads its settings, connects and opens the run: 0.06 s here,
 * 0.2–0.3 s on slower machines, with the parser cold at first. So it parses the first input
 * meanwhile, on a guess of what it will be told: the first argument that names a plain XML
 * file, with the default settings and shape (or its first range, when it is split). When
 * told, it keeps what it parsed only if the guess was right to the letter (the same file,
 * still unchanged, the same shape and options but for the run's id, which it then sets in the
 * rows); else it drops it, as if it had never started. It stops after `AHEAD_LIMIT` bytes of
 * XML, so what it holds stays small.
 */
import * as fs from "node:fs"
import { isDeepStrictEqual } from "node:util"
import { defaults } from "../config/Defaults.js"
import { tableFormats } from "../pipeline/Batch.js"
import { GroupsDocument } from "../shape/GroupEvents.js"
import { toWire } from "../shape/Shape.js"
import type { WorkerInit } from "./ParseThread.js"
import { isSpace } from "./Split.js"

/** XML bytes parsed ahead at most: ~0.25 s of parsing, ~12 MB of batches */
export const AHEAD_LIMIT = 16 * 2 ** 20

/** What `bin.ts` tells the worker it starts: the arguments after the subcommand. */
export interface AheadHint {
  readonly args: ReadonlyArray<string>
}

const BOM = [0xef, 0xbb, 0xbf]

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
 * worker, its run unknown (0); undefined if the default shape had a table of COPY text, whose
 * rows' run_id could not be set afterwards.
 */
export const guessInit = (file: string, fd: number): Guess | undefined => {
  const formats = tableFormats(GroupsDocument).map((f) => f._tag)
  if (formats.some((f) => f !== "binary")) return undefined
  return {
    init: {
      shape: toWire(GroupsDocument)!,
      options: {
        file,
        runId: 0,
        limits: { rows: defaults.batchRows, bytes: defaults.batchBytes },
        maxRecordChars: defaults.maxRecordBytes,
        recover: !defaults.strict,
        formats
      },
      file: { fd, start: 0 }
    },
    state: stateOf(fd)
  }
}

const unchanged = (state: FileState, fd: number): boolean => {
  try {
    return isDeepStrictEqual(stateOf(fd), state)
  } catch {
    return false
  }
}

/**
 * Why `init` does not ask for the parse `guess` made, now at byte `parsedTo`, but for the
 * run's id; undefined if it does: the same shape and options; the same file, unchanged since
 * (by device, inode, size and modification time), from its start, to its end or to a first
 * range's end not passed yet.
 */
export const mismatch = ({ init: guess, state }: Guess, init: WorkerInit, parsedTo: number): string | undefined => {
  if (init.file === undefined || init.options.file !== guess.options.file) return "another input"
  if (init.file.start !== 0) return "a later range of the file"
  if (init.file.end !== undefined && parsedTo > init.file.end) return "parsed past the first range's end"
  if (!isDeepStrictEqual(init.shape, guess.shape)) return "another shape"
  if (!isDeepStrictEqual({ ...init.options, runId: guess.options.runId }, guess.options)) return "other settings"
  if (!unchanged(state, init.file.fd)) return "the file changed"
  return undefined
}
