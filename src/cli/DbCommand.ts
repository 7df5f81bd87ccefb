/**
 * `xml2pg db`: run the embedded PostgreSQL server in the foreground.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { embeddedPsqlCommand, startEmbedded } from "../db/Embedded.js"

const dir = Options.directory("dir").pipe(
  Options.withDescription("directory of the embedded server's data, created on first use (default .xml2pg)"),
  Options.withDefault(".xml2pg")
)

/**
 * Starts (or reuses) the embedded server of `--dir`, prints the psql command that connects
 * to it on stdout, and waits for Ctrl-C; then stops the server if this command started it.
 *
 * @since 0.1.0
 * @category commands
 */
export const dbCommand = Command.make("db", { dir }, ({ dir }) =>
  Effect.gen(function*() {
    const url = yield* startEmbedded({ dir })
    yield* Console.log(embeddedPsqlCommand(url))
    yield* Effect.logInfo("press Ctrl-C to stop")
    return yield* Effect.never
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription(
      "Start (or reuse) the embedded PostgreSQL server in the foreground, print the psql command to connect to " +
        "it, and wait until interrupted (Ctrl-C), then stop it cleanly."
    )
  )
