/**
 * Effect's metric registry in the Prometheus text format (version 0.0.4), served at
 * `/metrics` by an `@effect/platform` HTTP server while a load runs.
 *
 * The exposition is written here from `Metric.snapshot`: the library route
 * (`@effect/opentelemetry` with the OpenTelemetry SDK and its Prometheus exporter) would
 * add five packages, and renames metrics on the way (unit suffixes, scope labels).
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Metrics from "./Metrics.js"

/**
 * The metrics server could not listen, for example because the port is taken.
 *
 * @since 0.1.0
 * @category errors
 */
export class MetricsServerError extends Data.TaggedError("MetricsServerError")<{
  readonly host: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = (this.cause as { cause?: unknown } | undefined)?.cause ?? this.cause
    const reason = cause instanceof Error ? cause.message : String(cause)
    return `cannot serve metrics on ${this.host}:${this.port}: ${reason}`
  }
}

/**
 * Where and how to serve `/metrics`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MetricsServerOptions {
  /** 0 picks a free port; the address is logged */
  readonly port: number
  /** default 127.0.0.1 */
  readonly host?: string
}

/**
 * The content type Prometheus expects for the text format.
 *
 * @since 0.1.0
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

// == exposition

const metricName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^([0-9])/, "_$1")
const labelName = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^([0-9])/, "_$1")
const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const escapeLabel = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const value = (n: number | bigint): string =>
  typeof n === "bigint"
    ? n.toString()
    : Number.isNaN(n)
    ? "NaN"
    : n === Infinity
    ? "+Inf"
    : n === -Infinity
    ? "-Inf"
    : String(n)

const labels = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${labelName(k)}="${escapeLabel(v)}"`).join(",")}}`

interface Family {
  type: "counter" | "gauge" | "histogram" | "summary"
  help: string
  readonly samples: Array<string>
}

/**
 * Renders metric pairs (as from `Metric.snapshot`) in the Prometheus text format: one
 * `# HELP`/`# TYPE` block per name, tags as labels, histograms as cumulative `_bucket`
 * series with `le`, summaries as `quantile` series, frequencies as a counter per key.
 * A counter declared `incremental` is a Prometheus counter (named `…_total`); any other
 * Effect counter may go down, so it is exposed as a gauge.
 *
 * @since 0.1.0
 * @category exposition
 */
export const prometheusText = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string) => {
    let f = families.get(name)
    if (f === undefined) families.set(name, f = { type, help, samples: [] })
    if (f.help === "") f.help = help
    return f
  }
  for (const { metricKey, metricState } of pairs) {
    const name = metricName(metricKey.name)
    const help = Option.getOrElse(metricKey.description, () => "")
    const tags = metricKey.tags.map((t) => [t.key, t.value] as const)
    const keyType = metricKey.keyType
    if (MetricKeyType.isCounterKey(keyType) && MetricState.isCounterState(metricState)) {
      if (keyType.incremental) {
        const total = name.endsWith("_total") ? name : `${name}_total`
        family(total, "counter", help).samples.push(`${total}${labels(tags)} ${value(metricState.count)}`)
      } else {
        family(name, "gauge", help).samples.push(`${name}${labels(tags)} ${value(metricState.count)}`)
      }
    } else if (MetricKeyType.isGaugeKey(keyType) && MetricState.isGaugeState(metricState)) {
      family(name, "gauge", help).samples.push(`${name}${labels(tags)} ${value(metricState.value)}`)
    } else if (MetricKeyType.isHistogramKey(keyType) && MetricState.isHistogramState(metricState)) {
      const f = family(name, "histogram", help)
      let infinite = false
      for (const [le, count] of metricState.buckets) {
        infinite ||= le === Infinity
        f.samples.push(`${name}_bucket${labels([...tags, ["le", value(le)]])} ${count}`)
      }
      if (!infinite) f.samples.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${metricState.count}`)
      f.samples.push(`${name}_sum${labels(tags)} ${value(metricState.sum)}`)
      f.samples.push(`${name}_count${labels(tags)} ${metricState.count}`)
    } else if (MetricKeyType.isSummaryKey(keyType) && MetricState.isSummaryState(metricState)) {
      const f = family(name, "summary", help)
      for (const [q, v] of metricState.quantiles) {
        f.samples.push(`${name}${labels([...tags, ["quantile", String(q)]])} ${Option.match(v, { onNone: () => "NaN", onSome: value })}`)
      }
      f.samples.push(`${name}_sum${labels(tags)} ${value(metricState.sum)}`)
      f.samples.push(`${name}_count${labels(tags)} ${metricState.count}`)
    } else if (MetricKeyType.isFrequencyKey(keyType) && MetricState.isFrequencyState(metricState)) {
      const f = family(name, "counter", help)
      for (const [key, count] of metricState.occurrences) {
        f.samples.push(`${name}${labels([...tags, ["key", key]])} ${count}`)
      }
    }
  }
  let text = ""
  for (const [name, f] of families) {
    if (f.help !== "") text += `# HELP ${name} ${escapeHelp(f.help)}\n`
    text += `# TYPE ${name} ${f.type}\n${f.samples.join("\n")}\n`
  }
  return text
}

