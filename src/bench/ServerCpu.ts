/**
 * CPU time of the PostgreSQL server when it runs on this machine: the user + system ticks
 * of every process named `postgres` in `/proc` (postmaster, backends, WAL writer,
 * checkpointer, parallel workers). A backend that exits between two readings takes its
 * ticks with it, so read both ends while the measured connections are still open.
 * Returns `undefined` where `/proc` is not there (not Linux) or shows no such process
 * (a remote server).
 */
import * as fs from "node:fs"

/** Linux reports `/proc/<pid>/stat` times in clock ticks of 1/100 s on every common build. */
const TICKS_PER_SECOND = 100

export const serverCpuSeconds = (): number | undefined => {
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return undefined
  }
  let ticks = 0
  let found = false
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
    } catch {
      continue
    }
    const open = stat.indexOf("(")
    const close = stat.lastIndexOf(")")
    if (open < 0 || close < 0 || stat.slice(open + 1, close) !== "postgres") continue
    // fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    const fields = stat.slice(close + 2).split(" ")
    ticks += Number(fields[11]) + Number(fields[12])
    found = true
  }
  return found ? ticks / TICKS_PER_SECOND : undefined
}
