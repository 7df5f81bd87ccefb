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
  /** a value that passes `check` has no tab, newline, carriage return or backslash: COPY text takes it as it is */
  readonly plain?: boolean
  /**
   * Which built-in type this is. A check is a function and cannot cross to the parse
   * worker; a shape whose types all have a spec is rebuilt there from specs, any other
   * shape is parsed on the main thread.
   */
  readonly spec?: ValueTypeSpec
}

/**
 * A built-in value type as plain data.
 *
 * @since 0.1.0
 * @category models
 */
export type ValueTypeSpec =
  | { readonly _tag: "id" | "text" | "nonEmptyText" | "timestamptz" }
  | { readonly _tag: "smallint"; readonly min: number; readonly max: number }

const checkNonEmpty = (s: string): string | undefined => (s.length === 0 ? "empty" : undefined)

const specKey = (spec: ValueTypeSpec): string =>
  spec._tag === "smallint" ? `smallint ${spec.min} ${spec.max}` : spec._tag

/** The checks the built-in types were made with, and the spec each was made for. */
const builtInChecks = new WeakMap<ValueType["check"], string>()

/**
 * @since 0.1.0
 * @category constructors
 */
export const ValueType = {
  id: { sql: "bigint", check: checkId, plain: true, spec: { _tag: "id" } } satisfies ValueType,
  text: { sql: "text", check: () => undefined, spec: { _tag: "text" } } satisfies ValueType,
  nonEmptyText: { sql: "text", check: checkNonEmpty, spec: { _tag: "nonEmptyText" } } satisfies ValueType,
  timestamptz: { sql: "timestamptz", check: checkTimestamp, plain: true, spec: { _tag: "timestamptz" } } satisfies ValueType,
  smallint: (min: number, max: number): ValueType => {
    const spec: ValueTypeSpec = { _tag: "smallint", min, max }
    const check = checkIntRange(min, max)
    builtInChecks.set(check, specKey(spec))
    return { sql: "smallint", check, plain: true, spec }
  }
} as const

/** The built-in type a spec stands for. */
const fromSpec = (spec: ValueTypeSpec): ValueType =>
  spec._tag === "smallint" ? ValueType.smallint(spec.min, spec.max) : ValueType[spec._tag]

for (const t of [ValueType.id, ValueType.text, ValueType.nonEmptyText, ValueType.timestamptz]) {
  builtInChecks.set(t.check, specKey(t.spec))
}

/**
 * Whether `type` is a built-in type as its constructor made it: its check, SQL type and
 * `plain` flag those of its spec. Only such a type crosses to a parse worker, which rebuilds
 * it from its spec, and loads as binary COPY, whose encoders rely on its check having passed;
 * a spread of a built-in type with a check or SQL type of one's own is the user's own type.
 *
 * @since 0.1.0
 * @category utils
 */
export const isBuiltIn = (type: ValueType): type is ValueType & { readonly spec: ValueTypeSpec } => {
  if (type.spec === undefined || builtInChecks.get(type.check) !== specKey(type.spec)) return false
  const own = fromSpec(type.spec)
  return type.sql === own.sql && (type.plain === true) === (own.plain === true)
}

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
 * order). Finalize orders by `(run_id, ord)` to pick the last occurrence. The binary COPY
 * encoder (`BinaryTable` in Batch.ts) writes them as int4, int4 and int8.
 *
 * @since 0.1.0
 * @category models
 */
export const stagingPrefix: ReadonlyArray<{ readonly name: string; readonly sql: string }> = [
  { name: "run_id", sql: "integer" },
  { name: "batch_seq", sql: "integer" },
  { name: "ord", sql: "bigint" }
]

/**
 * A document shape as plain data, its value types as specs: what crosses to a parse worker.
 *
 * @since 0.1.0
 * @category models
 */
export interface WireDocument {
  readonly root: string
  readonly record: WireRecord
}

interface WireRecord extends Omit<RecordShape, "columns" | "children"> {
  readonly columns: ReadonlyArray<Omit<Column, "type"> & { readonly type: ValueTypeSpec }>
  readonly children: ReadonlyArray<WireRecord>
}

/**
 * `doc` as plain data, or undefined when one of its types is not built in (see `isBuiltIn`).
 *
 * @since 0.1.0
 * @category utils
 */
export const toWire = (doc: DocumentShape): WireDocument | undefined => {
  const record = (r: RecordShape): WireRecord | undefined => {
    const columns: Array<WireRecord["columns"][number]> = []
    for (const c of r.columns) {
      if (!isBuiltIn(c.type)) return undefined
      columns.push({ name: c.name, source: c.source, type: c.type.spec, required: c.required })
    }
    const children: Array<WireRecord> = []
    for (const child of r.children) {
      const wire = record(child)
      if (wire === undefined) return undefined
      children.push(wire)
    }
    // the known fields only: anything else a user's object carries need not be cloneable
    const { element, key, stagingTable, table } = r
    return { element, table, stagingTable, key, columns, children }
  }
  const wire = record(doc.record)
  return wire === undefined ? undefined : { root: doc.root, record: wire }
}

/**
 * The shape `toWire` described, its types rebuilt.
 *
 * @since 0.1.0
 * @category utils
 */
export const fromWire = (wire: WireDocument): DocumentShape => {
  const record = (r: WireRecord): RecordShape => ({
    ...r,
    columns: r.columns.map((c) => ({ ...c, type: fromSpec(c.type) })),
    children: r.children.map(record)
  })
  return { root: wire.root, record: record(wire.record) }
}
