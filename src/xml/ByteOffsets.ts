/**
 * Maps saxes positions (UTF-16 code units since the start of the text) back to byte
 * offsets in the input, for rejects and batch byte ranges. It keeps the decoded chunks of
 * at least the last HISTORY_CHARS; positions in the newest chunk are asked for in
 * increasing order, so a cursor keeps the work linear in the input.
 */
interface Span {
  readonly charStart: number
  readonly byteStart: number
  readonly text: string
  /** UTF-8 length of `text` */
  readonly bytes: number
}

/** history kept behind the newest chunk: enough for a start tag's "<" however small the chunks */
const HISTORY_CHARS = 4096

export class ByteOffsets {
  private readonly spans: Array<Span>
  private cursorChar = 0
  private cursorByte: number

  constructor(byteBase: number) {
    this.spans = [{ charStart: 0, byteStart: byteBase, text: "", bytes: 0 }]
    this.cursorByte = byteBase
  }

  /**
   * Registers the next decoded chunk of text, `bytes` long in UTF-8; chunks from `keepFrom`
   * on are kept too.
   */
  push(text: string, bytes: number, keepFrom = Number.MAX_SAFE_INTEGER): void {
    const c = this.spans[this.spans.length - 1]!
    const next: Span = { charStart: c.charStart + c.text.length, byteStart: c.byteStart + c.bytes, text, bytes }
    this.spans.push(next)
    const dropBefore = Math.min(keepFrom, next.charStart - HISTORY_CHARS)
    while (this.spans.length > 2 && this.spans[1]!.charStart <= dropBefore) this.spans.shift()
    this.cursorChar = next.charStart
    this.cursorByte = next.byteStart
  }

  /** The byte offset of the character at `position`. */
  at(position: number): number {
    const c = this.spans[this.spans.length - 1]!
    if (position >= c.charStart) {
      if (c.bytes === c.text.length) return c.byteStart + position - c.charStart
      if (position < this.cursorChar) {
        this.cursorChar = c.charStart
        this.cursorByte = c.byteStart
      }
      this.cursorByte += Buffer.byteLength(c.text.slice(this.cursorChar - c.charStart, position - c.charStart))
      this.cursorChar = position
      return this.cursorByte
    }
    for (let i = this.spans.length - 2; i >= 0; i--) {
      const s = this.spans[i]!
      if (position >= s.charStart) {
        const within = position - s.charStart
        return s.byteStart + (s.bytes === s.text.length ? within : Buffer.byteLength(s.text.slice(0, within)))
      }
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
