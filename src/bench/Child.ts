/**
 * Runs one child process and measures it from the outside: wall time, RSS and bytes read
 * sampled from /proc every ~100 ms, stderr lines with their arrival time, the peak RSS
 * the kernel reports at exit (through /usr/bin/time when it is installed), and its CPU time.
 * The bench runs one child at a time.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cpuBetween, endedChildrenCpuSeconds, PPID, procStat } from "./Cpu.js"

export class BenchError extends Data.TaggedError("BenchError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface Sample {
  /** seconds since spawn */
  readonly t: number
  readonly rssKb: number
  readonly hwmKb: number
  /** bytes the process read through read(2) and friends, files and sockets */
  readonly rchar: number
}

export interface StderrLine {
  readonly t: number
  readonly line: string
}

export interface Measured {
  readonly code: number | null
  readonly signal: string | null
  /** epoch milliseconds at spawn */
  readonly startedAt: number
  readonly wallSeconds: number
  readonly stdout: string
  readonly stderr: string
  readonly stderrLines: ReadonlyArray<StderrLine>
  readonly samples: ReadonlyArray<Sample>
  /** max of the sampled VmHWM and the exit-time max RSS */
  readonly peakRssKb: number
  /** what /usr/bin/time reported, if it ran */
  readonly exitMaxRssKb: number | undefined
  /** user + system seconds of the child and its descendants, where /proc tells */
  readonly cpuSeconds: number | undefined
}

export interface ChildSpec {
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
  readonly cwd?: string
  readonly sampleEveryMillis?: number
  /** `args[0]` is an executable (the CLI, with its shebang), not a script for `node` */
  readonly executable?: boolean
}

const TIME = "/usr/bin/time"
const hasTime = fs.existsSync(TIME)

const field = (text: string, name: string): number => {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)
  return m === null ? 0 : Number(m[1])
}

const readSample = (pid: number, t: number): Sample | undefined => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    // a zombie has no memory lines left
    if (!status.includes("VmRSS:")) return undefined
    let rchar = 0
    try {
      rchar = field(fs.readFileSync(`/proc/${pid}/io`, "utf8"), "rchar")
    } catch {
      // /proc/<pid>/io needs ptrace access; RSS alone still works
    }
    return { t, rssKb: field(status, "VmRSS"), hwmKb: field(status, "VmHWM"), rchar }
  } catch {
    return undefined
  }
}

/** The first child of `pid`: the measured program when it runs under /usr/bin/time. */
const childOf = (pid: number): number | undefined => {
  try {
    const first = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]
    if (first !== undefined && first !== "") return Number(first)
  } catch {
    // fall through to scanning /proc
  }
  for (const entry of fs.readdirSync("/proc")) {
    // a process that ended while we looked has no stat
    if (/^\d+$/.test(entry) && Number(procStat(entry)?.fields[PPID]) === pid) return Number(entry)
  }
  return undefined
}

/**
 * Runs `node <args>` (or `<args>` for an executable) and measures it. Interrupting the effect kills the child's process
 * group.
 */
export const runMeasured = (spec: ChildSpec): Effect.Effect<Measured, BenchError> =>
  Effect.async<Measured, BenchError>((resume) => {
    const timeFile = hasTime ? path.join(os.tmpdir(), `xml2pg-bench-time-${process.pid}-${Date.now()}`) : undefined
    // the CLI runs as a user runs it: through its shebang, with the Node flags it sets there
    const program = spec.executable === true ? [...spec.args] : [process.execPath, ...spec.args]
    const command = timeFile === undefined ? program[0]! : TIME
    const args = timeFile === undefined ? program.slice(1) : ["-f", "%M", "-o", timeFile, ...program]
    const cpuBefore = endedChildrenCpuSeconds()
    const startedAt = Date.now()
    const t0 = performance.now()
    const elapsed = () => (performance.now() - t0) / 1000
    const child = spawn(command, args, {
      env: spec.env,
      cwd: spec.cwd ?? process.cwd(),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    const samples: Array<Sample> = []
    const stderrLines: Array<StderrLine> = []
    const stdout: Array<Buffer> = []
    let stderr = ""
    let partial = ""
    let target: number | undefined = timeFile === undefined ? child.pid : undefined
    let exitedAt: number | undefined
    let done = false

    const sample = () => {
      if (child.pid === undefined || exitedAt !== undefined) return
      if (target === undefined) target = childOf(child.pid)
      if (target === undefined) return
      const s = readSample(target, elapsed())
      if (s !== undefined) samples.push(s)
    }
    const timer = setInterval(sample, spec.sampleEveryMillis ?? 100)
    setImmediate(sample)

    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk: string) => {
      const t = elapsed()
      stderr += chunk
      if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000)
      const lines = (partial + chunk).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) stderrLines.push({ t, line })
    })
    child.on("exit", () => {
      sample()
      exitedAt = elapsed()
      clearInterval(timer)
    })
    child.on("error", (cause) => {
      clearInterval(timer)
      if (done) return
      done = true
      resume(Effect.fail(new BenchError({ message: `cannot start ${command}: ${cause.message}`, cause })))
    })
    child.on("close", (code, signal) => {
      clearInterval(timer)
      if (done) return
      done = true
      if (partial !== "") stderrLines.push({ t: elapsed(), line: partial })
      let exitMaxRssKb: number | undefined
      if (timeFile !== undefined) {
        try {
          const text = fs.readFileSync(timeFile, "utf8").trim().split("\n")
          const value = Number(text[text.length - 1])
          if (Number.isFinite(value) && value > 0) exitMaxRssKb = value
          fs.rmSync(timeFile, { force: true })
        } catch {
          // time(1) writes nothing when it is killed
        }
      }
      const sampledPeak = samples.reduce((m, s) => Math.max(m, s.hwmKb, s.rssKb), 0)
      // the child has been waited for by now: its CPU is in this process's children's
      const cpuAfter = endedChildrenCpuSeconds()
      resume(Effect.succeed({
        code,
        signal,
        startedAt,
        wallSeconds: exitedAt ?? elapsed(),
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr,
        stderrLines,
        samples,
        peakRssKb: Math.max(sampledPeak, exitMaxRssKb ?? 0),
        exitMaxRssKb,
        cpuSeconds: cpuBetween(cpuBefore, cpuAfter)
      }))
    })
    return Effect.sync(() => {
      clearInterval(timer)
      done = true
      if (child.pid !== undefined && exitedAt === undefined) {
        try {
          process.kill(-child.pid, "SIGTERM")
        } catch {
          // already gone
        }
      }
    })
  })

/** The last `n` characters of a child's stderr, for error messages. */
export const tail = (text: string, n = 2000): string => (text.length <= n ? text : "…" + text.slice(-n)).trim()
