/**
 * Medians over repeats, the ratios the performance targets are stated in, and the table.
 */
import { type RunMeasure, type StageId, stageNames } from "./Stages.js"

export const PYTHON_BASELINE_MBPS = 6.8

export interface StageReport {
  readonly id: StageId
  readonly name: string
  readonly skipped?: string
  readonly xmlBytes: number
  readonly rows: number
  /** medians over the runs */
  readonly seconds: number
  readonly mbPerSecond: number
  readonly rowsPerSecond: number
  readonly peakRssMb: number
  readonly startupSeconds?: number
  /** medians of the runs' CPU seconds, where measured (see `RunMeasure`) */
  readonly cpuSeconds?: number
  readonly serverCpuSeconds?: number
  readonly runs: ReadonlyArray<RunMeasure>
}

export interface Ratios {
  readonly "4/1"?: number
  readonly "4/2"?: number
  /** stage 4 against the producer under the CLI's V8 flags: the pipeline's cost apart from theirs */
  readonly "4/2'"?: number
  readonly "4/3"?: number
  /** stage 4 with one parser against the producer: what the pipeline adds to a single parse */
  readonly "4p/2"?: number
  readonly "2/1"?: number
  /** the producer against saxes fed and set up as the producer has it: what the pipeline adds to the parse */
  readonly "2/1'"?: number
}

/** Finalize (the CLI process) against the same statements run by `psql -f`, medians. */
export interface FinalizeVsSql {
  /** finalize wall / psql wall */
  readonly ratio: number
  /** the same with finalize timed from its first log line (module loading left out) */
  readonly ratioWithoutStartup?: number
}

export interface LoadVsPython {
  readonly mbPerSecond: number
  readonly multiple: number
}

/** Stage 6's rate and this project's multiples of it, measured in the same run. */
export interface SeedHere {
  readonly mbPerSecond: number
  /** stage 4 / stage 6 */
  readonly ingest?: number
  /** (stage 4 + 5a) / stage 6 */
  readonly firstLoad?: number
}

/**
 * The CPU time of the end-to-end ingest (stage 4, medians): the loader's and the server's
 * over the machine's CPUs is a floor under its wall time that no pipeline can go below.
 */
export interface IngestCpu {
  readonly cpus: number
  readonly loaderSeconds: number
  readonly serverSeconds?: number
  /** (loader + server) / cpus */
  readonly floorSeconds: number
  readonly wallSeconds: number
}

export interface SizeReport {
  readonly sizeMb: number
  readonly input: { readonly file: string; readonly bytes: number; readonly groups: number; readonly rows: number }
  readonly merge?: { readonly file: string; readonly bytes: number; readonly groups: number; readonly rows: number }
  readonly stages: ReadonlyArray<StageReport>
  readonly ratios: Ratios
  /** ratios with stage 4 timed from its first byte read, without process start-up */
  readonly ratiosExcludingStartup: Ratios
  /**
   * The ratios of each round on its own (with `--repeat` above 1): the stages of a round run
   * back to back, so a slow spell of a shared machine shows as one round apart.
   */
  readonly ratiosByRound: ReadonlyArray<Ratios>
  readonly python: {
    readonly baselineMbPerSecond: number
    /** ingest + finalize of the first file into empty tables */
    readonly firstLoad?: LoadVsPython
    /** ingest + finalize of the merge file into the loaded tables */
    readonly mergeLoad?: LoadVsPython
    /** against the seed's Python design run on this machine (stage 6), not the constant */
    readonly measuredHere?: SeedHere
  }
  /** finalize against its bare SQL; target ≤ 1.3 */
  readonly finalizeVsSql?: {
    readonly firstLoad?: FinalizeVsSql
    readonly mergeLoad?: FinalizeVsSql
  }
  readonly ingestCpu?: IngestCpu
  readonly chart?: string
}

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** The index of the run whose time is the median (the lower one for an even count). */
export const medianIndex = (runs: ReadonlyArray<{ readonly seconds: number }>): number => {
  const order = runs.map((r, i) => [r.seconds, i] as const).sort((a, b) => a[0] - b[0])
  return order[(order.length - 1) >> 1]![1]
}

