/**
 * The bench's input files, generated once per (groups, events per group, seed) and cached
 * with a JSON sidecar. The group count for a size in MB comes from bytes per group measured
 * on a small in-memory sample of the same seed.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { renderXml, writeSample } from "../generate/Generator.js"
import { BenchError } from "./Child.js"

export interface InputFile {
  readonly file: string
  readonly bytes: number
  readonly groups: number
  readonly eventsPerGroup: number
  readonly seed: number
  /** groups + events: the rows a correct load writes */
  readonly rows: number
}

const SAMPLE_GROUPS = 10_000

const xmlBytes = (groups: number, eventsPerGroup: number, seed: number): number => {
  let bytes = 0
  for (const piece of renderXml({ groups, eventsPerGroup, seed })) bytes += Buffer.byteLength(piece, "utf8")
  return bytes
}

/** Groups that make a file of about `megabytes` MB (10^6 bytes). */
export const groupsFor = (megabytes: number, eventsPerGroup: number, seed: number): number => {
  const empty = xmlBytes(0, eventsPerGroup, seed)
  const perGroup = (xmlBytes(SAMPLE_GROUPS, eventsPerGroup, seed) - empty) / SAMPLE_GROUPS
  return Math.max(1, Math.round((megabytes * 1e6 - empty) / perGroup))
}

const readMeta = (metaFile: string): InputFile | undefined => {
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as InputFile
    return fs.statSync(meta.file).size === meta.bytes ? meta : undefined
  } catch {
    return undefined
  }
}

/** The cached file for these options, generated if missing or incomplete. */
export const ensureInput = (dir: string, groups: number, eventsPerGroup: number, seed: number) =>
  Effect.gen(function*() {
    const base = path.join(dir, `groups-${groups}-e${eventsPerGroup}-seed${seed}`)
    const file = `${base}.xml`
    const metaFile = `${base}.json`
    const cached = readMeta(metaFile)
    if (cached !== undefined) return cached
    yield* Effect.logInfo(`generating ${file} (${groups} groups × ${eventsPerGroup} events, seed ${seed})`)
    const partial = `${file}.partial`
    const summary = yield* writeSample(partial, { groups, eventsPerGroup, seed }).pipe(
      Effect.mapError((cause) => new BenchError({ message: cause.message, cause }))
    )
    fs.renameSync(partial, file)
    const meta: InputFile = {
      file,
      bytes: fs.statSync(file).size,
      groups: summary.groups,
      eventsPerGroup,
      seed,
      rows: summary.groups + summary.events
    }
    fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2) + "\n")
    return meta
  })

/** Reads a file once so the stages that follow find it in the page cache. */
export const warmPageCache = (file: string) =>
  Effect.sync(() => {
    const fd = fs.openSync(file, "r")
    const buffer = Buffer.allocUnsafe(4 << 20)
    try {
      while (fs.readSync(fd, buffer, 0, buffer.length, null) > 0) {
        // reading is the point
      }
    } finally {
      fs.closeSync(fd)
    }
  })
