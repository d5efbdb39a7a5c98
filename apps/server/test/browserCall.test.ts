/**
 * A real call between two Chromium pages running apps/web against live servers: WebRTC media
 * flows (inbound-rtp packets on both sides), and the page shows every outcome: hangup, declined,
 * missed (ring timeout), answered elsewhere. On MySQL + Redis the two people are on two server
 * instances sharing the database and the bus.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { defaultConfig } from '../src/index';
import { freshUsername, PASSWORD } from './helpers/accounts';
import {
  buildWeb,
  hasChromium,
  launchChromium,
  serveStatic,
  type Browser,
  type StaticSite,
} from './helpers/browser';
import { backendLabel, testRedisUrl } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

type PageCall = { id: string; state: string; endReason: string | null; direction: string };
type HistoryEntry = {
  id: string;
  state: string;
  direction: string;
  media: string;
  endReason: string | null;
  durationSeconds: number;
};
type PageApi = {
  me: { id: string; username: string | null } | null;
  call: PageCall | null;
  callStates: string[];
  messages: { text: string; mine: boolean }[];
  inboundPackets(): Promise<{ audio: number; video: number }>;
  history(): Promise<{ calls: HistoryEntry[] }>;
};
type G = { __mvp: PageApi };

const RING_TIMEOUT_MS = 4_000;
// Generous: in CI this file shares two cores with the rest of the suite.
const WAIT_MS = 45_000;
const TEST_MS = 180_000;
const instances = testRedisUrl ? 2 : 1;
// Under CI a missing Chromium fails the run (.ci/run installs it); elsewhere the suite is skipped.
const run = hasChromium || process.env.CI ? describe : describe.skip;

run(`a call between two browsers on ${instances} instance(s) (${backendLabel})`, () => {
  let a: TestServer;
  let b: TestServer;
  let site: StaticSite;
  let browser: Browser;
  let webDir: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    webDir = await buildWeb();
    site = await serveStatic(webDir);
    const shared = {
      dataDir: mkdtempSync(join(tmpdir(), 'mvp-browser-')),
      redisPrefix: `test:${randomUUID()}:`,
      allowedOrigins: [site.origin],
      calls: { ...defaultConfig().calls, ringTimeoutMs: RING_TIMEOUT_MS },
    };
    a = await startServer(shared);
    b = instances === 2 ? await startServer(shared) : a;
    browser = await launchChromium(site.origin);
  }, TEST_MS);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([...new Set([a, b])].filter(Boolean).map((s) => s.stop()));
    await site?.close();
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  }, 60_000);

  async function openPage(server: TestServer): Promise<Page> {
    const page = await browser.context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${site.origin}/?server=${encodeURIComponent(server.server.url)}`);
    return page;
  }

  async function signIn(page: Page, username: string, action: 'register' | 'login') {
    await page.getByTestId('username').fill(username);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId(action).click();
    await page
      .getByTestId('status')
      .filter({ hasText: /^online$/ })
      .waitFor({ timeout: WAIT_MS });
  }

  const callOf = (page: Page) => page.evaluate(() => (globalThis as unknown as G).__mvp.call);
  const waitForCall = (page: Page, state: string, endReason?: string) =>
    page.waitForFunction(
      ([s, r]) => {
        const call = (globalThis as unknown as G).__mvp.call;
        return call?.state === s && (r === undefined || call.endReason === r);
      },
      [state, endReason] as const,
      { timeout: WAIT_MS },
    );
  const shownState = (page: Page) => page.getByTestId('call-state').textContent();
  const contact = (page: Page, username: string) =>
    page.getByTestId('contacts').locator('li', { hasText: `@${username}` });

  async function befriend(from: Page, to: Page, username: string, fromName: string) {
    await from.getByTestId('search').fill(username);
    await from.getByTestId('search-go').click();
    await from.getByTestId('results').getByTestId('add').click();
    await to.getByTestId('requests').getByTestId('accept-request').click({ timeout: WAIT_MS });
    await contact(from, username).waitFor({ timeout: WAIT_MS });
    await contact(to, fromName).waitFor({ timeout: WAIT_MS });
  }

  async function placeCall(from: Page, to: string, media: 'audio' | 'video') {
    await contact(from, to)
      .getByTestId(media === 'video' ? 'call-video' : 'call-audio')
      .click();
    await waitForCall(from, 'dialing');
    return (await callOf(from))!.id;
  }

  const names = { alice: freshUsername('alice'), bob: freshUsername('bob') };
  let alice: Page;
  let bob: Page;

  it(
    'register, become contacts, exchange a message',
    async () => {
      alice = await openPage(a);
      bob = await openPage(b);
      await signIn(alice, names.alice, 'register');
      await signIn(bob, names.bob, 'register');
      await befriend(alice, bob, names.bob, names.alice);

      await contact(alice, names.bob).getByTestId('chat').click();
      await alice.getByTestId('text').fill('hello from a browser');
      await alice.getByTestId('send').click();
      await bob
        .getByTestId('messages')
        .locator('li', { hasText: 'hello from a browser' })
        .waitFor({ timeout: WAIT_MS });
      await bob.getByTestId('text').fill('and back');
      await bob.getByTestId('send').click();
      await alice
        .getByTestId('messages')
        .locator('li', { hasText: 'and back' })
        .waitFor({ timeout: WAIT_MS });
      // Each page has the chat open, so each read the other's message: the sender sees it.
      const tick = (page: Page, text: string) =>
        page.getByTestId('messages').locator('li', { hasText: text }).getByTestId('tick');
      await tick(alice, 'hello from a browser')
        .filter({ hasText: '✓✓ read' })
        .waitFor({ timeout: WAIT_MS });
      await tick(bob, 'and back').filter({ hasText: '✓✓ read' }).waitFor({ timeout: WAIT_MS });
    },
    TEST_MS,
  );

  it(
    'a video call connects, media flows both ways, hangup ends it for both',
    async () => {
      const callId = await placeCall(alice, names.bob, 'video');
      await waitForCall(bob, 'ringing');
      expect(await shownState(bob)).toBe('ringing');
      await bob.getByTestId('accept').click();
      await Promise.all([waitForCall(alice, 'connected'), waitForCall(bob, 'connected')]);
      expect(await shownState(alice)).toBe('connected');

      for (const page of [alice, bob]) {
        await page.waitForFunction(
          async () => {
            const packets = await (globalThis as unknown as G).__mvp.inboundPackets();
            return packets.audio > 0 && packets.video > 0;
          },
          undefined,
          { timeout: WAIT_MS, polling: 250 },
        );
      }
      expect(await alice.evaluate(() => (globalThis as unknown as G).__mvp.callStates)).toEqual([
        'dialing',
        'connecting',
        'connected',
      ]);
      expect(await bob.evaluate(() => (globalThis as unknown as G).__mvp.callStates)).toEqual([
        'ringing',
        'connecting',
        'connected',
      ]);

      await alice.getByTestId('hangup').click();
      await Promise.all([
        waitForCall(alice, 'ended', 'hangup'),
        waitForCall(bob, 'ended', 'hangup'),
      ]);
      expect(await shownState(bob)).toBe('ended (hangup)');

      const [mine, theirs] = await Promise.all([
        alice.evaluate(() => (globalThis as unknown as G).__mvp.history()),
        bob.evaluate(() => (globalThis as unknown as G).__mvp.history()),
      ]);
      expect(mine.calls[0]).toMatchObject({
        id: callId,
        direction: 'outgoing',
        media: 'video',
        state: 'ended',
        endReason: 'user_hangup',
      });
      expect(theirs.calls[0]).toMatchObject({ id: callId, direction: 'incoming', state: 'ended' });
      await bob.getByTestId('history').locator(`li[data-call-id="${callId}"]`).waitFor();
    },
    TEST_MS,
  );

  it(
    'declined: both pages show it, and the history says rejected',
    async () => {
      const callId = await placeCall(alice, names.bob, 'audio');
      await waitForCall(bob, 'ringing');
      await bob.getByTestId('decline').click();
      await Promise.all([
        waitForCall(alice, 'ended', 'declined'),
        waitForCall(bob, 'ended', 'declined'),
      ]);
      expect(await shownState(alice)).toBe('ended (declined)');
      const history = await alice.evaluate(() => (globalThis as unknown as G).__mvp.history());
      expect(history.calls[0]).toMatchObject({ id: callId, state: 'rejected' });
    },
    TEST_MS,
  );

  it(
    'nobody answers: the ring times out as missed on both pages',
    async () => {
      const callId = await placeCall(alice, names.bob, 'audio');
      await waitForCall(bob, 'ringing');
      await Promise.all([
        waitForCall(alice, 'ended', 'missed'),
        waitForCall(bob, 'ended', 'missed'),
      ]);
      const history = await bob.evaluate(() => (globalThis as unknown as G).__mvp.history());
      expect(history.calls[0]).toMatchObject({
        id: callId,
        state: 'missed',
        endReason: 'invite_timeout',
      });
    },
    TEST_MS,
  );

  it(
    'two pages of the callee ring; one answers, the other is told answered elsewhere',
    async () => {
      const bobLaptop = await openPage(b);
      await signIn(bobLaptop, names.bob, 'login');
      const callId = await placeCall(alice, names.bob, 'audio');
      await Promise.all([waitForCall(bob, 'ringing'), waitForCall(bobLaptop, 'ringing')]);
      expect((await callOf(bobLaptop))!.id).toBe(callId);

      await bob.getByTestId('accept').click();
      await waitForCall(bobLaptop, 'ended', 'answered_elsewhere');
      expect(await shownState(bobLaptop)).toBe('ended (answered_elsewhere)');
      await Promise.all([waitForCall(alice, 'connected'), waitForCall(bob, 'connected')]);

      await bob.getByTestId('hangup').click();
      await Promise.all([
        waitForCall(alice, 'ended', 'hangup'),
        waitForCall(bob, 'ended', 'hangup'),
      ]);
      await bobLaptop.close();
      expect(pageErrors).toEqual([]);
    },
    TEST_MS,
  );
});
