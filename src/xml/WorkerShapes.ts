/**
 * The document shapes a parse worker can rebuild by name: a shape holds its validators as
 * functions, which cannot cross to another thread. Other shapes are parsed on the main thread.
 */
import { GroupsDocument } from "../shape/GroupEvents.js"
import type { DocumentShape } from "../shape/Shape.js"

export const workerShapes: Readonly<Record<string, DocumentShape>> = { groups: GroupsDocument }

/** The name a worker knows `doc` by, if any. */
export const workerShapeName = (doc: DocumentShape): string | undefined =>
  Object.keys(workerShapes).find((name) => workerShapes[name] === doc)
