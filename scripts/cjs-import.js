// src/db/ImportEsm.ts in the CLI's bundle: the bundle's own `import()` fails once src/bin.ts
// has compiled it from a code cache (Node 20), so bin.ts, an ES module, lends its own as the
// bundle's `__xml2pgImport`. Loaded by `require` (under --enable-source-maps) it has none.
/* global __xml2pgImport */
export const importEsm = (specifier) =>
  typeof __xml2pgImport === "function" ? __xml2pgImport(specifier) : import(specifier)
