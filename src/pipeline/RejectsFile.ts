/**
 * The rejects file: one NDJSON line per rejected record (file, byte offset, element, id,
 * reason), appended after the batch holding it commits. Opened on the first reject, so a
 * clean run leaves no file behind.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { RejectsWriteError } from "../Errors.js"
import type { Reject } from "../xml/RecordParser.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface RejectsFile {
  readonly append: (rejects: ReadonlyArray<Reject>) => Effect.Effect<void, RejectsWriteError>
}

const line = (r: Reject): string =>
  JSON.stringify({ file: r.file, offset: r.offset, element: r.element, id: r.id, reason: r.reason, ord: r.ord }) + "\n"

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeRejectsFile = (file: string) =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let handle: fsp.FileHandle | undefined
    yield* Effect.addFinalizer(() =>
      handle === undefined ? Effect.void : Effect.promise(() => handle!.close()).pipe(Effect.ignore)
    )
    const open = async () => {
      await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true })
      handle = await fsp.open(file, "a")
      return handle
    }
    const append = (rejects: ReadonlyArray<Reject>) =>
      rejects.length === 0 ? Effect.void : lock.withPermits(1)(Effect.tryPromise({
        try: async () => {
          const h = handle ?? (await open())
          await h.appendFile(rejects.map(line).join(""))
        },
        catch: (cause) => new RejectsWriteError({ path: file, cause })
      }))
    return { append } satisfies RejectsFile
  })
