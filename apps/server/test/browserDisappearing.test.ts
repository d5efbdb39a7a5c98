/**
 * Disappearing messages in apps/web, two Chromium pages against live servers that run no expiry
 * loop: a message with a one-second timer leaves both pages at its time, by the SDK's own timer
 * (`client.expiry`), with no removal from the server. On MySQL + Redis the two people are on two
 * server instances.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshUsername } from './helpers/accounts';
import { hasChromium } from './helpers/browser';
import { backendLabel } from './helpers/env';
import {
  contact,
  instances,
  registerFriends,
  send,
  startWebSuite,
  TEST_MS,
  WAIT_MS,
  waitForMessage,
  type PageGlobal,
  type WebSuite,
} from './helpers/webSuite';

// Under CI a missing Chromium fails the run (.ci/run installs it); elsewhere the suite is skipped.
const run = hasChromium || process.env.CI ? describe : describe.skip;

run(`disappearing messages in the browser on ${instances} instance(s) (${backendLabel})`, () => {
  let suite: WebSuite;

  beforeAll(async () => {
    // No expiry loop: only the pages' own timers can take the message away.
    suite = await startWebSuite({ messageExpiryCheckMs: 2 ** 31 - 1 });
  }, TEST_MS);

  afterAll(async () => {
    await suite?.close();
  }, 60_000);

  it(
    'a message with a one-second timer leaves both pages at its time',
    async () => {
      const names = { alice: freshUsername('alice'), bob: freshUsername('bob') };
      const { alice, bob } = await registerFriends(suite, names);
      await contact(alice, names.bob).getByTestId('chat').click();
      await send(alice, 'this one stays');
      await waitForMessage(bob, 'this one stays');

      await alice.evaluate(async () => {
        const { conversations } = (globalThis as unknown as PageGlobal).__mvp.client.messaging;
        const [chat] = await conversations.list();
        await conversations.update(chat!.id, { disappearSeconds: 1 });
      });
      await send(alice, 'gone in a second');
      const gone = (page: typeof alice) =>
        page.getByTestId('messages').locator('li', { hasText: 'gone in a second' });
      await Promise.all([
        waitForMessage(alice, 'gone in a second'),
        waitForMessage(bob, 'gone in a second'),
      ]);
      await Promise.all([
        gone(alice).waitFor({ state: 'detached', timeout: WAIT_MS }),
        gone(bob).waitFor({ state: 'detached', timeout: WAIT_MS }),
      ]);
      for (const page of [alice, bob])
        expect(
          await page.getByTestId('messages').locator('li', { hasText: 'this one stays' }).count(),
        ).toBe(1);
      expect(suite.pageErrors).toEqual([]);
    },
    TEST_MS,
  );
});
