/**
 * A real call between two Chromium pages running apps/web against live servers: WebRTC media
 * flows (inbound-rtp packets on both sides), and the page shows every outcome: hangup, declined,
 * missed (ring timeout), answered elsewhere. On MySQL + Redis the two people are on two server
 * instances sharing the database and the bus.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { defaultConfig } from '../src/index';
import { freshUsername } from './helpers/accounts';
import { hasChromium } from './helpers/browser';
import { backendLabel } from './helpers/env';
import {
  contact,
  instances,
  registerFriends,
  signIn,
  startWebSuite,
  TEST_MS,
  WAIT_MS,
  type PageGlobal,
  type WebSuite,
} from './helpers/webSuite';

const RING_TIMEOUT_MS = 4_000;
// Under CI a missing Chromium fails the run (.ci/run installs it); elsewhere the suite is skipped.
const run = hasChromium || process.env.CI ? describe : describe.skip;

run(`a call between two browsers on ${instances} instance(s) (${backendLabel})`, () => {
  let suite: WebSuite;

  beforeAll(async () => {
    suite = await startWebSuite({
      calls: { ...defaultConfig().calls, ringTimeoutMs: RING_TIMEOUT_MS },
    });
  }, TEST_MS);

  afterAll(async () => {
    await suite?.close();
  }, 60_000);

  const callOf = (page: Page) =>
    page.evaluate(() => (globalThis as unknown as PageGlobal).__mvp.call);
  const waitForCall = (page: Page, state: string, endReason?: string) =>
    page.waitForFunction(
      ([s, r]) => {
        const call = (globalThis as unknown as PageGlobal).__mvp.call;
        return call?.state === s && (r === undefined || call.endReason === r);
      },
      [state, endReason] as const,
      { timeout: WAIT_MS },
    );
  const shownState = (page: Page) => page.getByTestId('call-state').textContent();
  /** The newest call of the page's call history, as the server records it. */
  const newestCall = async (page: Page) =>
    (await page.evaluate(() => (globalThis as unknown as PageGlobal).__mvp.history())).calls[0];

  async function placeCall(from: Page, to: string, media: 'audio' | 'video') {
    await contact(from, to)
      .getByTestId(media === 'video' ? 'call-video' : 'call-audio')
      .click();
    // Shown from `dialing` on; its id is known once the server has placed it.
    const placed = await from.waitForFunction(
      () => {
        const call = (globalThis as unknown as PageGlobal).__mvp.call;
        return call?.state === 'dialing' && call.id !== '' && call.id;
      },
      undefined,
      { timeout: WAIT_MS },
    );
    return (await placed.jsonValue()) as string;
  }

  const names = { alice: freshUsername('alice'), bob: freshUsername('bob') };
  let alice: Page;
  let bob: Page;

  it(
    'register, become contacts, exchange a message',
    async () => {
      ({ alice, bob } = await registerFriends(suite, names));

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
            const packets = await (globalThis as unknown as PageGlobal).__mvp.inboundPackets();
            return packets.audio > 0 && packets.video > 0;
          },
          undefined,
          { timeout: WAIT_MS, polling: 250 },
        );
      }
      expect(
        await alice.evaluate(() => (globalThis as unknown as PageGlobal).__mvp.callStates),
      ).toEqual(['dialing', 'connecting', 'connected']);
      expect(
        await bob.evaluate(() => (globalThis as unknown as PageGlobal).__mvp.callStates),
      ).toEqual(['ringing', 'connecting', 'connected']);

      await alice.getByTestId('hangup').click();
      await Promise.all([
        waitForCall(alice, 'ended', 'hangup'),
        waitForCall(bob, 'ended', 'hangup'),
      ]);
      expect(await shownState(bob)).toBe('ended (hangup)');

      const [mine, theirs] = await Promise.all([newestCall(alice), newestCall(bob)]);
      expect(mine).toMatchObject({
        id: callId,
        direction: 'outgoing',
        media: 'video',
        state: 'ended',
        endReason: 'user_hangup',
      });
      expect(theirs).toMatchObject({ id: callId, direction: 'incoming', state: 'ended' });
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
      expect(await newestCall(alice)).toMatchObject({ id: callId, state: 'rejected' });
    },
    TEST_MS,
  );

  it(
    'glare: both call at once; each page shows the one call that goes on, connected, and hangs it up',
    async () => {
      await Promise.all([
        contact(alice, names.bob).getByTestId('call-audio').click(),
        contact(bob, names.alice).getByTestId('call-audio').click(),
      ]);
      // The losing call ends as `glare` in one page while the other call is answered there: the
      // page must show the call that goes on (it showed the ended one, the microphone open).
      await Promise.all([waitForCall(alice, 'connected'), waitForCall(bob, 'connected')]);
      expect((await callOf(alice))!.id).toBe((await callOf(bob))!.id);
      expect([await shownState(alice), await shownState(bob)]).toEqual(['connected', 'connected']);
      await bob.getByTestId('hangup').click();
      await Promise.all([
        waitForCall(alice, 'ended', 'hangup'),
        waitForCall(bob, 'ended', 'hangup'),
      ]);
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
      expect(await newestCall(bob)).toMatchObject({
        id: callId,
        state: 'missed',
        endReason: 'invite_timeout',
      });
    },
    TEST_MS,
  );

  it(
    'closing the tab mid-call hangs up: the other page is told at once, not when its connection gives up; a closing tab signs out',
    async () => {
      const sessionsOfAlice = () =>
        alice.evaluate(
          async () =>
            (await (globalThis as unknown as PageGlobal).__mvp.client.api.sessions.list.query())
              .sessions.length,
        );
      const waitForSessions = (n: number) =>
        alice.waitForFunction(
          async (count) =>
            (await (globalThis as unknown as PageGlobal).__mvp.client.api.sessions.list.query())
              .sessions.length === count,
          n,
          { timeout: WAIT_MS, polling: 250 },
        );
      const aliceTab = await suite.openPage(suite.a);
      await signIn(aliceTab, names.alice, 'login');
      expect(await sessionsOfAlice()).toBe(2);
      // The SDK's own hangup, alone: this tab stays signed in (signing out ends its calls too).
      await aliceTab.evaluate(() =>
        (globalThis as unknown as PageGlobal).__mvp.keepSessionOnClose(),
      );
      const callId = await placeCall(aliceTab, names.bob, 'audio');
      await waitForCall(bob, 'ringing');
      await bob.getByTestId('accept').click();
      await Promise.all([waitForCall(aliceTab, 'connected'), waitForCall(bob, 'connected')]);
      await aliceTab.close({ runBeforeUnload: true });
      await waitForCall(bob, 'ended', 'hangup');
      expect(await newestCall(bob)).toMatchObject({
        id: callId,
        state: 'ended',
        endReason: 'user_hangup',
      });
      expect(await sessionsOfAlice()).toBe(2);

      // A tab as it is: its keys lived in memory, and left signed in it would stay a device that
      // rings in every call.
      const anotherTab = await suite.openPage(suite.a);
      await signIn(anotherTab, names.alice, 'login');
      await waitForSessions(3);
      await anotherTab.close({ runBeforeUnload: true });
      await waitForSessions(2);
    },
    TEST_MS,
  );

  it(
    'two pages of the callee ring; one answers, the other is told answered elsewhere',
    async () => {
      const bobLaptop = await suite.openPage(suite.b);
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
      expect(suite.pageErrors).toEqual([]);
    },
    TEST_MS,
  );
});
