import { assert, describe, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import Pg from "pg"
import { ConnectionConfig, describeUrl, resolveDatabaseUrl } from "../src/db/Connection.js"

const withEnv = (entries: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries))))

const read = (entries: Record<string, string>) => ConnectionConfig.pipe(withEnv(entries))

const secret = "p@ss:/%w?#rd&x=1 ü"

describe("ConnectionConfig", () => {
  it.effect("DATABASE_URL alone", () =>
    Effect.gen(function*() {
      const url = yield* read({ DATABASE_URL: "postgres://u:pw@db.example:6543/app" })
      assert.isTrue(Option.isSome(url))
      assert.strictEqual(Redacted.value(Option.getOrThrow(url)), "postgres://u:pw@db.example:6543/app")
    }))

  it.effect("DATABASE_URL wins over POSTGRES_*, whose values are then not checked", () =>
    Effect.gen(function*() {
      const url = yield* read({
        DATABASE_URL: "postgresql://a@h/d",
        POSTGRES_HOST: "other",
        POSTGRES_PORT: "tcp://10.0.0.1:5432"
      })
      assert.strictEqual(Redacted.value(Option.getOrThrow(url)), "postgresql://a@h/d")
    }))

  it.effect("POSTGRES_* with special characters round-trip through the URL", () =>
    Effect.gen(function*() {
      const url = yield* read({
        POSTGRES_HOST: "db.example",
        POSTGRES_PORT: "6543",
        POSTGRES_USER: "we@ird:user",
        POSTGRES_PASSWORD: secret,
        POSTGRES_DB: "my db/x@y:z"
      })
      const parsed = new URL(Redacted.value(Option.getOrThrow(url)))
      assert.strictEqual(parsed.protocol, "postgres:")
      assert.strictEqual(parsed.hostname, "db.example")
      assert.strictEqual(parsed.port, "6543")
      assert.strictEqual(decodeURIComponent(parsed.username), "we@ird:user")
      assert.strictEqual(decodeURIComponent(parsed.password), secret)
      assert.strictEqual(decodeURIComponent(parsed.pathname.slice(1)), "my db/x@y:z")
      // pg decodes the database name with decodeURI
      assert.strictEqual(decodeURI(parsed.pathname.slice(1)), "my db/x@y:z")
    }))

  it.effect("defaults: localhost:5432, only the database set", () =>
    Effect.gen(function*() {
      const url = yield* read({ POSTGRES_DB: "test" })
      assert.strictEqual(Redacted.value(Option.getOrThrow(url)), "postgres://localhost:5432/test")
    }))

  it.effect("a socket directory as host goes in the query", () =>
    Effect.gen(function*() {
      const url = yield* read({ POSTGRES_HOST: "/var/run/postgresql", POSTGRES_USER: "root", POSTGRES_DB: "test" })
      const parsed = new URL(Redacted.value(Option.getOrThrow(url)))
      assert.strictEqual(parsed.searchParams.get("host"), "/var/run/postgresql")
      assert.strictEqual(describeUrl(Option.getOrThrow(url)), "postgres://root@/var/run/postgresql:5432/test")
    }))

  it.effect("the built URL connects (local server, trust auth ignores the password)", () =>
    Effect.gen(function*() {
      const url = yield* read({
        POSTGRES_HOST: "127.0.0.1",
        POSTGRES_USER: "root",
        POSTGRES_PASSWORD: secret,
        POSTGRES_DB: "test"
      })
      const rows = yield* Effect.acquireUseRelease(
        Effect.promise(async () => {
          const client = new Pg.Client({ connectionString: Redacted.value(Option.getOrThrow(url)) })
          await client.connect()
          return client
        }),
        (client) =>
          Effect.promise(() =>
            client.query<{ db: string; usr: string }>("select current_database() db, current_user usr")
          ),
        (client) => Effect.promise(() => client.end())
      )
      assert.deepStrictEqual(rows.rows, [{ db: "test", usr: "root" }])
    }))

  it.effect("nothing set, or only blanks, or only POSTGRES_PORT: none (embedded)", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone(yield* read({})))
      assert.isTrue(Option.isNone(yield* read({ DATABASE_URL: "  ", POSTGRES_HOST: "" })))
      assert.isTrue(Option.isNone(yield* read({ POSTGRES_PORT: "tcp://10.0.0.1:5432" })))
    }))

  it.effect("an invalid port fails without showing the password", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(read({ POSTGRES_HOST: "h", POSTGRES_PORT: "54x", POSTGRES_PASSWORD: secret }))
      assert.isTrue(ConfigError.isConfigError(error))
      const text = `${String(error)} ${error.message} ${JSON.stringify(error)}`
      assert.include(text, "POSTGRES_PORT")
      assert.include(text, "54x")
      assert.notInclude(text, secret)
      assert.notInclude(text, "p@ss")
      const outOfRange = yield* Effect.flip(read({ POSTGRES_HOST: "h", POSTGRES_PORT: "70000" }))
      assert.include(String(outOfRange), "between 1 and 65535")
    }))

  it.effect("an unparsable DATABASE_URL fails without showing it", () =>
    Effect.gen(function*() {
      for (const bad of ["postgres://u:sekrit@host:notaport/db", "not a url sekrit", "mysql://u:sekrit@h/d"]) {
        const error = yield* Effect.flip(read({ DATABASE_URL: bad }))
        const text = `${String(error)} ${error.message} ${JSON.stringify(error)}`
        assert.include(text, "DATABASE_URL is not a valid PostgreSQL URL")
        assert.notInclude(text, "sekrit")
      }
    }))
})

describe("describeUrl", () => {
  it("drops the password", () => {
    const url = Redacted.make(`postgres://we%40ird:${encodeURIComponent(secret)}@db.example:6543/app`)
    assert.strictEqual(describeUrl(url), "postgres://we@ird@db.example:6543/app")
    assert.strictEqual(
      describeUrl(Redacted.make("postgresql://root@localhost/test")),
      "postgresql://root@localhost:5432/test"
    )
    assert.strictEqual(describeUrl(Redacted.make("garbage sekrit")), "<invalid database URL>")
    assert.notInclude(String(url), "p@ss")
  })
})

describe("resolveDatabaseUrl", () => {
  it.scoped("uses the configured URL, starting nothing", () =>
    Effect.gen(function*() {
      const resolved = yield* resolveDatabaseUrl({ embeddedDir: "/nonexistent/should-not-be-created" }).pipe(
        withEnv({ DATABASE_URL: "postgres://root@127.0.0.1:5432/test" })
      )
      assert.isFalse(resolved.embedded)
      assert.strictEqual(Redacted.value(resolved.url), "postgres://root@127.0.0.1:5432/test")
    }))
})
