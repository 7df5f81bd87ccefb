/** Reads one COPY text field back: `\N` is NULL; the escapes `\\`, `\t`, `\n`, `\r` are undone. */
export const unescapeField = (field: string): string | null => {
  if (field === "\\N") return null
  let out = ""
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!
    if (c !== "\\") {
      out += c
      continue
    }
    const e = field[++i]
    if (e === "\\") out += "\\"
    else if (e === "t") out += "\t"
    else if (e === "n") out += "\n"
    else if (e === "r") out += "\r"
    else throw new Error(`bad escape \\${e} in ${JSON.stringify(field)}`)
  }
  return out
}
