/**
 * apps/web's session and names, in Chromium against live servers: a session revoked from another
 * device puts the page back at the sign-in form with a notice (and it signs in again), the
 * stream's failures show in the status line instead of "online", and a display name never reads
 * like someone's @username. On MySQL + Redis the two people are on two server instances.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page, WebSocketRoute } from 'playwright-core';
import {
  DEVICE,
  freshPhone,
  freshUsername,
  lastOtp,
  PASSWORD,
  startPhoneRegistration,
} from './helpers/accounts';
import { hasChromium } from './helpers/browser';
import { backendLabel } from './helpers/env';
import {
  contact,
  instances,
  registerFriends,
  send,
  signIn,
  startWebSuite,
  TEST_MS,
  WAIT_MS,
  waitForMessage,
  type PageGlobal,
  type WebSuite,
} from './helpers/webSuite';

// Under CI a missing Chromium fails the run (.ci/run installs it); elsewhere the suite is skipped.
const run = hasChromium || process.env.CI ? describe : describe.skip;

run(`sessions and names in the browser on ${instances} instance(s) (${backendLabel})`, () => {
  let suite: WebSuite;

  beforeAll(async () => {
    suite = await startWebSuite();
  }, TEST_MS);

  afterAll(async () => {
    await suite?.close();
  }, 60_000);

  const names = { alice: freshUsername('alice'), bob: freshUsername('bob') };
  let alice: Page;
  let bob: Page;
  const status = (page: Page) => page.getByTestId('status');

  it(
    'signed out from another device: back at the sign-in form with a notice, and in again',
    async () => {
      ({ alice, bob } = await registerFriends(suite, names));
      expect(await alice.getByTestId('auth-notice').isHidden()).toBe(true);

      // Alice, on another device, signs every other device out: this page's session ends.
      const phone = suite.b.newClient();
      const answer = await phone.auth.login({
        identifier: names.alice,
        password: PASSWORD,
        device: { ...DEVICE, name: 'Her phone' },
      });
      expect(answer.status).toBe('ok');
      expect(await phone.api.sessions.revokeOthers.mutate()).toEqual({ revoked: 1 });

      await alice.locator('#auth').waitFor({ state: 'visible', timeout: WAIT_MS });
      await alice.getByTestId('auth-notice').waitFor({ state: 'visible', timeout: WAIT_MS });
      expect(await alice.getByTestId('auth-notice').textContent()).toContain(
        'signed out from another device',
      );
      expect(await alice.locator('#home').isHidden()).toBe(true);
      expect(await alice.getByTestId('who').textContent()).toBe('');
      expect(await alice.getByTestId('contacts').locator('li').count()).toBe(0);

      // Signing in again gives a working page: a new device, messages both ways.
      await signIn(alice, names.alice, 'login');
      expect(await alice.getByTestId('auth-notice').isHidden()).toBe(true);
      await contact(alice, names.bob).getByTestId('chat').click();
      await send(alice, 'back again');
      await waitForMessage(bob, 'back again');
      await send(bob, 'welcome back');
      await waitForMessage(alice, 'welcome back');
      await phone.close();
    },
    TEST_MS,
  );

  it(
    'the stream\'s failures show in the status line, and "online" once it is back',
    async () => {
      // A handler of the page's stream fails until the test lets it pass: the SDK reports each
      // failure (sync.onError) and retries the event on the same socket.
      await alice.evaluate(() => {
        const g = globalThis as unknown as PageGlobal & { failing?: boolean };
        g.failing = true;
        g.__mvp.client.sync.onEvent((event) => {
          if (event.type !== 'message.new' || !g.failing) return;
          throw new Error('handler failed for the test');
        });
      });
      await send(bob, 'the handler fails on this one');
      await status(alice)
        .filter({ hasText: /^⚠ messages interrupted: handler failed for the test$/ })
        .waitFor({ timeout: WAIT_MS });
      await alice.evaluate(() => {
        (globalThis as unknown as { failing?: boolean }).failing = false;
      });
      // The retry hands it over all the same, and the status line says the stream works again
      // (no socket opened: only the event tells).
      await waitForMessage(alice, 'the handler fails on this one');
      await status(alice)
        .filter({ hasText: /^online$/ })
        .waitFor({ timeout: WAIT_MS });

      // The socket drops (here: on another page of alice's, whose sockets the test holds), said
      // so, and "online" once the client has reconnected.
      const laptop = await suite.openPage(suite.a);
      const sockets: WebSocketRoute[] = [];
      await laptop.routeWebSocket(/\/trpc/, (socket) => {
        socket.connectToServer();
        sockets.push(socket);
      });
      // The sign-in drops the socket the page opened at load: the stream's is a routed one.
      await signIn(laptop, names.alice, 'login');
      expect(sockets.length).toBeGreaterThan(0);
      await sockets.at(-1)!.close({ code: 4000, reason: 'dropped by the test' });
      await status(laptop)
        .filter({ hasText: /^⚠ connection lost/ })
        .waitFor({ timeout: WAIT_MS });
      await status(laptop)
        .filter({ hasText: /^online$/ })
        .waitFor({ timeout: WAIT_MS });
      await send(bob, 'after the reconnect');
      await waitForMessage(laptop, 'after the reconnect');
      await laptop.close();
    },
    TEST_MS,
  );

  it(
    'a display name that looks like a username is shown with its unique ID, never as @name',
    async () => {
      // A phone account (no username) whose display name is "@bob", with a bidi control that
      // would reorder what follows it, asks alice to connect.
      const number = freshPhone();
      const challenge = await startPhoneRegistration(suite.a, number, `@${names.bob}\u202e`);
      const impostor = suite.a.newClient();
      const answer = await impostor.auth.verifyOtp({
        challengeId: challenge.challengeId,
        code: lastOtp(suite.a.logs, number),
      });
      if (answer.status !== 'ok') throw new Error('expected tokens');
      const me = await impostor.api.me.get.query();
      expect(me.username).toBeNull();
      expect(me.displayName).toBe(`@${names.bob}\u202e`);
      const aliceId = (await impostor.people.search({ username: names.alice })).users[0]!.id;
      await impostor.people.contacts.request(aliceId);

      const expected = `@${names.bob} · #${me.uniqueId}`;
      const request = alice.getByTestId('requests').locator('li').first();
      await request.waitFor({ timeout: WAIT_MS });
      expect(await request.locator('span').textContent()).toBe(`${expected} wants to connect`);
      // The real bob is still the only "@bob" on the page.
      expect(await contact(alice, names.bob).locator('span').first().textContent()).toBe(
        `@${names.bob}`,
      );

      // Accepted, the impostor is a contact under the same name, and so is its "Who" line.
      await request.getByTestId('accept-request').click();
      await alice
        .getByTestId('contacts')
        .locator('li', { hasText: expected })
        .waitFor({ timeout: WAIT_MS });
      const own = await suite.openPage(suite.a);
      await own.getByTestId('username').fill(me.uniqueId);
      await own.getByTestId('password').fill(PASSWORD);
      await own.getByTestId('login').click();
      await status(own)
        .filter({ hasText: /^online$/ })
        .waitFor({ timeout: WAIT_MS });
      expect(await own.getByTestId('who').textContent()).toBe(expected);
      await impostor.close();
      expect(suite.pageErrors).toEqual([]);
    },
    TEST_MS,
  );
});
