import { assert, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { newSchema, tmpDir, userEnv, writeXml } from "./utils.js"

const bin = path.resolve("dist/bin.js")
const url = inject("databaseUrl")
const schema = newSchema()
const dir = tmpDir()

/** The environment of a user who configured only DATABASE_URL. */
const baseEnv = (): NodeJS.ProcessEnv => userEnv({ DATABASE_URL: url })

const xml2pg = (
  args: ReadonlyArray<string>,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: Buffer; nodeFlags?: ReadonlyArray<string> } = {}
) => {
  const r = spawnSync(process.execPath, [...(options.nodeFlags ?? []), bin, ...args], {
    env: options.env ?? baseEnv(),
    cwd: options.cwd ?? dir,
    encoding: "utf8",
    timeout: 120_000,
    ...(options.input === undefined ? {} : { input: options.input })
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const query = async <T extends pg.QueryResultRow>(text: string, values: Array<unknown> = []) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}

beforeAll(() => {
  assert.isTrue(fs.existsSync(bin), "dist/bin.js is missing: run `npm run build` (npm test does)")
})
afterAll(async () => {
  await query(`drop schema if exists "${schema}" cascade`)
})

describe("xml2pg CLI", () => {
  it("prints help for every command", () => {
    for (const command of [[], ["init"], ["ingest"], ["clean"], ["generate"], ["db"]]) {
      const r = xml2pg([...command, "--help"])
      assert.strictEqual(r.code, 0, `${command.join(" ")} --help: ${r.stderr}`)
      assert.include(r.stdout, "USAGE")
    }
    assert.include(xml2pg(["ingest", "--help"]).stdout, "--batch-rows")
  })

  it("keeps a V8 code cache of its bundle under XDG_CACHE_HOME; a corrupt one is replaced, a disabled one never written", () => {
    const home = tmpDir()
    const env = { ...baseEnv(), XDG_CACHE_HOME: home }
    const version = JSON.parse(fs.readFileSync("package.json", "utf8")).version as string
    const cached = () => fs.readdirSync(path.join(home, "xml2pg")).map((f) => path.join(home, "xml2pg", f))
    const first = xml2pg(["--version"], { env })
    assert.strictEqual(first.code, 0, first.stderr)
    assert.strictEqual(first.stdout.trim(), version)
    const [file, ...others] = cached()
    assert.deepStrictEqual(others, [])
    assert.match(path.basename(file!), /^cli-[0-9a-f]{20}\.v8$/)
    assert.isAbove(fs.statSync(file!).size, 100_000)
    // accepted by V8: a rejected cache would be written again, as a new file
    const inode = fs.statSync(file!).ino
    assert.strictEqual(xml2pg(["--version"], { env }).stdout.trim(), version)
    assert.deepStrictEqual(cached(), [file])
    assert.strictEqual(fs.statSync(file!).ino, inode)
    // damage past V8's header, which V8's release builds do not check: the CLI's own digest does
    const good = fs.readFileSync(file!)
    const damaged = Buffer.from(good)
    damaged.fill(7, damaged.length >> 1, (damaged.length >> 1) + 4096)
    fs.writeFileSync(file!, damaged)
    const corrupt = xml2pg(["init"], { env: { ...env, XML2PG_SCHEMA: schema } })
    assert.strictEqual(corrupt.code, 0, corrupt.stderr)
    assert.include(corrupt.stderr, `schema ${schema} is ready`)
    assert.notStrictEqual(fs.statSync(file!).ino, inode)
    assert.isFalse(fs.readFileSync(file!).equals(damaged))
    // a cache folder others can write to is not used
    fs.chmodSync(path.join(home, "xml2pg"), 0o777)
    fs.rmSync(file!)
    assert.strictEqual(xml2pg(["--version"], { env }).stdout.trim(), version)
    assert.deepStrictEqual(cached(), [])
    const off = tmpDir()
    const disabled = xml2pg(["--version"], { env: { ...env, XDG_CACHE_HOME: off, NODE_DISABLE_COMPILE_CACHE: "1" } })
    assert.strictEqual(disabled.stdout.trim(), version)
    assert.deepStrictEqual(fs.readdirSync(off), [])
  })

  it("keeps the 4 newest code caches and sweeps temp files of killed runs", () => {
    const home = tmpDir()
    const folder = path.join(home, "xml2pg")
    fs.mkdirSync(folder, { mode: 0o700 })
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000)
    // caches of other versions or flags, 1 to 5 hours old, and a temp file left 2 hours ago
    const others = [1, 2, 3, 4, 5].map((h) => {
      const f = path.join(folder, `cli-old${h}.v8`)
      fs.writeFileSync(f, "x")
      fs.utimesSync(f, hoursAgo(h), hoursAgo(h))
      return f
    })
    const stale = path.join(folder, "cli-old1.v8.123.tmp")
    fs.writeFileSync(stale, "x")
    fs.utimesSync(stale, hoursAgo(2), hoursAgo(2))
    const r = xml2pg(["--version"], { env: { ...baseEnv(), XDG_CACHE_HOME: home } })
    assert.strictEqual(r.code, 0, r.stderr)
    const kept = fs.readdirSync(folder).sort()
    assert.strictEqual(kept.length, 4)
    assert.deepStrictEqual(kept.filter((f) => f.startsWith("cli-old")), ["cli-old1.v8", "cli-old2.v8", "cli-old3.v8"])
    assert.match(kept.find((f) => !f.startsWith("cli-old"))!, /^cli-[0-9a-f]{20}\.v8$/)
    assert.isFalse(fs.existsSync(others[4]!))
  })

  it("init is idempotent", () => {
    for (let i = 0; i < 2; i++) {
      const r = xml2pg(["init", "--schema", schema])
      assert.strictEqual(r.code, 0, r.stderr)
      assert.include(r.stderr, `schema ${schema} is ready`)
    }
  })

  it("bad usage exits 2 and says what is wrong", () => {
    const noFile = xml2pg(["ingest", "--schema", schema])
    assert.strictEqual(noFile.code, 2)
    const badWriters = xml2pg(["ingest", "--schema", schema, "--writers", "0", "x.xml"])
    assert.strictEqual(badWriters.code, 2)
    assert.include(badWriters.stdout + badWriters.stderr, "--writers must be a positive integer")
    const notANumber = xml2pg(["ingest", "--schema", schema, "--batch-rows", "lots", "x.xml"])
    assert.strictEqual(notANumber.code, 2)
    const badEnv = xml2pg(["ingest", "--schema", schema, "x.xml"], { env: { ...baseEnv(), XML2PG_WRITERS: "many" } })
    assert.strictEqual(badEnv.code, 2)
    for (const parsers of ["0", "65", "two"]) {
      const badParsers = xml2pg(["ingest", "--schema", schema, "--parsers", parsers, "x.xml"])
      assert.strictEqual(badParsers.code, 2, parsers)
      assert.include(badParsers.stdout + badParsers.stderr, "--parsers must be auto or in 1..64")
      const badParsersEnv = xml2pg(["ingest", "--schema", schema, "x.xml"], { env: { ...baseEnv(), XML2PG_PARSERS: parsers } })
      assert.strictEqual(badParsersEnv.code, 2, parsers)
      assert.include(badParsersEnv.stdout + badParsersEnv.stderr, "XML2PG_PARSERS must be auto or in 1..64")
    }
  })

  it("ingests a clean file: exit 0, summary on stderr, nothing on stdout", async () => {
    const file = path.join(dir, "clean.xml")
    writeXml(file, { groups: 300, eventsPerGroup: 2, seed: 3 })
    const r = xml2pg(["ingest", "--schema", schema, "--batch-rows", "100", file])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout, "")
    assert.match(r.stderr, /rows stg_group_event\s+300\n/)
    assert.match(r.stderr, /rows stg_event\s+600\n/)
    const [run] = await query<{ state: string; rows_loaded: string }>(
      `select state, rows_loaded::text from "${schema}".xml2pg_run where file = $1`,
      [file]
    )
    assert.deepStrictEqual(run, { state: "done", rows_loaded: "900" })
  })

  it("ingest parses on the worker it started before loading the CLI, root options first too; --no-parse-worker ends it", async () => {
    const files = ["ahead-1.xml", "ahead-2.xml"].map((name, i) => {
      const file = path.join(dir, name)
      writeXml(file, { groups: 200, eventsPerGroup: 2, seed: 40 + i })
      return file
    })
    const debug = { ...baseEnv(), XML2PG_LOG_LEVEL: "debug" }
    const count = (text: string, pattern: RegExp) => text.match(pattern)?.length ?? 0
    const taken = /parse worker: the one started with the CLI\b(?! is not needed)/g
    const dropped = /parse worker: the one started with the CLI is not needed/g
    const r = xml2pg(["ingest", "--schema", schema, ...files], { env: debug })
    assert.strictEqual(r.code, 0, r.stderr)
    // both files on it: the second input reuses the first's worker
    assert.strictEqual(count(r.stderr, taken), 1, r.stderr)
    assert.match(r.stderr, /rows stg_event\s+400\n[^]*rows stg_event\s+400\n/)
    // a root option and its value before the subcommand
    const json = xml2pg(["--log-format", "json", "ingest", "--schema", schema, files[0]!], { env: debug })
    assert.strictEqual(json.code, 0, json.stderr)
    assert.strictEqual(count(json.stderr, taken), 1, json.stderr)
    // parsing on the main thread: the worker started ahead is ended, not taken
    const main = xml2pg(["ingest", "--schema", schema, "--no-parse-worker", files[0]!], { env: debug })
    assert.strictEqual(main.code, 0, main.stderr)
    assert.deepStrictEqual([count(main.stderr, taken), count(main.stderr, dropped)], [0, 1], main.stderr)
    const runs = await query<{ file: string; rows_loaded: string }>(
      `select file, rows_loaded::text from "${schema}".xml2pg_run where file = any($1) order by run_id`,
      [files]
    )
    assert.deepStrictEqual(runs, [
      { file: files[0]!, rows_loaded: "600" },
      { file: files[1]!, rows_loaded: "600" },
      { file: files[0]!, rows_loaded: "600" },
      { file: files[0]!, rows_loaded: "600" }
    ])
  })

  it("the worker parses its input ahead while the CLI starts: kept for the run when it guessed right, else dropped", async () => {
    // past AHEAD_LIMIT (16 MiB), and with a first range of more than that: the worker hands
    // over mid-file, to the main thread's descriptor, and checks a kept first range at its end
    const file = path.join(dir, "parsed-ahead.xml")
    writeXml(file, { groups: 52_000, eventsPerGroup: 2, seed: 45 })
    const size = fs.statSync(file).size
    assert.isAbove(size, 2 * 16 * 2 ** 20)
    // a rejects file that exists, named before the input: not taken for it
    const rejects = path.join(dir, "ahead-rejects.ndjson")
    fs.writeFileSync(rejects, "")
    const debug = { ...baseEnv(), XML2PG_LOG_LEVEL: "debug" }
    const ahead = (stderr: string) => /parse worker: (\d+) bytes parsed ahead of the run, (kept|dropped: .*)/.exec(stderr)
    const loads: Array<[ReadonlyArray<string>, NodeJS.ProcessEnv]> = [
      [[], debug],
      // two ranges, set from the environment
      [[], { ...debug, XML2PG_PARSERS: "2" }],
      [["--batch-rows", "5000"], debug],
      [["--no-parse-worker"], debug]
    ]
    const told: Array<[number, string] | undefined> = []
    for (const [extra, env] of loads) {
      const r = xml2pg(["ingest", "--schema", schema, "--rejects", rejects, ...extra, file], { env })
      assert.strictEqual(r.code, 0, r.stderr)
      const m = ahead(r.stderr)
      told.push(m === null ? undefined : [Number(m[1]), m[2]!])
    }
    assert.deepStrictEqual(told.map((t) => t?.[1]), ["kept", "kept", "dropped: other settings", undefined])
    for (const t of told.slice(0, 3)) assert.isTrue(t![0] > 0 && t![0] < size, `parsed ahead: ${t![0]} of ${size}`)
    // each run holds every row once, under its own id, in document order, the same rows
    // whatever was parsed ahead (ord is left out: a second range numbers its records apart)
    const staged = await query<{ groups: number; events: number; digest: string; batches: number; ranges: number }>(
      `select (select count(*)::int from "${schema}".stg_group_event g where g.run_id = r.run_id) as groups,
              (select count(*)::int from "${schema}".stg_event e where e.run_id = r.run_id) as events,
              (select md5(string_agg(concat_ws('|', e.event_id, e.group_id, e.type, e.occurred_at, e.severity,
                                               e.source, e.payload), ',' order by e.ord))
                 from "${schema}".stg_event e where e.run_id = r.run_id) as digest,
              (select count(*)::int from "${schema}".xml2pg_batch b where b.run_id = r.run_id) as batches,
              jsonb_array_length(r.settings->'ranges') as ranges
       from "${schema}".xml2pg_run r where r.file = $1 order by r.run_id`,
      [file]
    )
    assert.deepStrictEqual(
      staged.map(({ groups, events, ranges }) => ({ groups, events, ranges })),
      [0, 1, 0, 0].map((ranges) => ({ groups: 52_000, events: 104_000, ranges }))
    )
    // 156 000 rows: in batches of the default 20 000 rows, or of 5 000
    assert.deepStrictEqual(staged.map((s) => s.batches), [8, 8, 32, 8])
    assert.strictEqual(new Set(staged.map((s) => s.digest)).size, 1)
    assert.strictEqual(fs.readFileSync(rejects, "utf8"), "")
  })

  it("reads stdin with -, on the parse worker and on the main thread: the same rows as the file", async () => {
    const file = path.join(dir, "piped.xml")
    writeXml(file, { groups: 2000, eventsPerGroup: 2, seed: 21 })
    const staged = async (runId: number) =>
      (await query<{ groups: string; events: string }>(
        `select (select md5(string_agg(concat_ws('|', ord, group_id, code, name, description, created_at), ',' order by ord))
                   from "${schema}".stg_group_event where run_id = $1) as groups,
                (select md5(string_agg(concat_ws('|', ord, event_id, group_id, type, occurred_at, severity, source, payload), ',' order by ord))
                   from "${schema}".stg_event where run_id = $1) as events`,
        [runId]
      ))[0]!
    const fromFile = xml2pg(["ingest", "--schema", schema, "--batch-rows", "500", file])
    assert.strictEqual(fromFile.code, 0, fromFile.stderr)
    const [fileRun] = await query<{ run_id: number }>(
      `select run_id from "${schema}".xml2pg_run where file = $1`,
      [file]
    )
    const expected = await staged(fileRun!.run_id)
    assert.match(`${expected.groups} ${expected.events}`, /^[0-9a-f]{32} [0-9a-f]{32}$/)
    for (const flag of ["--parse-worker", "--no-parse-worker"]) {
      const r = xml2pg(["ingest", "--schema", schema, "--batch-rows", "500", flag, "-"], { input: fs.readFileSync(file) })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.match(r.stderr, /rows stg_event\s+4000\n/)
      const [run] = await query<{ run_id: number; rows_loaded: string }>(
        `select run_id, rows_loaded::text from "${schema}".xml2pg_run where file = '-' order by run_id desc limit 1`
      )
      assert.strictEqual(run!.rows_loaded, "6000", flag)
      assert.deepStrictEqual(await staged(run!.run_id), expected, flag)
    }
  })

  it("a crash of the parse worker (out of memory) stops the run with exit 1 and its cause; committed batches stay", async () => {
    const file = path.join(dir, "oom.xml")
    const group = (id: number, name: string) =>
      `<group id="${id}" code="c" created_at="2026-01-01T00:00:00Z"><name>${name}</name></group>`
    const small = Array.from({ length: 200 }, (_, i) => group(i + 1, "n")).join("")
    fs.writeFileSync(file, `<groups>${small}${group(999, "x".repeat(40_000_000))}</groups>`)
    // a 32 MB heap (the worker's too) and no record size limit: the 40 M-character name cannot fit
    const r = xml2pg(
      ["ingest", "--schema", schema, "--batch-rows", "50", "--max-record-bytes", "1000000000", file],
      { nodeFlags: ["--max-old-space-size=32"] }
    )
    assert.strictEqual(r.code, 1, r.stderr)
    assert.match(r.stderr, /XML error at byte \d+: parse worker failed: .*JS heap out of memory/)
    const [run] = await query<{ state: string; rows_loaded: string }>(
      `select state, rows_loaded::text from "${schema}".xml2pg_run where file = $1`,
      [file]
    )
    assert.deepStrictEqual(run, { state: "failed", rows_loaded: "200" })
  })

  it("exits 3 when records were rejected, and writes the rejects file", () => {
    const file = path.join(dir, "rejects.xml")
    const xml = `<groups><group id="1" code="a" created_at="2026-01-01T00:00:00Z"><name/></group>` +
      `<group id="x" code="b" created_at="2026-01-01T00:00:00Z"><name/></group></groups>`
    fs.writeFileSync(file, xml)
    const rejects = path.join(dir, "r.ndjson")
    const r = xml2pg(["ingest", "--schema", schema, "--rejects", rejects, file])
    assert.strictEqual(r.code, 3, r.stderr)
    assert.match(r.stderr, /group: bad attribute id\s+1\n/)
    const lines = fs.readFileSync(rejects, "utf8").trim().split("\n").map((l) => JSON.parse(l))
    const run = Number(/run (\d+): loading/.exec(r.stderr)?.[1])
    assert.deepStrictEqual(lines, [{
      run,
      batch: 1,
      file,
      offset: xml.indexOf(`<group id="x"`),
      element: "group",
      id: "x",
      reason: `bad attribute id: "x" not an id in 1..2^63-1`,
      ord: 2
    }])
  })

  it("exits 1 with a clear message when the input cannot be read", () => {
    const r = xml2pg(["ingest", "--schema", schema, path.join(dir, "missing.xml")])
    assert.strictEqual(r.code, 1)
    assert.include(r.stderr, "cannot read")
    assert.include(r.stderr, "missing.xml: ENOENT")
    assert.notInclude(r.stderr, "    at ")
  })

  it("never prints the password, even when the connection fails", () => {
    const secret = "s3cr3t-Pa55"
    const r = xml2pg(["init", "--schema", schema], {
      env: { ...baseEnv(), DATABASE_URL: `postgres://nobody:${secret}@127.0.0.1:1/nowhere` }
    })
    assert.strictEqual(r.code, 1)
    assert.include(r.stderr, "connect")
    assert.notInclude(r.stderr + r.stdout, secret)
  })

  it("settings: flag beats env beats .env beats xml2pg.json", async () => {
    const cwd = tmpDir()
    const file = path.join(cwd, "s.xml")
    writeXml(file, { groups: 10, eventsPerGroup: 1, seed: 1 })
    fs.writeFileSync(path.join(cwd, "xml2pg.json"), JSON.stringify({ "batch-rows": 11, writers: 1, "queue-size": 7 }))
    fs.writeFileSync(path.join(cwd, ".env"), "XML2PG_BATCH_ROWS=22\nXML2PG_WRITERS=3\n")
    const r = xml2pg(["ingest", "--schema", schema, "--writers", "4", file], {
      cwd,
      env: { ...baseEnv(), XML2PG_BATCH_ROWS: "33" }
    })
    assert.strictEqual(r.code, 0, r.stderr)
    const [run] = await query<{ settings: Record<string, unknown> }>(
      `select settings from "${schema}".xml2pg_run where file = $1`,
      [file]
    )
    assert.deepStrictEqual(run!.settings, {
      batchRows: 33,
      batchBytes: 4194304,
      writers: 4,
      queueSize: 7,
      copyFormats: ["binary", "binary"],
      // one parser: the file is not split
      ranges: []
    })
  })

  it("Ctrl-C stops reading, finishes in-flight batches, prints the summary and exits non-zero", async () => {
    const file = path.join(dir, "big.xml")
    writeXml(file, { groups: 60_000, eventsPerGroup: 3, seed: 9 })
    const child = spawn(process.execPath, [bin, "ingest", "--schema", schema, "--batch-rows", "2000", "--writers", "1", file], {
      env: baseEnv(),
      cwd: dir
    })
    let stderr = ""
    child.stderr.on("data", (b) => (stderr += b))
    const runId = await waitFor(async () => {
      const rows = await query<{ run_id: number }>(
        `select r.run_id from "${schema}".xml2pg_run r join "${schema}".xml2pg_batch b using (run_id)
         where r.file = $1 limit 1`,
        [file]
      )
      return rows[0]?.run_id
    })
    child.kill("SIGINT")
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)))
    assert.strictEqual(code, 130, stderr)
    assert.include(stderr, "stopping after in-flight batches")
    assert.match(stderr, /run\s+\d+ \(interrupted\)/)
    const [state] = await query<{ state: string }>(`select state from "${schema}".xml2pg_run where run_id = $1`, [runId])
    assert.strictEqual(state!.state, "interrupted")
    // every committed batch is whole: staged rows per batch equal the ledger's counts
    const mismatched = await query(
      `select b.batch_seq from "${schema}".xml2pg_batch b
       left join (select batch_seq, count(*) n from "${schema}".stg_event where run_id = $1 group by 1) e using (batch_seq)
       where b.run_id = $1 and coalesce(e.n, 0) <> (b.row_counts->>'stg_event')::int`,
      [runId]
    )
    assert.deepStrictEqual(mismatched, [])
    const [{ loaded }] = (await query<{ loaded: number }>(
      `select count(*)::int loaded from "${schema}".stg_event where run_id = $1`,
      [runId]
    )) as [{ loaded: number }]
    assert.isBelow(loaded, 180_000)
  })
})

const waitFor = async <A>(probe: () => Promise<A | undefined>, timeoutMs = 60_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error("timed out waiting")
}
