/**
 * Where the database is: a configured PostgreSQL URL, or else the embedded server.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { DbError } from "../Errors.js"
import { startEmbedded } from "./Embedded.js"

const exampleUrl = "postgres://user:password@host:5432/database"

const nonBlank = (name: string): Config.Config<Option.Option<string>> =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => value.trim() !== ""))
  )

const nonBlankRedacted = (name: string): Config.Config<Option.Option<Redacted.Redacted<string>>> =>
  Config.redacted(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => Redacted.value(value).trim() !== ""))
  )

const isPostgresUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hash === ""
  } catch {
    return false
  }
}

const validateUrl = (
  url: Redacted.Redacted<string>
): Either.Either<Redacted.Redacted<string>, ConfigError.ConfigError> =>
  isPostgresUrl(Redacted.value(url))
    ? Either.right(url)
    : Either.left(
      ConfigError.InvalidData(["DATABASE_URL"], `DATABASE_URL is not a valid PostgreSQL URL (expected ${exampleUrl})`)
    )

const parsePort = (raw: string): Either.Either<number, ConfigError.ConfigError> => {
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN
  return port >= 1 && port <= 65535
    ? Either.right(port)
    : Either.left(
      ConfigError.InvalidData(["POSTGRES_PORT"], `POSTGRES_PORT must be an integer between 1 and 65535, got "${raw}"`)
    )
}

// pg decodes the database name with decodeURI, which leaves reserved characters encoded:
// keep those literal (all are legal in a URL path) except the ones that would end the path.
const encodeDatabase = (name: string): string =>
  encodeURIComponent(name).replace(/%(2F|3A|40|26|3D|2B|24|2C|3B)/gi, (escape) => decodeURIComponent(escape))

interface Parts {
  readonly host: Option.Option<string>
  readonly port: Option.Option<string>
  readonly user: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
  readonly database: Option.Option<string>
}

const buildUrl = (parts: Parts, port: number): Redacted.Redacted<string> => {
  const host = Option.getOrElse(parts.host, () => "localhost").trim()
  const user = Option.map(parts.user, encodeURIComponent)
  const password = Option.map(parts.password, (secret) => encodeURIComponent(Redacted.value(secret)))
  const userinfo = Option.isNone(user) && Option.isNone(password)
    ? ""
    : `${Option.getOrElse(user, () => "")}${Option.match(password, { onNone: () => "", onSome: (p) => `:${p}` })}@`
  const isSocket = host.startsWith("/")
  const hostPart = isSocket ? "localhost" : host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  const database = Option.getOrElse(Option.map(parts.database, encodeDatabase), () => "")
  const query = isSocket ? `?host=${encodeURIComponent(host)}` : ""
  return Redacted.make(`postgres://${userinfo}${hostPart}:${port}/${database}${query}`)
}

const fromParts = (parts: Parts): Either.Either<Option.Option<Redacted.Redacted<string>>, ConfigError.ConfigError> => {
  const selected = Option.isSome(parts.host) || Option.isSome(parts.user) || Option.isSome(parts.password) ||
    Option.isSome(parts.database)
  if (!selected) return Either.right(Option.none())
  return Option.match(parts.port, {
    onNone: () => Either.right(5432),
    onSome: parsePort
  }).pipe(
    Either.flatMap((port) => {
      const url = buildUrl(parts, port)
      return isPostgresUrl(Redacted.value(url))
        ? Either.right(Option.some(url))
        : Either.left(
          ConfigError.InvalidData(["POSTGRES_HOST"], "POSTGRES_* settings do not form a valid PostgreSQL URL")
        )
    })
  )
}

/**
 * The PostgreSQL URL to use, if one is configured, read in this order:
 *
 * 1. `DATABASE_URL`;
 * 2. `POSTGRES_HOST` (default `localhost`, a path means a Unix socket directory), `POSTGRES_PORT`
 *    (default 5432), `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, used when any of
 *    HOST, USER, PASSWORD or DB is set (a lone `POSTGRES_PORT`, as Kubernetes injects for a
 *    service named `postgres`, does not count);
 * 3. nothing: `Option.none()`, meaning "use the embedded server".
 *
 * Blank values count as unset. The password only ever lives inside a `Redacted`, and error
 * messages never contain it.
 *
 * @since 0.1.0
 * @category config
 */
export const ConnectionConfig: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.all({
  databaseUrl: nonBlankRedacted("DATABASE_URL"),
  host: nonBlank("POSTGRES_HOST"),
  port: nonBlank("POSTGRES_PORT"),
  user: nonBlank("POSTGRES_USER"),
  password: nonBlankRedacted("POSTGRES_PASSWORD"),
  database: nonBlank("POSTGRES_DB")
}).pipe(
  Config.mapOrFail(({ databaseUrl, ...parts }) =>
    Option.match(databaseUrl, {
      onNone: () => fromParts(parts),
      onSome: (url) => Either.map(validateUrl(url), Option.some)
    })
  )
)

/**
 * A URL for logs: `postgres://user@host:port/database`, never the password.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    const user = parsed.username === "" ? "" : `${decodeURIComponent(parsed.username)}@`
    const host = parsed.searchParams.get("host") ?? (parsed.hostname === "" ? "localhost" : parsed.hostname)
    const port = parsed.port === "" ? "5432" : parsed.port
    return `${parsed.protocol}//${user}${host}:${port}/${decodeURIComponent(parsed.pathname.slice(1))}`
  } catch {
    return "<invalid database URL>"
  }
}

/**
 * The database to connect to: the configured one (see `ConnectionConfig`), or else the
 * embedded server kept under `embeddedDir`, started (or reused) for the life of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveDatabaseUrl = (options: {
  readonly embeddedDir: string
}): Effect.Effect<
  { readonly url: Redacted.Redacted<string>; readonly embedded: boolean },
  ConfigError.ConfigError | DbError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const configured = yield* ConnectionConfig
    if (Option.isSome(configured)) {
      yield* Effect.logDebug(`using database ${describeUrl(configured.value)}`)
      return { url: configured.value, embedded: false }
    }
    const url = yield* startEmbedded({ dir: options.embeddedDir })
    return { url, embedded: true }
  })
