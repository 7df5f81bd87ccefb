/**
 * Connection options shared by every command that talks to the database, and the layer
 * they build: a configured database, or else the embedded server.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { SettingConfigs } from "../config/Settings.js"
import { describeUrl, resolveDatabaseUrl } from "../db/Connection.js"
import { DatabaseLive } from "../db/PgPool.js"
import { Xml2Pg } from "../Xml2Pg.js"

const databaseUrl = Options.redacted("database-url").pipe(
  Options.withDescription("PostgreSQL URL; default: DATABASE_URL or POSTGRES_HOST/PORT/USER/PASSWORD/DB, else embedded"),
  Options.optional
)
const embeddedDir = Options.text("embedded-dir").pipe(
  Options.withDescription("where the embedded PostgreSQL keeps its data when no database is configured"),
  Options.withFallbackConfig(Config.string("XML2PG_EMBEDDED_DIR").pipe(Config.withDefault(".xml2pg")))
)
const schema = Options.text("schema").pipe(
  Options.withDescription("schema holding the tables (env XML2PG_SCHEMA)"),
  Options.withFallbackConfig(SettingConfigs.schema)
)
export const connection = { databaseUrl, embeddedDir, schema }

export interface ConnectionOptions {
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly embeddedDir: string
}

export const databaseLayer = (o: ConnectionOptions, maxConnections: number) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const target = Option.isSome(o.databaseUrl)
      ? { url: o.databaseUrl.value, embedded: false }
      : yield* resolveDatabaseUrl({ embeddedDir: o.embeddedDir })
    yield* Effect.logInfo(`database: ${describeUrl(target.url)}${target.embedded ? " (embedded)" : ""}`)
    return Xml2Pg.Default.pipe(Layer.provideMerge(DatabaseLive({ url: target.url, maxConnections })))
  }))

export const withDatabase = <Name extends string, R, E, A extends ConnectionOptions>(
  self: Command.Command<Name, R, E, A>,
  connections: (a: A) => number = () => 2
) => Command.provide(self, (a: A) => databaseLayer(a, connections(a)))
