import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { writeSample } from "../generate/Generator.js"

const nonNegative = (flag: string) =>
  Options.filterMap(
    (n: number) => (n >= 0 ? Option.some(n) : Option.none()),
    `--${flag} must be a non-negative integer`
  )

const out = Options.text("out").pipe(
  Options.withAlias("o"),
  Options.withDescription("file to write; gzip-compressed when it ends in .gz"),
  Options.withDefault("data/sample.xml")
)

const groups = Options.integer("groups").pipe(
  nonNegative("groups"),
  Options.withDescription("number of <group> records"),
  Options.withDefault(1000)
)

const eventsPerGroup = Options.integer("events-per-group").pipe(
  nonNegative("events-per-group"),
  Options.withDescription("number of <event> records in each group"),
  Options.withDefault(2)
)

const seed = Options.integer("seed").pipe(
  Options.withDescription("random seed; the same options always give the same bytes"),
  Options.withDefault(1)
)

const duplicates = Options.float("duplicates").pipe(
  Options.withDescription("share of groups and of events that reuse an earlier id with new values (0..1)"),
  Options.withDefault(0)
)

const bom = Options.boolean("bom").pipe(
  Options.withDescription("start the file with a UTF-8 byte order mark")
)

export const generateCommand = Command.make(
  "generate",
  { out, groups, eventsPerGroup, seed, bom, duplicates },
  (o) =>
    Effect.gen(function*() {
      const [elapsed, summary] = yield* Effect.timed(
        writeSample(o.out, {
          groups: o.groups,
          eventsPerGroup: o.eventsPerGroup,
          seed: o.seed,
          bom: o.bom,
          duplicateRate: o.duplicates
        })
      )
      const seconds = Duration.toMillis(elapsed) / 1000
      const mb = summary.bytes / 1e6
      yield* Effect.log(
        `wrote ${o.out}: ${summary.groups} groups, ${summary.events} events, ${mb.toFixed(1)} MB in ${
          seconds.toFixed(2)
        } s (${(mb / Math.max(seconds, 0.001)).toFixed(1)} MB/s)`
      )
    })
).pipe(Command.withDescription("write a deterministic sample XML file with edge cases"))
