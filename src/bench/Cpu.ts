/**
 * CPU time from Linux's `/proc`: of the PostgreSQL server when it runs on this machine, and
 * of the bench's own child processes. Both return `undefined` where `/proc` is not there
 * (not Linux); the server's also where it shows no `postgres` process (a remote server).
 */
import * as fs from "node:fs"

/** Linux reports `/proc/<pid>/stat` times in clock ticks of 1/100 s on every common build. */
const TICKS_PER_SECOND = 100

export interface ProcStat {
  readonly name: string
  /** the fields after "(name) " */
  readonly fields: ReadonlyArray<string>
}

/** `/proc/<pid>/stat` of process `pid` ("self": this one), if it is there. */
export const procStat = (pid: number | string): ProcStat | undefined => {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
  } catch {
    return undefined
  }
  const open = stat.indexOf("(")
  const close = stat.lastIndexOf(")")
  if (open < 0 || close < 0) return undefined
  return { name: stat.slice(open + 1, close), fields: stat.slice(close + 2).split(" ") }
}

// indexes in `fields`: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
export const PPID = 1
/** user and system ticks of the process */
const UTIME = 11
/** user and system ticks of its children it has waited for */
const CUTIME = 13

/** the user + system ticks at `at` (UTIME or CUTIME) */
const ticks = (fields: ReadonlyArray<string>, at: number): number => Number(fields[at]) + Number(fields[at + 1])

/**
 * The user + system seconds of every process named `postgres` (postmaster, backends, WAL
 * writer, checkpointer, parallel workers), and of those the postmaster has reaped: a
 * backend that exits between two readings counts in the second, all of its life, so the
 * connections of a process that has ended (an ingest's) count too.
 */
export const serverCpuSeconds = (): number | undefined => {
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return undefined
  }
  let total = 0
  let found = false
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = procStat(entry)
    if (stat?.name !== "postgres") continue
    total += ticks(stat.fields, UTIME) + ticks(stat.fields, CUTIME)
    found = true
  }
  return found ? total / TICKS_PER_SECOND : undefined
}

/**
 * The user + system seconds of this process's children that have ended and been waited
 * for, theirs included (`time(1)` waits for the program it runs). The difference of two
 * readings around one child is that child's CPU, if no other child ended meanwhile.
 */
export const endedChildrenCpuSeconds = (): number | undefined => {
  const stat = procStat("self")
  return stat === undefined ? undefined : ticks(stat.fields, CUTIME) / TICKS_PER_SECOND
}

/** The seconds between two readings of the above, in whole ticks; undefined if either is. */
export const cpuBetween = (before: number | undefined, after: number | undefined): number | undefined =>
  before === undefined || after === undefined
    ? undefined
    : Math.round((after - before) * TICKS_PER_SECOND) / TICKS_PER_SECOND
