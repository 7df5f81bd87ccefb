/**
 * docs/library.md shows examples/library.ts word for word; this runs that example against
 * the test database, and checks that every public export carries a TSDoc comment.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import ts from "typescript"
import { inject } from "vitest"
import { loadFiles, makeAppRuntime } from "../examples/library.js"
import { expectedRows, newSchema, tmpDir, writeXml } from "./utils.js"

const query = async <T extends pg.QueryResultRow>(text: string) => {
  const client = new pg.Client({ connectionString: inject("databaseUrl") })
  await client.connect()
  try {
    return (await client.query<T>(text)).rows
  } finally {
    await client.end()
  }
}

describe("docs/library.md", () => {
  it("includes examples/library.ts verbatim", () => {
    const doc = fs.readFileSync("docs/library.md", "utf8")
    const example = fs.readFileSync("examples/library.ts", "utf8")
    assert.include(doc, "```ts\n" + example + "```\n")
  })

  it("the example app loads a file in its own runtime, with its own PgClient", async () => {
    const url = inject("databaseUrl")
    const schema = newSchema()
    const dir = tmpDir()
    const file = path.join(dir, "doc.xml")
    const options = { groups: 400, eventsPerGroup: 2, seed: 33 }
    writeXml(file, options)
    const runtime = makeAppRuntime({
      metricsPort: 0,
      config: ConfigProvider.fromMap(
        new Map([
          ["DATABASE_URL", url],
          ["XML2PG_SCHEMA", schema],
          ["XML2PG_BATCH_ROWS", "150"],
          ["XML2PG_REJECTS", path.join(dir, "rejects.ndjson")]
        ])
      )
    })
    try {
      const { staged, summaries } = await runtime.runPromise(loadFiles([file]))
      const expected = expectedRows(options)
      const total = expected.groups.length + expected.events.length
      assert.strictEqual(summaries.length, 1)
      assert.strictEqual(summaries[0]!.rowsLoaded, total)
      assert.isAbove(summaries[0]!.batches, 3)
      assert.deepStrictEqual(staged, [total])
      // the settings came from the runtime's ConfigProvider: the load went to `schema`
      const [row] = await query<{ n: number }>(`select count(*)::int as n from "${schema}".stg_event`)
      assert.strictEqual(row!.n, expected.events.length)
    } finally {
      await runtime.dispose()
      await query(`drop schema if exists "${schema}" cascade`)
    }
  })
})

describe("public API", () => {
  it("every export of src/index.ts has a TSDoc description", () => {
    const index = path.resolve("src/index.ts")
    const program = ts.createProgram([index], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true
    })
    const checker = program.getTypeChecker()
    const missing: Array<string> = []
    // a namespace re-export (`export * as Metrics`) is documented by its module's opening comment
    const moduleDoc = (symbol: ts.Symbol) => {
      const file = symbol.valueDeclaration
      if (file === undefined || !ts.isSourceFile(file)) return ""
      const first = ts.getLeadingCommentRanges(file.text, 0)?.[0]
      return first === undefined ? "" : file.text.slice(first.pos, first.end).replace(/^\/\*\*|\*\/$|^\s*\*\s?@.*$/gm, "")
    }
    const check = (exported: ts.Symbol, prefix: string) => {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
      const doc = ts.displayPartsToString(symbol.getDocumentationComment(checker)) + moduleDoc(symbol)
      if (doc.replace(/[\s*]/g, "") === "") missing.push(`${prefix}${exported.name}`)
      if (prefix === "" && symbol.flags & ts.SymbolFlags.ValueModule) {
        for (const member of checker.getExportsOfModule(symbol)) check(member, `${exported.name}.`)
      }
    }
    const module = checker.getSymbolAtLocation(program.getSourceFile(index)!)!
    for (const exported of checker.getExportsOfModule(module)) check(exported, "")
    assert.deepStrictEqual(missing, [])
  })
})
