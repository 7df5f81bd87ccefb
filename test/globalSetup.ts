/**
 * Tests talk to a real PostgreSQL: the configured one (DATABASE_URL or POSTGRES_*), else
 * an embedded server started once for the whole run. Each test file then works in its own
 * throw-away schema (see utils.ts). The CLI processes tests start keep their V8 code cache
 * in a folder of the run's own, not in the user's ~/.cache.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { ConnectionConfig } from "../src/db/Connection.js"
import { startEmbedded } from "../src/db/Embedded.js"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
    embedded: boolean
    cacheHome: string
  }
}

let scope: Scope.CloseableScope | undefined
let cacheHome: string | undefined

export async function setup(project: TestProject) {
  cacheHome = fs.mkdtempSync(path.join(os.tmpdir(), "xml2pg-test-cache-"))
  project.provide("cacheHome", cacheHome)
  const configured = await Effect.runPromise(
    ConnectionConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromEnv()))
  )
  if (Option.isSome(configured)) {
    project.provide("databaseUrl", Redacted.value(configured.value))
    project.provide("embedded", false)
    return
  }
  scope = Effect.runSync(Scope.make())
  const url = await Effect.runPromise(
    startEmbedded({ dir: path.join(os.tmpdir(), "xml2pg-test-embedded") }).pipe(Scope.extend(scope))
  )
  project.provide("databaseUrl", Redacted.value(url))
  project.provide("embedded", true)
}

export async function teardown() {
  if (cacheHome !== undefined) fs.rmSync(cacheHome, { recursive: true, force: true })
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
}
