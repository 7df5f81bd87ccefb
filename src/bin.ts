#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=3 --single-threaded-gc --expose-gc --interrupt-budget=270336
// A 3 MiB young generation (semi-space) keeps RSS low: a 16 MiB one took ~25 MB more for no
// clear gain in speed. The old generation has no cap: each thread collects it in full every
// 64 MiB of XML (`--expose-gc`; see src/xml/HeapCollection.ts), which keeps a long load's RSS
// flat without the ~5 % a cap of 128 MB cost the parser. GC on each isolate's own thread:
// parallel GC helpers cost more CPU than they save on 2 cores shared with the parser and
// PostgreSQL. Two malloc arenas instead of glibc's 8 per core: the threads' native allocations
// (decoded text, sockets, pg) then reuse the same memory (measured: peak RSS 106 → 102 MB on
// 100 MB of XML, 116 → 110 MB on 1 GB, same speed). It overrides a MALLOC_ARENA_MAX of the
// user's; other C libraries ignore it. A 4× interrupt budget (V8 11's default is 66 KiB of
// bytecode run between tier-up checks): only functions that stay hot reach TurboFan, so V8's
// compiler threads, which compile the main thread's code and each parse worker's apart, did
// less (a 100 MB ingest: 0.42 → 0.25 s of CPU, wall 1.62 → 1.53 s; 1 GB: 0.90 → 0.55 s, wall
// 10.6 → 10.2 s; session 20). The flags apply to the parse workers' isolates too.
/**
 * Starts the bundled CLI, `dist/cli.cjs` (src/cli/Main.ts), through a V8 code cache, as
 * Node 22's `module.enableCompileCache()` does and Node 20 cannot: compiling the bundle was a
 * third of the CLI's start-up. The cache lives under `$XDG_CACHE_HOME/xml2pg`
 * (default `~/.cache/xml2pg`), used only when that folder is the user's own and writable by
 * no one else; one file per bundle, V8 version and V8 flags, written on the first run;
 * `NODE_DISABLE_COMPILE_CACHE=1` turns it off. Any failure to read or write it only costs
 * the compile. Under `--enable-source-maps` the bundle is `require`d, as Node 20 maps no
 * stack of a `vm.Script`. Only Node's built-ins are imported here.
 */
import { isAscii } from "node:buffer"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Worker } from "node:worker_threads"

const file = fileURLToPath(new URL("./cli.cjs", import.meta.url))

/** caches kept, newest first: other versions and flag sets in use */
const KEEP = 4
/** a cache file starts with the SHA-1 of the rest: V8's release builds do not check its payload */
const DIGEST = 20

const sha1 = (...parts: ReadonlyArray<string | Uint8Array>) => {
  const hash = createHash("sha1")
  for (const part of parts) hash.update(part)
  return hash.digest()
}

// the bundle as a CommonJS module; `__xml2pgImport`: see scripts/cjs-import.js
const HEAD = "(function (exports, require, module, __filename, __dirname, __xml2pgImport) {"
const TAIL = "\n})"

/** `p` is this user's (always, where there are no uids). */
const ownedByMe = (p: string): boolean => process.getuid === undefined || fs.lstatSync(p).uid === process.getuid()

/**
 * The cache folder, if it is the user's own and writable by no one else. A relative
 * `XDG_CACHE_HOME` is ignored, as the XDG spec says. Nothing is created in a folder of
 * another user's (root with a user's HOME, say).
 */
const cacheDir = (): string | undefined => {
  if (process.env["NODE_DISABLE_COMPILE_CACHE"] !== undefined) return undefined
  const xdg = process.env["XDG_CACHE_HOME"]
  const root = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".cache")
  if (!path.isAbsolute(root)) return undefined
  const dir = path.join(root, "xml2pg")
  if (!fs.existsSync(dir)) {
    if (!ownedByMe(fs.existsSync(root) ? root : path.dirname(root))) return undefined
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  }
  const stat = fs.lstatSync(dir)
  return stat.isDirectory() && ownedByMe(dir) && (stat.mode & 0o022) === 0 ? dir : undefined
}

const DAY = 86_400_000

const readCache = (at: string): Buffer | undefined => {
  try {
    const data = fs.readFileSync(at)
    if (data.length <= DIGEST || !sha1(data.subarray(DIGEST)).equals(data.subarray(0, DIGEST))) return undefined
    // eviction goes by modification time: a cache in use is touched, once a day at most
    const now = Date.now()
    if (fs.statSync(at).mtimeMs < now - DAY) fs.utimesSync(at, now / 1000, now / 1000)
    return data.subarray(DIGEST)
  } catch {
    return undefined
  }
}

