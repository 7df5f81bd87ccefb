// src/db/ImportEsm.ts in the CLI's bundle: compiled by src/bin.ts as a `vm.Script`, the bundle
// has no `import()` of its own (Node 20), so bin.ts, an ES module, lends its own as the bundle's
// `__xml2pgImport`. Loaded by `require` (under --enable-source-maps) it has none, and needs none.
/* global __xml2pgImport */
export const importEsm = (specifier) =>
  typeof __xml2pgImport === "function" ? __xml2pgImport(specifier) : import(specifier)
