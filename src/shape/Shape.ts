/**
 * A declarative description of an XML record format and the tables it loads into. The
 * parser, the staging DDL, the COPY encoder and finalize all read it, so another XML shape
 * is a new description, not new pipeline code.
 *
 * @since 0.1.0
 */
import { checkId, checkIntRange, checkTimestamp } from "./Values.js"

/**
 * A column type: its SQL type and the check a raw XML value must pass.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValueType {
  readonly sql: string
  readonly check: (raw: string) => string | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const ValueType = {
  id: { sql: "bigint", check: checkId } satisfies ValueType,
  text: { sql: "text", check: () => undefined } satisfies ValueType,
  nonEmptyText: { sql: "text", check: (s: string) => (s.length === 0 ? "empty" : undefined) } satisfies ValueType,
  timestamptz: { sql: "timestamptz", check: checkTimestamp } satisfies ValueType,
  smallint: (min: number, max: number): ValueType => ({ sql: "smallint", check: checkIntRange(min, max) })
} as const

/**
 * Where a column's value comes from: an attribute of the record element, the text of a
 * direct child element, or the key of the enclosing record.
 *
 * @since 0.1.0
 * @category models
 */
export type Source =
  | { readonly _tag: "Attribute"; readonly name: string }
  | { readonly _tag: "Child"; readonly name: string }
  | { readonly _tag: "ParentKey" }

/**
 * One column of a record's tables: its name, where its value comes from, its type, and
 * whether a record without the value is rejected.
 *
 * @since 0.1.0
 * @category models
 */
export interface Column {
  readonly name: string
  readonly source: Source
  readonly type: ValueType
  readonly required: boolean
}

/**
 * One kind of record: an element, its columns, its tables and the records nested in it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordShape {
  readonly element: string
  /** final table */
  readonly table: string
  readonly stagingTable: string
  /** the column holding the record's id; the first column */
  readonly key: string
  readonly columns: ReadonlyArray<Column>
  readonly children: ReadonlyArray<RecordShape>
}

/**
 * A document format: the root element's name and the top-level record shape under it.
 *
 * @since 0.1.0
 * @category models
 */
export interface DocumentShape {
  readonly root: string
  readonly record: RecordShape
}

/**
 * A column read from an attribute of the record element.
 *
 * @since 0.1.0
 * @category constructors
 */
export const attribute = (name: string, column: string, type: ValueType, required = false): Column => ({
  name: column,
  source: { _tag: "Attribute", name },
  type,
  required
})

/**
 * A column read from the text of a direct child element: text, entities and CDATA,
 * concatenated and not trimmed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const child = (name: string, column: string, type: ValueType, required = false): Column => ({
  name: column,
  source: { _tag: "Child", name },
  type,
  required
})

/**
 * A column holding the key of the enclosing record, such as an event's `group_id`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parentKey = (column: string, type: ValueType = ValueType.id): Column => ({
  name: column,
  source: { _tag: "ParentKey" },
  type,
  required: true
})

/**
 * Every record shape in document order (a parent before its children).
 *
 * @since 0.1.0
 * @category utils
 */
export const recordShapes = (doc: DocumentShape): ReadonlyArray<RecordShape> => {
  const out: Array<RecordShape> = []
  const visit = (r: RecordShape): void => {
    out.push(r)
    r.children.forEach(visit)
  }
  visit(doc.record)
  return out
}

/**
 * The columns every staging table has before the record's own: who loaded the row, in
 * which batch, and where it stood in the file (`ord`, the record's number in document
 * order). Finalize orders by `(run_id, ord)` to pick the last occurrence.
 *
 * @since 0.1.0
 * @category models
 */
export const stagingPrefix: ReadonlyArray<{ readonly name: string; readonly sql: string }> = [
  { name: "run_id", sql: "integer" },
  { name: "batch_seq", sql: "integer" },
  { name: "ord", sql: "bigint" }
]
