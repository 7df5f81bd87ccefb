/**
 * What a stage child prints on its last stdout line, as JSON.
 */
export interface StageOutcome {
  /** seconds of the timed section only: no process start, no module loading */
  readonly seconds: number
  readonly xmlBytes: number
  readonly rows: number
  readonly rejects: number
  /** `process.resourceUsage().maxRSS` at the end, in KiB */
  readonly maxRssKb: number
  readonly detail?: Record<string, unknown>
}

export const STAGE_MARK = "@@stage-result "

/** Stages read their input as the loader does. */
export { READ_CHUNK } from "../xml/Producer.js"
