/**
 * Safety numbers, as Signal's "View safety number": the numbers of this device with each of a
 * contact's devices, "Mark as verified" with exactly the numbers shown, a ✓ on the people this
 * device verified, and the prompt when a send stops because a verified person's keys changed.
 */
import { type MvpClient, type SafetyNumber, type UntrustedIdentityError } from '@mvp/sdk';
import { $, clear, show } from './dom';

/** 60 digits as Signal shows them: twelve groups of five, four groups a line. */
export function formatSafetyNumber(digits: string): string {
  const groups = digits.match(/\d{1,5}/g) ?? [];
  const lines: string[] = [];
  for (let i = 0; i < groups.length; i += 4) lines.push(groups.slice(i, i + 4).join(' '));
  return lines.join('\n');
}

/** Texts a refused send kept back, sent once the user accepts the change or verifies again. */
type Held = { userIds: string[]; texts: string[] };

export type Verification = {
  /** Shows the safety numbers with this user (the Verify button, "Verify again"). */
  open(userId: string): Promise<void>;
  /** Verified on this device, and no change of their keys seen since. */
  isVerified(userId: string): Promise<boolean>;
  /** The ✓ on the contacts list and on the open conversation's title. */
  renderMarks(): Promise<void>;
  /** A send refused because a verified person's keys changed: keep the text, ask the user. */
  refused(error: UntrustedIdentityError, conversationId: string, text: string): void;
  /** Another conversation is on screen: the panel and the prompt follow it. */
  conversationOpened(conversationId: string, peerId: string | null): void;
};

