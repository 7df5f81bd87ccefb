/**
 * Plain, allocation-light validators for the value types a shape can declare. They run
 * once per field per record, so they avoid regexes and return `undefined` when valid or a
 * short reason when not.
 */

const MAX_BIGINT = "9223372036854775807"

const isDigit = (c: number): boolean => c >= 48 && c <= 57

/** 1..2^63-1 in plain ASCII decimal, no sign, no leading zero, no spaces. */
export const checkId = (s: string): string | undefined => {
  const n = s.length
  if (n === 0 || n > 19) return "not an id in 1..2^63-1"
  if (s.charCodeAt(0) === 48) return "not an id in 1..2^63-1"
  for (let i = 0; i < n; i++) {
    if (!isDigit(s.charCodeAt(i))) return "not an id in 1..2^63-1"
  }
  if (n === 19 && s > MAX_BIGINT) return "not an id in 1..2^63-1"
  return undefined
}

/** The two digits at `i` as a number, or -1 if either is not a digit (or is past the end). */
const two = (s: string, i: number): number => {
  const a = s.charCodeAt(i) - 48
  const b = s.charCodeAt(i + 1) - 48
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

/** Days in `month` (1..12) of `year`, proleptic Gregorian. */
export const daysIn = (year: number, month: number): number =>
  month === 2
    ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28)
    : month === 4 || month === 6 || month === 9 || month === 11
    ? 30
    : 31

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`). */
export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const BAD_TIMESTAMP = "not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)"

/**
 * The last timestamp `checkTimestamp` passed, as it read it: whole seconds since
 * 1970-01-01 UTC and the microseconds past them. The binary COPY encoder runs right after
 * the check of a record's values, and takes the instant from here instead of reading the
 * text a second time (`readTimestamp`); of a record with several timestamp columns, only the
 * last one checked is taken, the others are read again. It starts as a valid entry, so no
 * string is mistaken for a checked one.
 */
const lastTimestamp = { text: "1970-01-01T00:00:00Z", seconds: 0, micros: 0 }

/** digits of a 1–6 digit fraction → the multiplier that makes it microseconds */
const FRACTION_SCALE = [1, 100000, 10000, 1000, 100, 10, 1]

/**
 * `YYYY-MM-DDTHH:MM:SS[.f{1,6}]` then `Z` or `±hh:mm`: a real calendar date, hour ≤ 23,
 * offset ≤ 14:59. Stricter than PostgreSQL on purpose, so that what loads is what was meant.
 */
export const checkTimestamp = (s: string): string | undefined => {
  const n = s.length
  if (n < 20) return BAD_TIMESTAMP
  const century = two(s, 0)
  const yy = two(s, 2)
  const month = two(s, 5)
  const day = two(s, 8)
  const hour = two(s, 11)
  const minute = two(s, 14)
  const second = two(s, 17)
  if (
    (century | yy | month | day | hour | minute | second) < 0 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58
  ) return BAD_TIMESTAMP
  let i = 19
  let micros = 0
  if (s.charCodeAt(i) === 46) {
    const start = ++i
    while (i < n && isDigit(s.charCodeAt(i))) micros = micros * 10 + s.charCodeAt(i++) - 48
    const fraction = i - start
    if (fraction < 1 || fraction > 6) return BAD_TIMESTAMP
    micros *= FRACTION_SCALE[fraction]!
  }
  const zone = s.charCodeAt(i)
  let offset = 0
  if (zone === 90) {
    if (i + 1 !== n) return BAD_TIMESTAMP
  } else if (zone === 43 || zone === 45) {
    const zoneHours = two(s, i + 1)
    const zoneMinutes = two(s, i + 4)
    if (i + 6 !== n || (zoneHours | zoneMinutes) < 0 || s.charCodeAt(i + 3) !== 58) return BAD_TIMESTAMP
    if (zoneHours > 14 || zoneMinutes > 59) return "time zone offset out of range"
    offset = (zone === 43 ? 1 : -1) * (zoneHours * 3600 + zoneMinutes * 60)
  } else {
    return BAD_TIMESTAMP
  }
  const year = century * 100 + yy
  if (year === 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return "not a calendar date"
  if (hour > 23 || minute > 59 || second > 59) return "not a time of day"
  lastTimestamp.text = s
  lastTimestamp.seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
  lastTimestamp.micros = micros
  return undefined
}

/**
 * The instant of a timestamp that passes `checkTimestamp`: whole seconds since 1970-01-01
 * UTC and the microseconds past them. Read again only if it was not the last one checked.
 * The object is reused: read it before the next check.
 */
export const readTimestamp = (s: string): { readonly seconds: number; readonly micros: number } => {
  if (s !== lastTimestamp.text && checkTimestamp(s) !== undefined) throw new Error(`not a valid timestamp: ${s}`)
  return lastTimestamp
}

/** A small integer written in plain decimal within `[min, max]`. */
export const checkIntRange = (min: number, max: number) => (s: string): string | undefined => {
  const n = s.length
  if (n === 0 || n > 6) return `not an integer in ${min}..${max}`
  let i = 0
  let negative = false
  if (s.charCodeAt(0) === 45) {
    negative = true
    i = 1
    if (n === 1) return `not an integer in ${min}..${max}`
  }
  if (s.charCodeAt(i) === 48 && n > i + 1) return `not an integer in ${min}..${max}`
  let value = 0
  for (; i < n; i++) {
    const c = s.charCodeAt(i)
    if (!isDigit(c)) return `not an integer in ${min}..${max}`
    value = value * 10 + c - 48
  }
  if (negative) {
    if (value === 0) return `not an integer in ${min}..${max}`
    value = -value
  }
  return value < min || value > max ? `not an integer in ${min}..${max}` : undefined
}