export const summarize = (id: StageId, runs: ReadonlyArray<RunMeasure>): StageReport => {
  const seconds = median(runs.map((r) => r.seconds))
  const xmlBytes = runs[0]?.xmlBytes ?? 0
  const rows = runs[0]?.rows ?? 0
  const medianOf = (value: (r: RunMeasure) => number | undefined) => {
    const values = runs.flatMap((r) => value(r) ?? [])
    return values.length === 0 ? undefined : median(values)
  }
  const startup = medianOf((r) => r.startupSeconds)
  const cpu = medianOf((r) => r.cpuSeconds)
  const serverCpu = medianOf((r) => r.serverCpuSeconds)
  return {
    id,
    name: stageNames[id],
    xmlBytes,
    rows,
    seconds,
    mbPerSecond: xmlBytes / 1e6 / seconds,
    rowsPerSecond: rows / seconds,
    peakRssMb: median(runs.map((r) => r.peakRssKb)) / 1024,
    ...(startup === undefined ? {} : { startupSeconds: startup }),
    ...(cpu === undefined ? {} : { cpuSeconds: cpu }),
    ...(serverCpu === undefined ? {} : { serverCpuSeconds: serverCpu }),
    runs
  }
}

export const skipped = (id: StageId, reason: string): StageReport => ({
  id,
  name: stageNames[id],
  skipped: reason,
  xmlBytes: 0,
  rows: 0,
  seconds: 0,
  mbPerSecond: 0,
  rowsPerSecond: 0,
  peakRssMb: 0,
  runs: []
})

const measured = (stages: ReadonlyArray<StageReport>, id: StageId) =>
  stages.find((s) => s.id === id && s.skipped === undefined && s.runs.length > 0)

/** `ingestMbps` and `oneParserMbps`: stages 4 and 4p, as they are or without their start-up */
const ratiosOf = (
  stages: ReadonlyArray<StageReport>,
  ingestMbps: number | undefined,
  oneParserMbps: number | undefined
): Ratios => {
  const mbps = (id: StageId) => measured(stages, id)?.mbPerSecond
  const out: Record<string, number> = {}
  const put = (key: keyof Ratios, a: number | undefined, b: number | undefined) => {
    if (a !== undefined && b !== undefined && b > 0) out[key] = a / b
  }
  put("4/1", ingestMbps, mbps("1"))
  put("4/2", ingestMbps, mbps("2"))
  put("4/2'", ingestMbps, mbps("2f"))
  put("4/3", ingestMbps, mbps("3"))
  put("4p/2", oneParserMbps, mbps("2"))
  put("2/1", mbps("2"), mbps("1"))
  put("2/1'", mbps("2"), mbps("1n"))
  return out
}

/** the ratios reported, in the order they are printed */
const RATIO_KEYS = ["4/1", "4/2", "4/2'", "4/3", "4p/2", "2/1", "2/1'"] as const satisfies ReadonlyArray<keyof Ratios>

/** stages whose ratios are reported */
const RATIO_STAGES: ReadonlyArray<StageId> = ["1", "1n", "2", "2f", "3", "4", "4p"]

/** The ratios of each round, from every stage's run of that round, when there are rounds. */
const ratiosByRound = (stages: ReadonlyArray<StageReport>): Array<Ratios> => {
  const timed = RATIO_STAGES.flatMap((id) => {
    const s = measured(stages, id)
    return s === undefined ? [] : [s]
  })
  if (timed.length === 0) return []
  const rounds = Math.min(...timed.map((s) => s.runs.length))
  if (rounds < 2) return []
  return Array.from({ length: rounds }, (_, round) => {
    const ofRound = timed.map((s) => ({ ...s, mbPerSecond: s.xmlBytes / 1e6 / s.runs[round]!.seconds }))
    return ratiosOf(ofRound, measured(ofRound, "4")?.mbPerSecond, measured(ofRound, "4p")?.mbPerSecond)
  })
}

const loadVsPython = (bytes: number, parts: ReadonlyArray<StageReport | undefined>): LoadVsPython | undefined => {
  if (parts.some((p) => p === undefined)) return undefined
  const seconds = parts.reduce((n, p) => n + p!.seconds, 0)
  const mbPerSecond = bytes / 1e6 / seconds
  return { mbPerSecond, multiple: mbPerSecond / PYTHON_BASELINE_MBPS }
}

