// Injected into the CommonJS bundle of the CLI (scripts/bundle.mjs), where `import.meta.url`
// is defined as this: the file URL of the bundle, as the ES module sources expect.
export const __xml2pgUrl = require("node:url").pathToFileURL(__filename).href
