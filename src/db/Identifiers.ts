/** SQL identifiers from configuration are always quoted, so a name can never become SQL. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`

export const qualify = (schema: string, name: string): string => `${quoteIdent(schema)}.${quoteIdent(name)}`
