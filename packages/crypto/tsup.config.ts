import { defineConfig } from 'tsup';

// A neutral ESM + CJS build with declarations. The SDK bundles this package (and @noble/*) into
// its own output, so nothing here may import a Node built-in; the bundle test checks that.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  platform: 'neutral',
  target: 'es2022',
  dts: true,
  sourcemap: true,
  clean: true,
});
