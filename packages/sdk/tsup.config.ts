import { defineConfig } from 'tsup';

// The published package carries AppRouter's types inlined (resolve), so it never imports
// @mvp/api or any server code. .ci/run checks the output for leftovers.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  platform: 'neutral',
  target: 'es2022',
  dts: {
    // tsup's resolver reads a package's top-level "types" (the built .d.ts of @mvp/api and
    // @mvp/contracts); relative paths must match too, or imports between those files stay
    // unresolved in the output.
    resolve: [/^@mvp\//, /^\.{1,2}\//],
  },
  sourcemap: true,
  clean: true,
  external: ['@trpc/client', '@trpc/server', 'superjson', /^@noble\//],
  // @mvp/crypto is private to this repo: its code ships inside the SDK's bundle, while the
  // @noble/* libraries it builds on stay real dependencies of @mvp/sdk (deduplicated, audited).
  noExternal: ['@mvp/crypto'],
});
