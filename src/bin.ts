#!/usr/bin/env -S node --max-old-space-size=128 --max-semi-space-size=3 --single-threaded-gc
// The heap caps keep a long load's RSS flat: V8 otherwise lets the old generation grow
// lazily far past the live set (measured: peak RSS 205 MB → 130 MB on 112 MB of XML, same speed).
// The parse worker's isolate gets the same caps (V8's flags override a worker's
// `resourceLimits`). GC on each isolate's own thread: parallel GC helpers cost more CPU than
// they save on 2 cores shared with the parser and PostgreSQL.
/**
 * Starts the bundled CLI, `dist/cli.cjs` (src/cli/Main.ts), through a V8 code cache, as
 * Node 22's `module.enableCompileCache()` does and Node 20 cannot: compiling the 2.3 MB
 * bundle was a third of the CLI's start-up. The cache lives under `$XDG_CACHE_HOME/xml2pg`
 * (default `~/.cache/xml2pg`), one file per bundle content, Node version and flags, written
 * on the first run; `NODE_DISABLE_COMPILE_CACHE=1` turns it off. Any failure to read or
 * write it only costs the compile. Under `--enable-source-maps` the bundle is `require`d, as
 * Node 20 maps no stack of a `vm.Script`. Only Node's built-ins are imported here.
 */
import { isAscii } from "node:buffer"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const file = fileURLToPath(new URL("./cli.cjs", import.meta.url))

/** caches kept, newest first: other versions and flag sets in use */
const KEEP = 4

const cacheFile = (bytes: Buffer): string | undefined => {
  if (process.env["NODE_DISABLE_COMPILE_CACHE"] !== undefined) return undefined
  const root = process.env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache")
  // V8 rejects a cache of another version or flag set; one file each keeps them from evicting each other
  const key = createHash("sha1").update(bytes).update(`${process.version} ${process.arch} ${process.execArgv.join(" ")}`)
  return path.join(root, "xml2pg", `cli-${key.digest("hex").slice(0, 20)}.v8`)
}

const readCache = (at: string | undefined): Buffer | undefined => {
  if (at === undefined) return undefined
  try {
    return fs.readFileSync(at)
  } catch {
    return undefined
  }
}

/** Written once the bundle has run, so the functions its start-up compiled are in it too. */
const writeCache = (at: string, script: vm.Script): void => {
  try {
    const dir = path.dirname(at)
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const temp = `${at}.${process.pid}.tmp`
    fs.writeFileSync(temp, script.createCachedData())
    fs.renameSync(temp, at)
    const caches = fs.readdirSync(dir).filter((f) => f.endsWith(".v8")).map((f) => path.join(dir, f))
      .map((f) => ({ f, mtime: fs.statSync(f).mtimeMs })).sort((a, b) => b.mtime - a.mtime)
    for (const old of caches.slice(KEEP)) fs.rmSync(old.f, { force: true })
  } catch {
    // a read-only or full home: every run compiles, as without a cache
  }
}

const run = (): void => {
  const bytes = fs.readFileSync(file)
  // an ASCII bundle (bundle.mjs drops comments; esbuild escapes the rest) is read as one-byte text, without decoding
  const source = bytes.toString(isAscii(bytes) ? "latin1" : "utf8")
  const at = cacheFile(bytes)
  const cachedData = readCache(at)
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname, __xml2pgImport) {${source}\n})`,
    { filename: file, ...(cachedData === undefined ? {} : { cachedData }) }
  )
  const module = { exports: {} }
  // the bundle's `import()` (scripts/cjs-import.js): a script compiled from a cache has none of its own
  const importEsm = (specifier: string): Promise<unknown> => import(specifier)
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file), importEsm)
  if (at !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) writeCache(at, script)
}

if (process.sourceMapsEnabled) createRequire(import.meta.url)(file)
else run()
