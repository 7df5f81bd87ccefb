/**
 * How the CLI shows a running load: a live line redrawn in place on a terminal, periodic
 * log lines elsewhere (plain or JSON), nothing with `--quiet`; and `--metrics-port`.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { logProgress, type ProgressReporter, type ProgressSnapshot } from "../pipeline/Progress.js"
import { clearStatusLine, type LogFormat, showStatusLine } from "./Logging.js"

// == rates over a sliding window

interface Sample {
  readonly at: number
  readonly sourceBytes: number
  readonly records: number
}

export interface Rates {
  /** source bytes per second (compressed bytes for gzip) */
  readonly bytesPerSecond: number
  readonly recordsPerSecond: number
  /** seconds left at the current rate; undefined without a known size or a rate */
  readonly etaSeconds: number | undefined
}

/** Rates over the last `windowSeconds`, so the ETA follows the current speed but does not jitter. */
export const makeRates = (windowSeconds = 5) => {
  const samples: Array<Sample> = []
  return (s: ProgressSnapshot): Rates => {
    samples.push({ at: s.elapsedSeconds, sourceBytes: s.sourceBytes, records: s.records })
    while (samples.length > 2 && s.elapsedSeconds - samples[1]!.at >= windowSeconds) samples.shift()
    const first = samples.length > 1 ? samples[0]! : { at: 0, sourceBytes: 0, records: 0 }
    const dt = s.elapsedSeconds - first.at
    const bytesPerSecond = dt > 0 ? (s.sourceBytes - first.sourceBytes) / dt : 0
    const recordsPerSecond = dt > 0 ? (s.records - first.records) / dt : 0
    const etaSeconds = s.sourceSize !== undefined && bytesPerSecond > 0
      ? Math.max(s.sourceSize - s.sourceBytes, 0) / bytesPerSecond
      : undefined
    return { bytesPerSecond, recordsPerSecond, etaSeconds }
  }
}

// == the live line

const mb = (bytes: number) => (bytes / 1e6).toFixed(1)

const compact = (n: number): string =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n))

/** `m:ss` or `h:mm:ss` */
export const clock = (seconds: number): string => {
  const total = Math.max(Math.round(seconds), 0)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const ss = String(total % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`
}

const basename = (file: string) => file.slice(file.lastIndexOf("/") + 1) || file

/**
 * One progress line no wider than `columns - 1`, so that the terminal never wraps it (a
 * wrapped line could not be redrawn in place). When it does not fit, the least useful
 * parts go first (elapsed, writers, queue, …); the bar shows only when there is room.
 */
export const renderProgressLine = (s: ProgressSnapshot, r: Rates, columns: number | undefined): string => {
  const known = s.sourceSize !== undefined && s.sourceSize > 0
  const fraction = known ? Math.min(s.sourceBytes / s.sourceSize!, 1) : 0
  // [text, priority]: lower goes last
  const parts: Array<readonly [string, number]> = [
    [basename(s.file), 7],
    [known ? `${mb(s.sourceBytes)}/${mb(s.sourceSize!)} MB ${(100 * fraction).toFixed(1)}%` : `${mb(s.sourceBytes)} MB`, 9],
    [`${mb(r.bytesPerSecond)} MB/s`, 8],
    [`${compact(r.recordsPerSecond)} rec/s`, 5],
    [`rejects ${s.rejected}`, 6],
    [`queue ${s.queued}/${s.queueSize}`, 3],
    [`writers ${s.writersBusy}/${s.writers}`, 2],
    [`${clock(s.elapsedSeconds)} elapsed`, 1],
    ...(known ? [[`ETA ${r.etaSeconds === undefined ? "--:--" : clock(r.etaSeconds)}`, 10] as const] : [])
  ]
  const width = columns !== undefined && columns > 1 ? columns - 1 : Infinity
  const join = (ps: ReadonlyArray<readonly [string, number]>) => ps.map(([text]) => text).join("  ")
  let kept = parts
  for (let floor = 1; join(kept).length > width && floor <= 10; floor++) kept = parts.filter(([, p]) => p > floor)
  const line = join(kept)
  const barWidth = 20
  const withBar = `[${"#".repeat(Math.round(fraction * barWidth)).padEnd(barWidth, ".")}] ${line}`
  return known && kept.length === parts.length && withBar.length <= width ? withBar : line.slice(0, width)
}

/**
 * The live line on stderr, redrawn in place every `everyMillis` (4 times a second by
 * default) and erased when the load's scope closes: at the end, on failure and on Ctrl-C.
 */
export const terminalProgress = (everyMillis = 250): ProgressReporter => (snapshot) => {
  const rates = makeRates()
  const draw = Effect.sync(() => {
    const s = snapshot()
    showStatusLine(renderProgressLine(s, rates(s), process.stderr.columns))
  })
  return Effect.addFinalizer(() => Effect.sync(clearStatusLine)).pipe(
    Effect.zipRight(draw.pipe(Effect.repeat(Schedule.spaced(everyMillis)), Effect.forkScoped)),
    Effect.asVoid
  )
}

/** A `progress` log line every `everyMillis` whose fields are log annotations (JSON keys with `--log-format json`). */
export const structuredProgress = (everyMillis: number): ProgressReporter => (snapshot) => {
  const rates = makeRates(everyMillis / 1000)
  const line = Effect.suspend(() => {
    const s = snapshot()
    const r = rates(s)
    return Effect.logInfo("progress").pipe(Effect.annotateLogs({
      ...s,
      elapsedSeconds: Number(s.elapsedSeconds.toFixed(3)),
      percent: s.sourceSize ? Number(((100 * s.sourceBytes) / s.sourceSize).toFixed(2)) : null,
      mbPerSecond: Number((r.bytesPerSecond / 1e6).toFixed(2)),
      recordsPerSecond: Math.round(r.recordsPerSecond),
      etaSeconds: r.etaSeconds === undefined ? null : Math.round(r.etaSeconds)
    }))
  })
  return line.pipe(Effect.delay(everyMillis), Effect.forever, Effect.forkScoped, Effect.asVoid)
}

export const silentProgress: ProgressReporter = () => Effect.void

/**
 * `--quiet`: nothing; `--log-format json`: JSON lines; a terminal on stderr: the live line;
 * otherwise (CI, pipes, files, `TERM=dumb`): plain log lines.
 */
export const chooseReporter = (options: {
  readonly quiet: boolean
  readonly format: LogFormat
  readonly everyMillis: number
  readonly terminal?: boolean
}): ProgressReporter => {
  const terminal = options.terminal ?? (process.stderr.isTTY === true && process.env["TERM"] !== "dumb")
  if (options.quiet) return silentProgress
  if (options.format === "json") return structuredProgress(options.everyMillis)
  return terminal ? terminalProgress() : logProgress(options.everyMillis)
}

/**
 * Runs `self` with `/metrics` served on 127.0.0.1:`port`. The HTTP server modules are loaded
 * only here: they cost ~20 MB of RSS that a load without `--metrics-port` does not pay.
 */
export const withMetricsEndpoint = (port: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.promise(() => import("../metrics/MetricsServer.js")).pipe(
    Effect.flatMap((server) => server.withMetricsServer({ port })(self))
  )
