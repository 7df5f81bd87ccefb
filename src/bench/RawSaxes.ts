/**
 * Stage 1, the parser ceiling: saxes with no-op handlers over the file, read with an fs
 * stream. Stage 1 runs saxes as it comes, fed by one TextDecoder; stage 1' runs it as the
 * producer does: namespaces and positions off, with the shorter paths of `fastSaxes`, fed
 * with the producer's decoding.
 */
import { isUtf8 } from "node:buffer"
import * as fs from "node:fs"
import { SaxesParser } from "saxes"
import { completeSlices, decodeUtf8 } from "../xml/Producer.js"
import { fastSaxes } from "../xml/SaxesFast.js"
import { READ_CHUNK, type StageOutcome } from "./StageResult.js"

export type SaxesVariant = "default" | "as-producer"

interface NoopParser {
  write(text: string): unknown
  close(): unknown
}

const makeParser = (variant: SaxesVariant): NoopParser => {
  const noop = () => {}
  const parser = variant === "default" ? new SaxesParser({}) : fastSaxes()
  parser.on("opentag", noop)
  parser.on("text", noop)
  parser.on("closetag", noop)
  parser.on("cdata", noop)
  return parser
}

/** How a stage turns the file's bytes into saxes' text. */
interface Feeder {
  readonly write: (data: Buffer) => void
  readonly end: () => void
}

const decoderFeeder = (parser: NoopParser): Feeder => {
  const decoder = new TextDecoder("utf-8")
  return {
    write: (data) => parser.write(decoder.decode(data, { stream: true })),
    end: () => {
      const rest = decoder.decode()
      if (rest.length > 0) parser.write(rest)
    }
  }
}

const producerFeeder = (file: string, parser: NoopParser): Feeder => {
  let pending = new Uint8Array(0)
  return {
    write: (data) => {
      pending = completeSlices(pending, data, (slice) => {
        if (!isUtf8(slice)) throw new Error(`${file} is not valid UTF-8`)
        parser.write(decodeUtf8(slice))
      })
    },
    end: () => {
      if (pending.length > 0) throw new Error(`${file} ends inside a UTF-8 character`)
    }
  }
}

export const rawSaxes = async (file: string, variant: SaxesVariant): Promise<StageOutcome> => {
  const parser = makeParser(variant)
  const feeder = variant === "default" ? decoderFeeder(parser) : producerFeeder(file, parser)
  let bytes = 0
  const started = performance.now()
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK })) {
    const data = chunk as Buffer
    bytes += data.length
    feeder.write(data)
  }
  feeder.end()
  parser.close()
  const seconds = (performance.now() - started) / 1000
  return { seconds, xmlBytes: bytes, rows: 0, rejects: 0, maxRssKb: process.resourceUsage().maxRSS }
}