const startedAt = Date.now() / 1000 - process.uptime()

/**
 * Process metrics read at scrape time, named as the Prometheus client libraries name them.
 *
 * @since 0.1.0
 * @category exposition
 */
export const processText = (): string => {
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  return [
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
    "# TYPE process_cpu_seconds_total counter",
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
    "# TYPE process_resident_memory_bytes gauge",
    `process_resident_memory_bytes ${memory.rss}`,
    "# HELP process_max_resident_memory_bytes Peak resident memory size in bytes.",
    "# TYPE process_max_resident_memory_bytes gauge",
    `process_max_resident_memory_bytes ${process.resourceUsage().maxRSS * 1024}`,
    "# HELP nodejs_heap_used_bytes V8 heap used in bytes.",
    "# TYPE nodejs_heap_used_bytes gauge",
    `nodejs_heap_used_bytes ${memory.heapUsed}`,
    "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
    "# TYPE process_start_time_seconds gauge",
    `process_start_time_seconds ${startedAt.toFixed(3)}`,
    ""
  ].join("\n")
}

/**
 * Every metric in Effect's global registry, then the process metrics, as Prometheus text.
 *
 * @since 0.1.0
 * @category exposition
 */
export const scrape: Effect.Effect<string> = Effect.map(Metric.snapshot, (pairs) => prometheusText(pairs) + processText())

/**
 * An `HttpApp` answering `GET /metrics`, for a host app to mount in its own router.
 *
 * @since 0.1.0
 * @category http
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/metrics", Effect.map(scrape, (body) => HttpServerResponse.text(body, { contentType })))
)

// a metric enters the registry when first read or updated: read them all, so that every
// series is there from the first scrape (a retries counter at 0 rather than no data)
const registerPipelineMetrics = Effect.all(
  [
    Metric.value(Metrics.recordsRead),
    Metric.value(Metrics.rowsLoaded),
    Metric.value(Metrics.recordsRejected),
    Metric.value(Metrics.batchesCommitted),
    Metric.value(Metrics.xmlBytes),
    Metric.value(Metrics.retries),
    Metric.value(Metrics.queueDepth),
    Metric.value(Metrics.writersBusy),
    Metric.value(Metrics.batchSeconds)
  ],
  { discard: true }
)

/**
 * Serves `/metrics` on `host:port` (127.0.0.1 by default) until the scope closes, and
 * returns the address it listens on.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  options: MetricsServerOptions
): Effect.Effect<HttpServer.TcpAddress, MetricsServerError, Scope.Scope> => {
  const host = options.host ?? "127.0.0.1"
  return Effect.gen(function*() {
    yield* registerPipelineMetrics
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: options.port, host })
    yield* HttpServer.serveEffect(router).pipe(Effect.provideService(HttpServer.HttpServer, server))
    const address = server.address as HttpServer.TcpAddress
    yield* Effect.logInfo(`metrics: http://${host}:${address.port}/metrics`)
    return address
  }).pipe(Effect.mapError((cause) => new MetricsServerError({ host, port: options.port, cause })))
}

/**
 * The metrics server as a layer, for an app that runs loads for longer than one call.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: MetricsServerOptions): Layer.Layer<never, MetricsServerError> =>
  Layer.scopedDiscard(serve(options))

/**
 * Runs `self` with the metrics server up.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withMetricsServer = (options: MetricsServerOptions) => <A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E | MetricsServerError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.zipRight(serve(options), self))
