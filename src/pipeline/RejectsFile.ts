/**
 * The rejects file: one NDJSON line per rejected record (run, batch, file, byte offset,
 * element, id, reason, ord), appended after the batch holding it commits. Opened on the
 * first reject, so a clean run leaves no file behind.
 *
 * A resumed run first counts the lines the file holds for each of its batches (`filed`), so
 * that a batch committed by a killed attempt but not appended gets its lines, and a batch
 * appended but whose commit the server lost is not appended twice (see Ingest).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import * as readline from "node:readline"
import { RejectsWriteError } from "../Errors.js"
import type { Reject } from "../xml/RecordParser.js"

/**
 * What a line of the rejects file tells of a reject.
 *
 * @since 0.1.0
 * @category models
 */
export type RejectLine = Pick<Reject, "file" | "offset" | "element" | "id" | "reason" | "ord">

/**
 * Where `ingestFile` files the rejects of each committed batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface RejectsFile {
  /** Appends the rejects of batch `batch` of run `run`, a line each. */
  readonly append: (
    run: number,
    batch: number,
    rejects: ReadonlyArray<RejectLine>
  ) => Effect.Effect<void, RejectsWriteError>
  /** How many lines the file holds for each batch of run `run` of `input`. */
  readonly filed: (input: string, run: number) => Effect.Effect<ReadonlyMap<number, number>, RejectsWriteError>
}

const line = (run: number, batch: number, r: RejectLine): string =>
  JSON.stringify({ run, batch, file: r.file, offset: r.offset, element: r.element, id: r.id, reason: r.reason, ord: r.ord }) +
  "\n"

/** Whether the file's last byte is a newline (or the file is empty): a killed write may leave half a line. */
const endsWithNewline = async (file: string): Promise<boolean> => {
  const handle = await fsp.open(file, "r")
  try {
    const { size } = await handle.stat()
    if (size === 0) return true
    const last = Buffer.alloc(1)
    await handle.read(last, 0, 1, size - 1)
    return last[0] === 0x0a
  } finally {
    await handle.close()
  }
}

/**
 * The rejects file at `file`, appended to (created on the first reject); scoped, its handle
 * closes with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRejectsFile = (file: string) =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let handle: fsp.FileHandle | undefined
    /** a half line ends the file (a write cut short): the next append starts on a line of its own */
    let torn = false
    yield* Effect.addFinalizer(() =>
      handle === undefined ? Effect.void : Effect.promise(() => handle!.close()).pipe(Effect.ignore)
    )
    const open = async () => {
      await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true })
      handle = await fsp.open(file, "a")
      torn = !(await endsWithNewline(file))
      return handle
    }
    const append = (run: number, batch: number, rejects: ReadonlyArray<RejectLine>) =>
      rejects.length === 0 ? Effect.void : lock.withPermits(1)(Effect.tryPromise({
        try: async () => {
          const h = handle ?? (await open())
          await h.appendFile((torn ? "\n" : "") + rejects.map((r) => line(run, batch, r)).join(""))
          torn = false
        },
        catch: (cause) => new RejectsWriteError({ path: file, cause })
      }))
    const filed = (input: string, run: number) =>
      lock.withPermits(1)(Effect.tryPromise({
        try: async () => {
          const counts = new Map<number, number>()
          if (!fs.existsSync(file)) return counts
          const prefix = `{"run":${run},"batch":`
          const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity })
          for await (const text of lines) {
            if (!text.startsWith(prefix)) continue
            let parsed: { readonly batch: number; readonly file: string }
            try {
              parsed = JSON.parse(text)
            } catch {
              continue // half a line, from a write cut short
            }
            if (parsed.file === input) counts.set(parsed.batch, (counts.get(parsed.batch) ?? 0) + 1)
          }
          return counts
        },
        catch: (cause) => new RejectsWriteError({ path: file, cause })
      }))
    return { append, filed } satisfies RejectsFile
  })
