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

const two = (s: string, i: number): number => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48

const digitsAt = (s: string, from: number, count: number): boolean => {
  for (let i = from; i < from + count; i++) {
    if (!isDigit(s.charCodeAt(i))) return false
  }
  return true
}

const daysIn = (year: number, month: number): number =>
  month === 2
    ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28)
    : month === 4 || month === 6 || month === 9 || month === 11
    ? 30
    : 31

/**
 * `YYYY-MM-DDTHH:MM:SS[.f{1,6}]` then `Z` or `±hh:mm`: a real calendar date, hour ≤ 23,
 * offset ≤ 14:59. Stricter than PostgreSQL on purpose, so that what loads is what was meant.
 */
export const checkTimestamp = (s: string): string | undefined => {
  const bad = "not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)"
  const n = s.length
  if (n < 20) return bad
  if (
    !digitsAt(s, 0, 4) || s.charCodeAt(4) !== 45 || !digitsAt(s, 5, 2) || s.charCodeAt(7) !== 45 ||
    !digitsAt(s, 8, 2) || s.charCodeAt(10) !== 84 || !digitsAt(s, 11, 2) || s.charCodeAt(13) !== 58 ||
    !digitsAt(s, 14, 2) || s.charCodeAt(16) !== 58 || !digitsAt(s, 17, 2)
  ) return bad
  let i = 19
  if (s.charCodeAt(i) === 46) {
    const start = ++i
    while (i < n && isDigit(s.charCodeAt(i))) i++
    const fraction = i - start
    if (fraction < 1 || fraction > 6) return bad
  }
  const zone = s.charCodeAt(i)
  if (zone === 90) {
    if (i + 1 !== n) return bad
  } else if (zone === 43 || zone === 45) {
    if (i + 6 !== n || !digitsAt(s, i + 1, 2) || s.charCodeAt(i + 3) !== 58 || !digitsAt(s, i + 4, 2)) return bad
    if (two(s, i + 1) > 14 || two(s, i + 4) > 59) return "time zone offset out of range"
  } else {
    return bad
  }
  const year = two(s, 0) * 100 + two(s, 2)
  const month = two(s, 5)
  const day = two(s, 8)
  if (year === 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return "not a calendar date"
  if (two(s, 11) > 23 || two(s, 14) > 59 || two(s, 17) > 59) return "not a time of day"
  return undefined
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
