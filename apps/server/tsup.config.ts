import { defineConfig } from 'tsup';

// The server ships as one bundle: workspace packages (plain TypeScript) are compiled in,
// npm dependencies (native better-sqlite3 among them) stay external.
export default defineConfig({
  entry: { main: 'src/main.ts', index: 'src/index.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  noExternal: [/^@mvp\//],
  sourcemap: true,
  clean: true,
  dts: false,
});
