/**
 * Stage 1, the parser ceiling: saxes with no-op handlers over the file, read with an fs
 * stream. Stage 1 runs saxes as it comes, fed by one TextDecoder; stage 1' runs it as the
 * producer does: namespaces and positions off, fed with the producer's decoding.
 */
import { isUtf8 } from "node:buffer"
import * as fs from "node:fs"
import { SaxesParser } from "saxes"
import { completeSlices, decodeUtf8 } from "../xml/Producer.js"
import { READ_CHUNK, type StageOutcome } from "./StageResult.js"

export type SaxesVariant = "default" | "as-producer"

interface NoopParser {
  write(text: string): unknown
  close(): unknown
}

const makeParser = (variant: SaxesVariant): NoopParser => {
  const noop = () => {}
  const parser = new SaxesParser(variant === "default" ? {} : { xmlns: false, position: false })
  parser.on("opentag", noop)
  parser.on("text", noop)
  parser.on("closetag", noop)
  parser.on("cdata", noop)
  return parser
}

const feedDefault = async (file: string, parser: NoopParser): Promise<number> => {
  const decoder = new TextDecoder("utf-8")
  let bytes = 0
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK })) {
    const data = chunk as Buffer
    bytes += data.length
    parser.write(decoder.decode(data, { stream: true }))
  }
  const rest = decoder.decode()
  if (rest.length > 0) parser.write(rest)
  return bytes
}

const feedAsProducer = async (file: string, parser: NoopParser): Promise<number> => {
  let bytes = 0
  let pending = new Uint8Array(0)
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK })) {
    const data = chunk as Buffer
    bytes += data.length
    pending = completeSlices(pending, data, (slice) => {
      if (!isUtf8(slice)) throw new Error(`${file} is not valid UTF-8`)
      parser.write(decodeUtf8(slice))
    })
  }
  if (pending.length > 0) throw new Error(`${file} ends inside a UTF-8 character`)
  return bytes
}

export const rawSaxes = async (file: string, variant: SaxesVariant): Promise<StageOutcome> => {
  const parser = makeParser(variant)
  const started = performance.now()
  const bytes = await (variant === "default" ? feedDefault : feedAsProducer)(file, parser)
  parser.close()
  const seconds = (performance.now() - started) / 1000
  return { seconds, xmlBytes: bytes, rows: 0, rejects: 0, maxRssKb: process.resourceUsage().maxRSS }
}