/** Written once the bundle has run, so the functions its start-up compiled are in it too. */
const writeCache = (at: string, script: vm.Script): void => {
  const dir = path.dirname(at)
  // pids repeat across containers that share a home
  const temp = `${at}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`
  try {
    const data = script.createCachedData()
    fs.writeFileSync(temp, Buffer.concat([sha1(data), data]), { flag: "wx", mode: 0o600 })
    fs.renameSync(temp, at)
    const old = Date.now() - 60_000
    const files = fs.readdirSync(dir).map((f) => path.join(dir, f)).map((f) => ({ f, mtime: fs.statSync(f).mtimeMs }))
    const caches = files.filter(({ f }) => f.endsWith(".v8")).sort((a, b) => b.mtime - a.mtime)
    // and temporary files of runs that were killed while writing
    for (const { f } of [...caches.slice(KEEP), ...files.filter((x) => x.f.endsWith(".tmp") && x.mtime < old)]) {
      fs.rmSync(f, { force: true })
    }
  } catch {
    // a read-only or full home: every run compiles, as without a cache
    try {
      fs.rmSync(temp, { force: true })
    } catch {
      // the bundle is running: nothing here may throw
    }
  }
}

/** Where the cache of `bytes` (the bundle) lives, if anywhere. */
const cacheFile = (bytes: Buffer): string | undefined => {
  try {
    const dir = cacheDir()
    if (dir === undefined) return undefined
    // V8 checks its version, flags and the source's length, not its text: the name covers all of them
    const key = sha1(HEAD, bytes, TAIL, `${v8.cachedDataVersionTag()} ${process.version}`).toString("hex")
    return path.join(dir, `cli-${key.slice(0, 20)}.v8`)
  } catch {
    // no home, or an unusable one: no cache
    return undefined
  }
}

const run = (): void => {
  const bytes = fs.readFileSync(file)
  // an ASCII bundle (bundle.mjs drops comments; esbuild escapes the rest) is read as one-byte text, without decoding
  const source = HEAD + bytes.toString(isAscii(bytes) ? "latin1" : "utf8") + TAIL
  const at = cacheFile(bytes)
  const cachedData = at === undefined ? undefined : readCache(at)
  const script = new vm.Script(source, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) })
  const module = { exports: {} }
  // The bundle's `import()` (scripts/cjs-import.js). Its own would fail: Node 20 gives a
  // `vm.Script` no `import()` unless told how, and forgets how when it compiles from a cache.
  const importEsm = (specifier: string): Promise<unknown> => import(specifier)
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file), importEsm)
  if (at !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) writeCache(at, script)
}

/** Where the subcommand is: the first argument that is not a root option (`-q`, `--log-format X`) or its value. */
const subcommandAt = (args: ReadonlyArray<string>): number => {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--log-format") i++
    else if (!arg.startsWith("-")) return i
  }
  return -1
}

const PRESTARTED = Symbol.for("xml2pg.prestartedParseWorker")

/** `MAIN_THREAD_COLLECTS` of src/xml/HeapCollection.ts, named again as this file imports only Node's built-ins */
const MAIN_THREAD_COLLECTS = Symbol.for("xml2pg.mainThreadCollects")

/**
 * The parse worker of an `ingest` or `run`, started before the bundle loads: a worker thread
 * takes ~50–80 ms to boot, which then overlaps the CLI's own start-up on the other core
 * instead of following it; and it parses the first input meanwhile, on a guess it checks
 * once told (src/xml/ParseAhead.ts), from the arguments after the subcommand; not on one CPU,
 * where it would only slow the start-up it is meant to overlap.
 * `src/xml/ParseThread.ts` takes it from the global, or terminates it when the run parses on
 * the main thread. Unref'd until then (the CLI ends with `process.exit` anyway). One that
 * fails before it is taken leaves the global, so the CLI starts another, which reports its
 * own failure.
 */
const prestartParseWorker = (): void => {
  const args = process.argv.slice(2)
  const at = subcommandAt(args)
  if (args[at] !== "ingest" && args[at] !== "run") return
  const ahead = os.availableParallelism() >= 2 ? { ahead: { args: args.slice(at + 1) } } : {}
  const worker = new Worker(new URL("./ParseWorker.js", import.meta.url), { workerData: ahead })
  worker.unref()
  const global = globalThis as Record<symbol, unknown>
  worker.on("error", () => {
    if (global[PRESTARTED] === worker) delete global[PRESTARTED]
  })
  global[PRESTARTED] = worker
}

prestartParseWorker()
// the main thread collects its heap every 64 MiB of XML too
;(globalThis as Record<symbol, unknown>)[MAIN_THREAD_COLLECTS] = true
// `process.sourceMapsEnabled` is from Node 20.7
const sourceMaps = process.sourceMapsEnabled ?? process.execArgv.includes("--enable-source-maps")
if (sourceMaps) createRequire(import.meta.url)(file)
else run()
