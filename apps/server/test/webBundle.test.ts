/**
 * The web page's test hooks stay out of production. `vite build`, as `npm run build` and the
 * Dockerfile run it, must not read `?server=` (a link could point a victim's page, and the
 * password typed into it, at an attacker's server) nor expose `window.__mvp`; the browser
 * suite's build (mode e2e) has both. No browser needed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWeb, webDir } from './helpers/browser';

const BUILD_MS = 120_000;
const viteBin = join(
  dirname(createRequire(join(webDir, 'package.json')).resolve('vite/package.json')),
  'bin/vite.js',
);
const dirs: string[] = [];

/** The bundle's JavaScript (not its source maps, which quote the source as written). */
function scripts(dir: string): string {
  const assets = join(dir, 'assets');
  return readdirSync(assets)
    .filter((file) => file.endsWith('.js'))
    .map((file) => readFileSync(join(assets, file), 'utf8'))
    .join('\n');
}

/** What each hook leaves in minified code. */
const hooks = {
  global: /__mvp/,
  queryString: /location\.search/,
  serverParameter: /\.get\(\s*[`'"]server[`'"]\s*\)/,
};
/** The hooks found in a bundle (named, so a failure does not print the whole bundle). */
const hooksIn = (code: string) =>
  Object.entries(hooks)
    .filter(([, pattern]) => pattern.test(code))
    .map(([name]) => name);

describe('web bundle', () => {
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'a production build has neither ?server= nor window.__mvp',
    async () => {
      const outDir = mkdtempSync(join(tmpdir(), 'mvp-web-prod-'));
      dirs.push(outDir);
      // As on the command line: vitest's NODE_ENV=test would otherwise reach Vite.
      const { NODE_ENV: _, ...env } = process.env;
      await promisify(execFile)(
        process.execPath,
        [viteBin, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'],
        { cwd: webDir, env },
      );
      const code = scripts(outDir);
      expect(code).toContain('server-url'); // the page's own code is there
      expect(hooksIn(code)).toEqual([]);
    },
    BUILD_MS,
  );

  it(
    "the browser suite's build keeps both",
    async () => {
      const outDir = await buildWeb();
      dirs.push(outDir);
      expect(hooksIn(scripts(outDir))).toEqual(Object.keys(hooks));
    },
    BUILD_MS,
  );
});