const finalizeVsSql = (finalize: StageReport | undefined, sql: StageReport | undefined): FinalizeVsSql | undefined =>
  finalize === undefined || sql === undefined || sql.seconds <= 0 ? undefined : {
    ratio: finalize.seconds / sql.seconds,
    ...(finalize.startupSeconds === undefined
      ? {}
      : { ratioWithoutStartup: (finalize.seconds - finalize.startupSeconds) / sql.seconds })
  }

export const sizeReport = (
  sizeMb: number,
  input: SizeReport["input"],
  merge: SizeReport["merge"] | undefined,
  stages: ReadonlyArray<StageReport>,
  chart: string | undefined,
  cpus: number
): SizeReport => {
  const ingest = measured(stages, "4")
  const oneParser = measured(stages, "4p")
  const withoutStartup = (s: StageReport | undefined) =>
    s?.startupSeconds === undefined ? undefined : s.xmlBytes / 1e6 / (s.seconds - s.startupSeconds)
  const firstLoad = loadVsPython(input.bytes, [ingest, measured(stages, "5a")])
  const mergeLoad = merge === undefined
    ? undefined
    : loadVsPython(merge.bytes, [measured(stages, "5b"), measured(stages, "5c")])
  const seed = measured(stages, "6")
  const seedHere: SeedHere | undefined = seed === undefined ? undefined : {
    mbPerSecond: seed.mbPerSecond,
    ...(ingest === undefined ? {} : { ingest: ingest.mbPerSecond / seed.mbPerSecond }),
    ...(firstLoad === undefined ? {} : { firstLoad: firstLoad.mbPerSecond / seed.mbPerSecond })
  }
  const ingestCpu: IngestCpu | undefined = ingest?.cpuSeconds === undefined ? undefined : {
    cpus,
    loaderSeconds: ingest.cpuSeconds,
    ...(ingest.serverCpuSeconds === undefined ? {} : { serverSeconds: ingest.serverCpuSeconds }),
    floorSeconds: (ingest.cpuSeconds + (ingest.serverCpuSeconds ?? 0)) / cpus,
    wallSeconds: ingest.seconds
  }
  const vsFirst = finalizeVsSql(measured(stages, "5a"), measured(stages, "5as"))
  const vsMerge = finalizeVsSql(measured(stages, "5c"), measured(stages, "5cs"))
  return {
    sizeMb,
    input,
    ...(merge === undefined ? {} : { merge }),
    stages,
    ratios: ratiosOf(stages, ingest?.mbPerSecond, oneParser?.mbPerSecond),
    ratiosExcludingStartup: ratiosOf(stages, withoutStartup(ingest), withoutStartup(oneParser)),
    ratiosByRound: ratiosByRound(stages),
    python: {
      baselineMbPerSecond: PYTHON_BASELINE_MBPS,
      ...(firstLoad === undefined ? {} : { firstLoad }),
      ...(mergeLoad === undefined ? {} : { mergeLoad }),
      ...(seedHere === undefined ? {} : { measuredHere: seedHere })
    },
    ...(vsFirst === undefined && vsMerge === undefined ? {} : {
      finalizeVsSql: {
        ...(vsFirst === undefined ? {} : { firstLoad: vsFirst }),
        ...(vsMerge === undefined ? {} : { mergeLoad: vsMerge })
      }
    }),
    ...(ingestCpu === undefined ? {} : { ingestCpu }),
    ...(chart === undefined ? {} : { chart })
  }
}

// == text

const fixed = (n: number, digits: number) => n.toFixed(digits)
const thousands = (n: number) => Math.round(n).toLocaleString("en-US")

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

const labels: Partial<Record<StageId, string>> = { "1n": "1'", "2f": "2'", "5as": "5a'", "5cs": "5c'" }
const label = (id: StageId) => (labels[id] ?? id).padEnd(3)

