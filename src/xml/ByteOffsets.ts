/**
 * Maps saxes positions (UTF-16 code units since the start of the text) back to byte
 * offsets in the input, for rejects and batch byte ranges. It keeps the decoded chunks of
 * at least the last HISTORY_CHARS. Positions are asked for sparsely (a batch's ends, a
 * reject), so each is counted from the nearest of its chunk's start, its end and the last
 * position asked for in it: a lookup scans a fraction of a chunk, not all the text before it.
 */
interface Span {
  readonly charStart: number
  readonly byteStart: number
  readonly text: string
  /** UTF-8 length of `text` */
  readonly bytes: number
  /** the last position asked for, relative to the span, and its byte offset within it */
  cursorChar: number
  cursorByte: number
}

/** history kept behind the newest chunk: enough for a start tag's "<" however small the chunks */
const HISTORY_CHARS = 4096

/** below this many characters a JS loop beats slicing out the text for `Buffer.byteLength` */
const SHORT_RUN = 64

/** `Buffer.byteLength(text.slice(from, to))`, without the slice when the run is short. */
const utf8Length = (text: string, from: number, to: number): number => {
  if (to - from > SHORT_RUN) return Buffer.byteLength(text.slice(from, to))
  let n = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < to && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

export class ByteOffsets {
  private readonly spans: Array<Span>

  constructor(byteBase: number) {
    this.spans = [{ charStart: 0, byteStart: byteBase, text: "", bytes: 0, cursorChar: 0, cursorByte: 0 }]
  }

  /**
   * Registers the next decoded chunk of text, `bytes` long in UTF-8; chunks from `keepFrom`
   * on are kept too.
   */
  push(text: string, bytes: number, keepFrom = Number.MAX_SAFE_INTEGER): void {
    const c = this.spans[this.spans.length - 1]!
    const charStart = c.charStart + c.text.length
    this.spans.push({ charStart, byteStart: c.byteStart + c.bytes, text, bytes, cursorChar: 0, cursorByte: 0 })
    const dropBefore = Math.min(keepFrom, charStart - HISTORY_CHARS)
    while (this.spans.length > 2 && this.spans[1]!.charStart <= dropBefore) this.spans.shift()
  }

  /** The byte offset of the character at `position`. */
  at(position: number): number {
    for (let i = this.spans.length - 1; i >= 0; i--) {
      const s = this.spans[i]!
      if (position < s.charStart) continue
      const within = position - s.charStart
      const n = s.text.length
      if (s.bytes === n) return s.byteStart + within
      const c = s.cursorChar
      const byte = within >= c
        ? (within - c <= n - within ? s.cursorByte + utf8Length(s.text, c, within) : s.bytes - utf8Length(s.text, within, n))
        : (c - within <= within ? s.cursorByte - utf8Length(s.text, within, c) : utf8Length(s.text, 0, within))
      s.cursorChar = within
      s.cursorByte = byte
      return s.byteStart + byte
    }
    return this.spans[0]!.byteStart
  }

  /** The text kept from `position` to the end of the newest chunk. */
  textFrom(position: number): string {
    let out = ""
    for (const s of this.spans) {
      const end = s.charStart + s.text.length
      if (end <= position) continue
      out += position > s.charStart ? s.text.slice(position - s.charStart) : s.text
    }
    return out
  }
}