export function createVerification(deps: {
  client: MvpClient;
  nameOf: (userId: string) => string;
  status: (text: string) => void;
  fail: (error: unknown) => void;
  /** Sends a text as the compose box does (a refusal comes back through `refused`). */
  send: (conversationId: string, text: string) => Promise<void>;
}): Verification {
  const { client, nameOf, status } = deps;
  let onScreen: { conversationId: string; peerId: string | null } | null = null;
  let shown: { userId: string; numbers: SafetyNumber[] } | null = null;
  let opening = 0;
  /** By conversation. */
  const held = new Map<string, Held>();
  // Shown unverified from the moment the SDK tells of a change, without waiting for
  // `isVerified` to see the new device list.
  const changed = new Set<string>();

  const isVerified = async (userId: string) =>
    !changed.has(userId) && (await client.e2ee.isVerified(userId));

  const mark = () => {
    const element = document.createElement('small');
    element.className = 'verified';
    element.dataset.testid = 'verified-mark';
    element.title = 'Safety number verified';
    element.textContent = '✓ verified';
    return element;
  };

  async function renderMarks() {
    const peerId = onScreen?.peerId ?? null;
    const verifiedPeer = peerId !== null && (await isVerified(peerId));
    if (onScreen?.peerId === peerId) show('chat-verified', verifiedPeer);
    for (const li of $('contacts').querySelectorAll<HTMLLIElement>('li[data-user-id]')) {
      const verified = await isVerified(li.dataset.userId!);
      li.querySelector('.verified')?.remove();
      if (verified) li.firstElementChild?.append(' ', mark());
    }
  }

  const redraw = () => void renderMarks().catch(deps.fail);

  const heldHere = () => (onScreen ? held.get(onScreen.conversationId) : undefined);

  function renderPrompt() {
    const here = heldHere();
    show('untrusted', here !== undefined);
    if (!here) return;
    const who = here.userIds.map(nameOf).join(', ');
    const count =
      here.texts.length === 1 ? 'Your message was' : `${here.texts.length} messages were`;
    $('untrusted-text').textContent =
      `${who}'s safety number changed. ${count} not sent: verify again or accept the change.`;
  }

  async function open(userId: string) {
    const ticket = ++opening;
    const numbers = await client.e2ee.safetyNumbers(userId);
    const verified = await isVerified(userId);
    if (ticket !== opening) return; // opened again meanwhile: that one shows
    shown = { userId, numbers };
    const name = nameOf(userId);
    const several = numbers.length > 1;
    $('safety-intro').textContent =
      numbers.length === 0
        ? `${name} has no device with keys yet.`
        : `Compare ${several ? 'these numbers' : 'this number'} with what ${name} sees for you, ` +
          `in person or on a call you trust. If ${several ? 'each matches' : 'it matches'}, ` +
          `mark ${name} as verified.`;
    const list = clear('safety-numbers');
    numbers.forEach((number, index) => {
      const li = document.createElement('li');
      if (several) {
        const label = document.createElement('small');
        label.className = 'muted';
        label.textContent = `Device ${index + 1} of ${numbers.length}`;
        li.append(label);
      }
      const code = document.createElement('code');
      code.className = 'safety-number';
      code.dataset.testid = 'safety-number';
      code.textContent = formatSafetyNumber(number.digits);
      li.append(code);
      list.append(li);
    });
    $('safety-state').textContent = verified ? `✓ You verified ${name}.` : 'Not verified.';
    show('safety-mark', !verified && numbers.length > 0);
    show('safety', true);
  }

  function close() {
    opening++;
    shown = null;
    show('safety', false);
  }

  /** Sends what was held back in these conversations (a new refusal holds it again). */
  async function release(conversationIds: string[]) {
    for (const conversationId of conversationIds) {
      const texts = held.get(conversationId)?.texts ?? [];
      held.delete(conversationId);
      renderPrompt();
      for (const text of texts) await deps.send(conversationId, text);
    }
  }
  const heldFor = (userId: string) =>
    [...held].filter(([, h]) => h.userIds.includes(userId)).map(([id]) => id);

  $('safety-mark').addEventListener('click', () => {
    const current = shown;
    if (!current) return;
    const { userId, numbers } = current;
    void (async () => {
      try {
        await client.e2ee.markVerified(userId, 'manual', numbers);
      } catch (error) {
        // Their devices changed while the numbers were on screen: show the new ones to compare.
        await open(userId);
        const now = shown?.numbers.map((n) => n.digits).join() ?? '';
        if (now === numbers.map((n) => n.digits).join()) throw error;
        status(`${nameOf(userId)}'s devices changed: compare the new numbers`);
        return;
      }
      changed.delete(userId);
      status(`${nameOf(userId)} verified`);
      await Promise.all([open(userId), renderMarks()]);
      await release(heldFor(userId));
    })().catch(deps.fail);
  });
  $('safety-close').addEventListener('click', close);

  $('untrusted-accept').addEventListener('click', () => {
    const conversationId = onScreen?.conversationId;
    const current = heldHere();
    if (!conversationId || !current) return;
    void (async () => {
      for (const userId of current.userIds) {
        await client.e2ee.trustIdentities(userId);
        changed.delete(userId);
      }
      status(`accepted the new safety number of ${current.userIds.map(nameOf).join(', ')}`);
      redraw();
      if (shown && current.userIds.includes(shown.userId)) await open(shown.userId);
      await release([conversationId]);
    })().catch(deps.fail);
  });
  $('untrusted-verify').addEventListener('click', () => {
    const userId = heldHere()?.userIds[0];
    if (userId) void open(userId).catch(deps.fail);
  });

  client.e2ee.onIdentityChange(({ userId, verified }) => {
    if (!verified) return;
    changed.add(userId);
    redraw();
  });
  // New keys or another device while their numbers are on screen: show the current ones.
  client.sync.onEvent((event) => {
    if (event.type === 'device.keys' && shown?.userId === event.userId)
      void open(event.userId).catch(deps.fail);
  });

  return {
    open,
    isVerified,
    renderMarks,
    refused(error, conversationId, text) {
      const userIds = [...new Set(error.changes.map((c) => c.userId))];
      for (const userId of userIds) changed.add(userId);
      const known = held.get(conversationId);
      held.set(conversationId, {
        userIds: [...new Set([...(known?.userIds ?? []), ...userIds])],
        texts: [...(known?.texts ?? []), text],
      });
      status(`not sent: ${userIds.map(nameOf).join(', ')}'s safety number changed`);
      renderPrompt();
      redraw();
    },
    conversationOpened(conversationId, peerId) {
      onScreen = { conversationId, peerId };
      if (shown && shown.userId !== peerId) close();
      renderPrompt();
      redraw();
    },
  };
}
