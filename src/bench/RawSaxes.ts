/**
 * Stage 1, the parser ceiling: saxes with no-op handlers over the file, read with an fs
 * stream and decoded with one TextDecoder.
 */
import * as fs from "node:fs"
import { SaxesParser } from "saxes"
import { READ_CHUNK, type StageOutcome } from "./StageResult.js"

export type SaxesVariant = "default" | "no-position"

interface NoopParser {
  write(text: string): unknown
  close(): unknown
}

const makeParser = (variant: SaxesVariant): NoopParser => {
  const noop = () => {}
  if (variant === "default") {
    const parser = new SaxesParser()
    parser.on("opentag", noop)
    parser.on("text", noop)
    parser.on("closetag", noop)
    parser.on("cdata", noop)
    return parser
  }
  const parser = new SaxesParser<{ xmlns: false; position: false }>({ xmlns: false, position: false })
  parser.on("opentag", noop)
  parser.on("text", noop)
  parser.on("closetag", noop)
  parser.on("cdata", noop)
  return parser
}

export const rawSaxes = async (file: string, variant: SaxesVariant): Promise<StageOutcome> => {
  const parser = makeParser(variant)
  const decoder = new TextDecoder("utf-8")
  let bytes = 0
  const started = performance.now()
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK })) {
    const data = chunk as Buffer
    bytes += data.length
    parser.write(decoder.decode(data, { stream: true }))
  }
  const rest = decoder.decode()
  if (rest.length > 0) parser.write(rest)
  parser.close()
  const seconds = (performance.now() - started) / 1000
  return { seconds, xmlBytes: bytes, rows: 0, rejects: 0, maxRssKb: process.resourceUsage().maxRSS }
}
