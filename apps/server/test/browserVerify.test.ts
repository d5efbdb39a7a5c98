/**
 * Verifying a contact's safety number in apps/web, two Chromium pages against live servers:
 * both pages show the same number, "Mark as verified" gives the contact a ✓ that lasts while
 * their keys do, and a new device of theirs stops the next send with the page's prompt until
 * "Accept". On MySQL + Redis the two people are on two server instances.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { freshUsername } from './helpers/accounts';
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

/** Twelve groups of five digits, four groups a line, as the page shows them. */
const FORMATTED = /^\d{5} \d{5} \d{5} \d{5}\n\d{5} \d{5} \d{5} \d{5}\n\d{5} \d{5} \d{5} \d{5}$/;

run(
  `verifying a safety number in the browser on ${instances} instance(s) (${backendLabel})`,
  () => {
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
    let bobId: string;

    /**
     * Bob signs in on another page: a new device, as each page keeps its keys in memory. Alice's
     * page hears of it through the stream (`device.keys`); this waits until her SDK lists his
     * `devices` rather than race that event with her next send.
     */
    async function newBobDevice(devices: number) {
      const page = await suite.openPage(suite.b);
      await signIn(page, names.bob, 'login');
      await alice.waitForFunction(
        async ({ id, n }) =>
          (await (globalThis as unknown as PageGlobal).__mvp.client.e2ee.safetyNumbers(id))
            .length === n,
        { id: bobId, n: devices },
        { timeout: WAIT_MS, polling: 250 },
      );
      return page;
    }

    /** Opens the Verify panel of the conversation on screen: the numbers as shown, in order. */
    async function openVerify(page: Page, expected = 1): Promise<string[]> {
      await page.getByTestId('verify').click();
      await page.getByTestId('safety').waitFor({ timeout: WAIT_MS });
      await page
        .getByTestId('safety-number')
        .nth(expected - 1)
        .waitFor({ timeout: WAIT_MS });
      return page.getByTestId('safety-number').allTextContents();
    }

    const titleMark = (page: Page) => page.locator('#chat-verified');
    const contactMark = (page: Page, username: string) =>
      contact(page, username).getByTestId('verified-mark');
    const isVerifiedInSdk = (page: Page, userId: string) =>
      page.evaluate(
        (id) => (globalThis as unknown as PageGlobal).__mvp.client.e2ee.isVerified(id),
        userId,
      );

    it(
      'both pages show the same number; "Mark as verified" gives a ✓ that lasts',
      async () => {
        ({ alice, bob } = await registerFriends(suite, names));
        bobId = (await bob.evaluate(() => (globalThis as unknown as PageGlobal).__mvp.me))!.id;

        await contact(alice, names.bob).getByTestId('chat').click();
        await send(alice, 'hello bob');
        await waitForMessage(bob, 'hello bob'); // opens the conversation on bob's page
        await send(bob, 'hello alice');
        await waitForMessage(alice, 'hello alice');

        // Nobody is verified yet.
        expect(await titleMark(alice).isHidden()).toBe(true);
        expect(await contactMark(alice, names.bob).count()).toBe(0);

        const [aliceSees, bobSees] = await Promise.all([openVerify(alice), openVerify(bob)]);
        expect(aliceSees).toHaveLength(1);
        expect(aliceSees[0]).toMatch(FORMATTED);
        expect(bobSees).toEqual(aliceSees);
        // And it is the number of alice's device with bob's, not some other.
        const digits = await alice.evaluate(
          async (id) =>
            (await (globalThis as unknown as PageGlobal).__mvp.client.e2ee.safetyNumbers(id))[0],
          bobId,
        );
        expect(aliceSees[0]!.replace(/\s/g, '')).toBe(digits!.digits);
        expect(await alice.getByTestId('safety-state').textContent()).toBe('Not verified.');

        await bob.getByTestId('safety-close').click();
        await bob.getByTestId('safety').waitFor({ state: 'hidden', timeout: WAIT_MS });

        await alice.getByTestId('safety-mark').click();
        await titleMark(alice).waitFor({ timeout: WAIT_MS });
        await contactMark(alice, names.bob).waitFor({ timeout: WAIT_MS });
        await alice
          .getByTestId('safety-state')
          .filter({ hasText: `✓ You verified @${names.bob}.` })
          .waitFor({ timeout: WAIT_MS });
        expect(await alice.getByTestId('safety-mark').isHidden()).toBe(true);
        expect(await isVerifiedInSdk(alice, bobId)).toBe(true);
        // Verifying is one-sided: bob did not verify alice.
        expect(await titleMark(bob).isHidden()).toBe(true);
        expect(await contactMark(bob, names.alice).count()).toBe(0);

        // It lasts: closing the panel, opening the conversation again, messages both ways.
        await alice.getByTestId('safety-close').click();
        await contact(alice, names.bob).getByTestId('chat').click();
        await send(alice, 'verified you');
        await waitForMessage(bob, 'verified you');
        await send(bob, 'noted');
        await waitForMessage(alice, 'noted');
        expect(await alice.getByTestId('untrusted').isHidden()).toBe(true);
        expect(await titleMark(alice).isVisible()).toBe(true);
        expect(await contactMark(alice, names.bob).isVisible()).toBe(true);
        expect(await openVerify(alice)).toEqual(aliceSees);
        expect(await alice.getByTestId('safety-state').textContent()).toBe(
          `✓ You verified @${names.bob}.`,
        );
        await alice.getByTestId('safety-close').click();
      },
      TEST_MS,
    );

    it(
      "a new device of bob's stops alice's next send until she accepts it",
      async () => {
        const bobPhone = await newBobDevice(2);

        await send(alice, 'still you?');
        await alice.getByTestId('untrusted').waitFor({ timeout: WAIT_MS });
        expect(await alice.getByTestId('untrusted-text').textContent()).toBe(
          `@${names.bob}'s safety number changed. ` +
            'Your message was not sent: verify again or accept the change.',
        );
        await titleMark(alice).waitFor({ state: 'hidden', timeout: WAIT_MS });
        expect(await contactMark(alice, names.bob).count()).toBe(0);
        expect(
          await alice.getByTestId('messages').locator('li', { hasText: 'still you?' }).count(),
        ).toBe(0);

        // "Verify again" shows both of bob's numbers: each is what one of his pages shows.
        await alice.getByTestId('untrusted-verify').click();
        const aliceSees = await alice
          .getByTestId('safety-number')
          .nth(1)
          .waitFor({ timeout: WAIT_MS })
          .then(() => alice.getByTestId('safety-number').allTextContents());
        expect(aliceSees).toHaveLength(2);
        expect(await alice.getByTestId('safety-mark').isVisible()).toBe(true);
        await contact(bobPhone, names.alice).getByTestId('chat').click();
        const [oldSees, phoneSees] = await Promise.all([openVerify(bob), openVerify(bobPhone)]);
        expect([...oldSees, ...phoneSees].sort()).toEqual([...aliceSees].sort());
        await alice.getByTestId('safety-close').click();

        // Accept: the held message goes out, to both of bob's devices; bob is no longer verified.
        await alice.getByTestId('untrusted-accept').click();
        await alice.getByTestId('untrusted').waitFor({ state: 'hidden', timeout: WAIT_MS });
        await waitForMessage(alice, 'still you?');
        await Promise.all([
          waitForMessage(bob, 'still you?'),
          waitForMessage(bobPhone, 'still you?'),
        ]);
        expect(await isVerifiedInSdk(alice, bobId)).toBe(false);
        expect(await titleMark(alice).isHidden()).toBe(true);

        // Sends go on without asking again.
        await send(alice, 'and again');
        await waitForMessage(bobPhone, 'and again');
        expect(await alice.getByTestId('untrusted').isHidden()).toBe(true);
        // A closed page signs out: its device (its keys were in memory) leaves alice's list.
        await bobPhone.close();
        await alice.waitForFunction(
          async (id) =>
            (await (globalThis as unknown as PageGlobal).__mvp.client.e2ee.safetyNumbers(id))
              .length === 1,
          bobId,
          { timeout: WAIT_MS, polling: 250 },
        );
      },
      TEST_MS,
    );

    it(
      'or she verifies the new numbers: the held message goes out and bob is verified again',
      async () => {
        await openVerify(alice, 1);
        await alice.getByTestId('safety-mark').click();
        await titleMark(alice).waitFor({ timeout: WAIT_MS });
        await alice.getByTestId('safety-close').click();

        const bobTablet = await newBobDevice(2);
        await send(alice, 'one more device?');
        await alice.getByTestId('untrusted').waitFor({ timeout: WAIT_MS });
        await titleMark(alice).waitFor({ state: 'hidden', timeout: WAIT_MS });

        await alice.getByTestId('untrusted-verify').click();
        await alice.getByTestId('safety-number').nth(1).waitFor({ timeout: WAIT_MS });
        await alice.getByTestId('safety-mark').click();
        await alice.getByTestId('untrusted').waitFor({ state: 'hidden', timeout: WAIT_MS });
        await titleMark(alice).waitFor({ timeout: WAIT_MS });
        await waitForMessage(alice, 'one more device?');
        await contact(bobTablet, names.alice).getByTestId('chat').click();
        await Promise.all([
          waitForMessage(bob, 'one more device?'),
          waitForMessage(bobTablet, 'one more device?'),
        ]);
        expect(await isVerifiedInSdk(alice, bobId)).toBe(true);
        await bobTablet.close();
        expect(suite.pageErrors).toEqual([]);
      },
      TEST_MS,
    );
  },
);
