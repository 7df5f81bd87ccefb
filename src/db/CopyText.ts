/**
 * PostgreSQL COPY text format: columns split by tab, rows end with newline, `\N` is NULL,
 * and backslash, tab, newline and carriage return inside a value are backslash-escaped.
 * Nothing else needs escaping (NUL cannot occur in XML text).
 */
const NEEDS_ESCAPE = /[\\\t\n\r]/
const ESCAPES = /[\\\t\n\r]/g
const replacement: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }

export const escapeCopyText = (value: string): string =>
  NEEDS_ESCAPE.test(value) ? value.replace(ESCAPES, (c) => replacement[c]!) : value

/**
 * One COPY line for `values` after an already-encoded `prefix` (which ends without a tab).
 * `plain[i]`: value i cannot hold a character to escape (its type's check says so).
 */
export const copyLine = (
  prefix: string,
  values: ReadonlyArray<string | null>,
  plain?: ReadonlyArray<boolean>
): string => {
  let line = prefix
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    line += v === null || v === undefined ? "\t\\N" : "\t" + (plain?.[i] === true ? v : escapeCopyText(v))
  }
  return line + "\n"
}
