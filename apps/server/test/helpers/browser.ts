/**
 * Real Chromium for the browser suite: Debian's /usr/bin/chromium driven by playwright-core,
 * fake camera and microphone, loopback ICE; plus the built apps/web served as static files.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);

export const webDir = fileURLToPath(new URL('../../../web', import.meta.url));

/**
 * `vite build` of apps/web into a fresh folder (the SDK's dist must be built: turbo does). Mode
 * `e2e` keeps the page's test hooks (`?server=`, `window.__mvp`), which production builds drop.
 */
export async function buildWeb(): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), 'mvp-web-'));
  const { build } = await import('vite');
  await build({
    root: webDir,
    mode: 'e2e',
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, sourcemap: false },
  });
  return outDir;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export type StaticSite = { origin: string; close(): Promise<void> };

/** A tiny static server for a built site, on 127.0.0.1 and a free port. */
export async function serveStatic(dir: string): Promise<StaticSite> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type Browser = { context: BrowserContext; close(): Promise<void> };

/** The launch recipe of ../shared/reference/MACHINE-NOTES.md, with a fresh profile. */
export async function launchChromium(origin: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'mvp-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
    ],
  });
  await context.grantPermissions(['microphone', 'camera'], { origin });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