export const formatSize = (r: SizeReport, repeat: number): string => {
  const rows = r.stages.map((s) =>
    s.skipped !== undefined
      ? [`${label(s.id)}${s.name}`, "", "", "", "", "", `skipped: ${s.skipped}`]
      : [
        `${label(s.id)}${s.name}`,
        fixed(s.mbPerSecond, 1),
        thousands(s.rowsPerSecond),
        fixed(s.seconds, 2),
        fixed(s.peakRssMb, 0),
        s.startupSeconds === undefined ? "" : fixed(s.startupSeconds, 2),
        ""
      ]
  )
  const mb = (bytes: number) => `${fixed(bytes / 1e6, 1)} MB`
  const head = [
    `== ~${r.sizeMb} MB: ${r.input.file} (${mb(r.input.bytes)}, ${thousands(r.input.groups)} groups, ` +
    `${thousands(r.input.rows)} rows)` + (repeat > 1 ? `, medians of ${repeat} runs` : ""),
    ...(r.merge === undefined
      ? []
      : [`   merge file: ${r.merge.file} (${mb(r.merge.bytes)}, ${thousands(r.merge.groups)} groups)`])
  ]
  const body = table(["stage", "MB/s", "rows/s", "wall s", "peak RSS MB", "startup s", ""], rows)
  const ratioText = (ratios: Ratios) =>
    RATIO_KEYS.flatMap((k) => (ratios[k] === undefined ? [] : [`${k} ${fixed(ratios[k]!, 2)}`])).join("  ")
  const lines = [...head, "", body, ""]
  const ratios = ratioText(r.ratios)
  if (ratios !== "") lines.push(`ratios of MB/s: ${ratios}`)
  const excl = ratioText(r.ratiosExcludingStartup)
  if (excl !== "") lines.push(`  stages 4 and 4p without process start-up: ${excl}`)
  const byRound = RATIO_KEYS.flatMap((k) => {
    const values = r.ratiosByRound.flatMap((ratios) => (ratios[k] === undefined ? [] : [fixed(ratios[k]!, 2)]))
    return values.length === 0 ? [] : [`${k} ${values.join(" ")}`]
  })
  if (byRound.length > 0) lines.push(`  round by round: ${byRound.join("  ")}`)
  const py = (name: string, l: LoadVsPython | undefined) =>
    l === undefined
      ? []
      : [
        `${name}: ${fixed(l.mbPerSecond, 1)} MB/s = ${fixed(l.multiple, 2)}× the Python baseline ` +
        `(${PYTHON_BASELINE_MBPS} MB/s)`
      ]
  lines.push(...py("ingest + finalize, first load", r.python.firstLoad))
  lines.push(...py("ingest + finalize, merge load", r.python.mergeLoad))
  const here = r.python.measuredHere
  if (here !== undefined) {
    const multiples = [
      ...(here.ingest === undefined ? [] : [`ingest ${fixed(here.ingest, 2)}×`]),
      ...(here.firstLoad === undefined ? [] : [`ingest + finalize ${fixed(here.firstLoad, 2)}× (target ≥ 2.5×)`])
    ]
    lines.push(
      `the seed's Python design on this machine (stage 6): ${fixed(here.mbPerSecond, 1)} MB/s` +
        (multiples.length === 0 ? "" : `; against it: ${multiples.join(", ")}`)
    )
  }
  const vs = (name: string, v: FinalizeVsSql | undefined) =>
    v === undefined ? [] : [
      `${name} ${fixed(v.ratio, 2)}×` +
      (v.ratioWithoutStartup === undefined ? "" : ` (${fixed(v.ratioWithoutStartup, 2)}× without start-up)`)
    ]
  const vsText = [
    ...vs("first load", r.finalizeVsSql?.firstLoad),
    ...vs("merge load", r.finalizeVsSql?.mergeLoad)
  ]
  if (vsText.length > 0) lines.push(`finalize / its SQL run by psql -f (target ≤ 1.3): ${vsText.join(", ")}`)
  const cpu = r.ingestCpu
  if (cpu !== undefined) {
    const server = cpu.serverSeconds === undefined ? "" : ` + the server ${fixed(cpu.serverSeconds, 2)} s`
    lines.push(
      `stage 4's CPU: the loader ${fixed(cpu.loaderSeconds, 2)} s${server} over ${cpu.cpus} CPUs = ` +
        `a floor of ${fixed(cpu.floorSeconds, 2)} s under its ${fixed(cpu.wallSeconds, 2)} s ` +
        `(CPUs ${fixed(100 * cpu.floorSeconds / cpu.wallSeconds, 0)} % busy)`
    )
  }
  if (r.chart !== undefined) lines.push(`chart: ${r.chart}`)
  return lines.join("\n")
}
