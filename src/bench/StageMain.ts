/**
 * Entry of a stage child process: `node dist/bench/StageMain.js <stage> '<json options>'`.
 * Each stage loads only the modules it needs, so its peak RSS is its own. The outcome is
 * printed as JSON on the last stdout line.
 */
import type { SaxesVariant } from "./RawSaxes.js"
import { STAGE_MARK, type StageOutcome } from "./StageResult.js"

interface StageArgs {
  readonly file: string
  readonly out?: string
  readonly variant?: SaxesVariant
  readonly encoded?: string
  readonly xmlBytes?: number
  readonly schema?: string
  readonly writers?: number
  readonly queueSize?: number
}

const run = async (stage: string, args: StageArgs): Promise<StageOutcome> => {
  switch (stage) {
    case "raw": {
      const { rawSaxes } = await import("./RawSaxes.js")
      return rawSaxes(args.file, args.variant ?? "default")
    }
    case "producer": {
      const { producerOnly } = await import("./ProducerOnly.js")
      return producerOnly(args.file)
    }
    case "encode": {
      const { encodeToFile } = await import("./CopyOnly.js")
      return encodeToFile(args.file, args.out!)
    }
    case "copy": {
      const { copyOnly } = await import("./CopyOnly.js")
      const { Effect } = await import("effect")
      const url = process.env["DATABASE_URL"]
      if (url === undefined) throw new Error("DATABASE_URL is not set")
      return Effect.runPromise(copyOnly({
        encoded: args.encoded!,
        xmlBytes: args.xmlBytes ?? 0,
        schema: args.schema!,
        url,
        writers: args.writers ?? 2,
        queueSize: args.queueSize ?? 4
      }))
    }
    default:
      throw new Error(`unknown stage ${stage}`)
  }
}

run(process.argv[2] ?? "", JSON.parse(process.argv[3] ?? "{}") as StageArgs).then(
  (outcome) => {
    process.stdout.write(`${STAGE_MARK}${JSON.stringify(outcome)}\n`)
  },
  (error: unknown) => {
    process.stderr.write(`stage failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exitCode = 1
  }
)
