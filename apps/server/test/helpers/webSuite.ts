/**
 * What the browser suites (test/browser*.test.ts) share: apps/web built and served, live
 * servers (two instances sharing the database and the bus on MySQL + Redis, one otherwise),
 * Chromium, and the page steps every scenario starts with (sign in, become contacts).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { MvpClient } from '@mvp/sdk';
import type { ServerConfig } from '../../src/index';
import { PASSWORD } from './accounts';
import { buildWeb, launchChromium, serveStatic, type Browser, type StaticSite } from './browser';
import { testRedisUrl } from './env';
import { startServer, type TestServer } from './startServer';

// Generous: in CI a browser suite shares two cores with the rest of the suite.
/** A call as `window.__mvp.call` shows it (apps/web/src/testHooks.ts). */
export type PageCall = { id: string; state: string; endReason: string | null; direction: string };
type HistoryEntry = {
  id: string;
  state: string;
  direction: string;
  media: string;
  endReason: string | null;
  durationSeconds: number;
};
/**
 * `window.__mvp` of a test build of apps/web (apps/web/src/testHooks.ts): the page's client and
 * what it shows. In `page.evaluate`: `(globalThis as unknown as PageGlobal).__mvp`.
 */
export type PageGlobal = {
  __mvp: {
    client: MvpClient;
    me: { id: string; username: string | null } | null;
    call: PageCall | null;
    callStates: string[];
    messages: { text: string; mine: boolean }[];
    inboundPackets(): Promise<{ audio: number; video: number }>;
    history(): Promise<{ calls: HistoryEntry[] }>;
    keepSessionOnClose(): void;
  };
};

export const WAIT_MS = 45_000;
export const TEST_MS = 180_000;
export const instances = testRedisUrl ? 2 : 1;

export type WebSuite = {
  /** The first person's server; `b` is another instance on MySQL + Redis, the same otherwise. */
  a: TestServer;
  b: TestServer;
  /** A new tab (a new device once signed in: the page keeps its keys in memory). */
  openPage(server: TestServer): Promise<Page>;
  /** Uncaught errors of every page opened, for a last `expect(...).toEqual([])`. */
  pageErrors: string[];
  close(): Promise<void>;
};

export async function startWebSuite(config: Partial<ServerConfig> = {}): Promise<WebSuite> {
  // Undone in reverse order by close(), or here when a later step fails.
  const undo: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const step of undo.reverse()) await step();
    undo.length = 0;
  };
  try {
    const webDir = await buildWeb();
    undo.push(() => rmSync(webDir, { recursive: true, force: true }));
    const site: StaticSite = await serveStatic(webDir);
    undo.push(() => site.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'mvp-browser-'));
    undo.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const shared = {
      dataDir,
      redisPrefix: `test:${randomUUID()}:`,
      allowedOrigins: [site.origin],
      ...config,
    };
    const servers: TestServer[] = [];
    undo.push(async () => void (await Promise.all(servers.map((s) => s.stop()))));
    const a = await startServer(shared);
    servers.push(a);
    const b = instances === 2 ? await startServer(shared) : a;
    if (b !== a) servers.push(b);
    const browser: Browser = await launchChromium(site.origin);
    undo.push(() => browser.close());
    const pageErrors: string[] = [];
    return {
      a,
      b,
      pageErrors,
      async openPage(server) {
        const page = await browser.context.newPage();
        page.on('pageerror', (error) => pageErrors.push(error.message));
        await page.goto(`${site.origin}/?server=${encodeURIComponent(server.server.url)}`);
        return page;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export async function signIn(page: Page, username: string, action: 'register' | 'login') {
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(PASSWORD);
  await page.getByTestId(action).click();
  await page
    .getByTestId('status')
    .filter({ hasText: /^online$/ })
    .waitFor({ timeout: WAIT_MS });
}

/** The contact's row in the page's contact list. */
export const contact = (page: Page, username: string) =>
  page.getByTestId('contacts').locator('li', { hasText: `@${username}` });

/** `from` finds `username` and asks; `to` (signed in as `fromName`'s contact-to-be) accepts. */
export async function befriend(from: Page, to: Page, username: string, fromName: string) {
  await from.getByTestId('search').fill(username);
  await from.getByTestId('search-go').click();
  await from.getByTestId('results').getByTestId('add').click();
  await to.getByTestId('requests').getByTestId('accept-request').click({ timeout: WAIT_MS });
  await contact(from, username).waitFor({ timeout: WAIT_MS });
  await contact(to, fromName).waitFor({ timeout: WAIT_MS });
}

/** Types and sends a message in the conversation open on the page. */
export async function send(page: Page, text: string) {
  await page.getByTestId('text').fill(text);
  await page.getByTestId('send').click();
}

/** Waits until the open conversation on the page shows a message with this text. */
export const waitForMessage = (page: Page, text: string) =>
  page.getByTestId('messages').locator('li', { hasText: text }).waitFor({ timeout: WAIT_MS });

/** Alice (instance A) and Bob (instance B) register, each on a page of their own, and become contacts. */
export async function registerFriends(suite: WebSuite, names: { alice: string; bob: string }) {
  const alice = await suite.openPage(suite.a);
  const bob = await suite.openPage(suite.b);
  await signIn(alice, names.alice, 'register');
  await signIn(bob, names.bob, 'register');
  await befriend(alice, bob, names.bob, names.alice);
  return { alice, bob };
}
