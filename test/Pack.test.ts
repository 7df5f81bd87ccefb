/**
 * The package as a user gets it: `npm pack`, install the tarball into an empty folder,
 * run `npx xml2pg --help` there and import the library entry point. The dependencies come
 * from the npm cache or the registry. Skipped with XML2PG_SKIP_PACK=1.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { inject } from "vitest"
import { tmpDir } from "./utils.js"

const skip = process.env["XML2PG_SKIP_PACK"] === "1"

const run = (command: string, args: ReadonlyArray<string>, cwd: string) => {
  const r = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    timeout: 600_000,
    env: {
      ...process.env,
      XDG_CACHE_HOME: inject("cacheHome"),
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false"
    }
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, output: `${r.stdout}\n${r.stderr}` }
}

describe.skipIf(skip)("npm pack", () => {
  it("the tarball installs in an empty folder, and runs `npx xml2pg --help` there", () => {
    const root = path.resolve(".")
    const out = tmpDir()
    // dist is already built (npm test builds first); rebuilding here would race other test files
    const pack = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", out], root)
    assert.strictEqual(pack.code, 0, pack.output)
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
    const files = info!.files.map((f) => f.path)
    for (const f of ["package.json", "README.md", "dist/bin.js", "dist/cli.cjs", "dist/ParseWorker.js", "dist/index.js", "dist/index.d.ts"]) {
      assert.include(files, f)
    }
    assert.isFalse(files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f.endsWith(".map")))

    const app = tmpDir()
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "try-xml2pg", private: true, type: "module" }))
    const install = run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", path.join(out, info!.filename)], app)
    assert.strictEqual(install.code, 0, install.output)

    const help = run("npx", ["--no-install", "xml2pg", "--help"], app)
    assert.strictEqual(help.code, 0, help.output)
    assert.include(help.stdout, "USAGE")
    assert.include(help.stdout, "ingest")
    const ingestHelp = run("npx", ["--no-install", "xml2pg", "ingest", "--help"], app)
    assert.include(ingestHelp.stdout, "--metrics-port")

    const library = run(process.execPath, [
      "--input-type=module",
      "-e",
      "const m = await import('xml2pg'); console.log(typeof m.Xml2Pg.Default, typeof m.IngestConfig, typeof m.MetricsServer.layer)"
    ], app)
    assert.strictEqual(library.code, 0, library.output)
    assert.strictEqual(library.stdout.trim(), "object object function")
    assert.isTrue(fs.existsSync(path.join(app, "node_modules/xml2pg/dist/index.d.ts")))
  }, 600_000)
})
