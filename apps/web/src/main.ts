/**
 * A small messenger on @mvp/sdk only: register or log in, find people and add them, talk in an
 * end-to-end encrypted direct conversation, and call (audio or video). Development and test
 * builds (`__MVP_TEST_HOOKS__`) also take `?server=` and expose `window.__mvp` (./testHooks).
 */
import {
  createMvpClient,
  errorCodeOf,
  isUntrustedIdentityError,
  type Call,
  type Conversation,
  type DecryptedMessage,
  type PublicProfile,
} from '@mvp/sdk';
import { $, button, clear, item, onTap, show } from './dom';
import { nameOfProfile } from './names';
import { advanced, tickOf, type Positions } from './receipts';
import { restartSignedOut, showSessionEndNotice } from './sessionEnd';
import { exposeForTests } from './testHooks';
import { createUnread } from './unread';
import { createVerification } from './verify';

// Production reads the server from the build only: a `?server=` link must not be able to point
// someone's page (and the password they type) at another server.
const serverUrl =
  (__MVP_TEST_HOOKS__ ? new URLSearchParams(location.search).get('server') : null) ??
  (import.meta.env.VITE_MVP_URL as string | undefined) ??
  'http://127.0.0.1:3000';
$('server-url').textContent = serverUrl;

/**
 * Once signed in and set up (`watching`), the status line says when the stream fails or the
 * socket drops, instead of "online" while nothing arrives; a reconnect makes it "online" again.
 * Before that the stream has no session to run on (and the sign-in says how it went).
 */
const health = { watching: false, trouble: false };
// E2EE on, with the device's secrets in memory: sessions live in memory too (a reload signs
// out), so each load is a new device with new keys anyway. Calls encrypt SDP and ICE with it.
const client = createMvpClient({
  url: serverUrl,
  crypto: {},
  onSessionEnded: restartSignedOut,
  onConnectionStateChange: (connection) => {
    if (!health.watching) return;
    if (connection === 'closed') {
      health.trouble = true;
      status('⚠ connection lost: reconnecting…');
    } else if (connection === 'open' && health.trouble) {
      health.trouble = false;
      status('online');
    }
  },
});
showSessionEndNotice();
client.sync.onError((error) => {
  console.warn('sync error', error);
  if (!health.watching) return;
  health.trouble = true;
  const stopped = client.sync.state === 'stopped';
  status(`⚠ messages ${stopped ? 'stopped' : 'interrupted'}: ${describe(error)}`);
});

/** `seq` is null until the server has stored it (my own line, just sent). */
/**
 * `id` is the sender's user id and client message id together: a client message id is unique
 * per sender only, and anyone in the chat can reuse one of mine (it is in every message).
 */
type Line = { id: string; seq: number | null; from: string; text: string; mine: boolean };
const lineId = (senderId: string, clientMessageId: string) => `${senderId}:${clientMessageId}`;

const state = {
  me: null as { id: string; username: string | null } | null,
  names: new Map<string, string>(),
  conversationId: null as string | null,
  peerId: null as string | null,
  /** Conversations by id, as far as this page has looked them up. */
  conversations: new Map<string, Promise<Conversation>>(),
  lines: new Map<string, Line[]>(),
  peers: new Map<string, Positions>(),
  /** The read position this page last sent, per conversation. */
  marked: new Map<string, number>(),
  call: null as Call | null,
  states: [] as string[],
};
const nameOf = (userId: string) => state.names.get(userId) ?? userId.slice(0, 8);
const status = (text: string) => ($('status').textContent = text);
const describe = (error: unknown) =>
  errorCodeOf(error) ?? (error instanceof Error ? error.message : String(error));
const fail = (error: unknown) => {
  console.error(error);
  status(`⚠ ${describe(error)}`);
};
const run = (task: () => Promise<unknown>) => () => void task().catch(fail);
// As Signal's "safety number changed": a device of theirs (or of mine) that this page had not
// seen, or new keys for one. For someone verified, sends wait for the user (./verify).
client.e2ee.onIdentityChange(({ userId, change }) =>
  status(`${change === 'added' ? 'new device' : 'new keys'} for ${nameOf(userId)}`),
);
document.addEventListener('action-error', (event) => fail((event as CustomEvent).detail));
// Safety numbers: the Verify button, the ✓ marks, the prompt when a verified person's keys change.
const verification = createVerification({ client, nameOf, status, fail, send: sendText });
$('verify').addEventListener(
  'click',
  run(async () => state.peerId && verification.open(state.peerId)),
);

// --- Accounts -------------------------------------------------------------------------------

const device = {
  name: navigator.userAgent.includes('Mobile') ? 'Phone browser' : 'Web browser',
  platform: 'web' as const,
};
const credentials = () => ({
  username: ($('username') as HTMLInputElement).value.trim(),
  password: ($('password') as HTMLInputElement).value,
});

async function signedIn() {
  const me = await client.api.me.get.query();
  state.me = { id: me.id, username: me.username };
  $('who').textContent = nameOfProfile(me);
  show('auth-notice', false);
  show('auth', false);
  show('home', true);
  await setUpKeys();
  health.watching = true;
  status('online');
  await Promise.all([refreshPeople(), refreshHistory()]);
}

/**
 * Publishes this device's keys (so that it can ring and read) and starts the stream. Until that
 * works the page is no messenger: a failure is tried again, with the reason on screen, rather
 * than leave a page that looks signed in and never rings. (`setup` is safe to call again.)
 */
async function setUpKeys() {
  for (let attempt = 0; ; attempt++) {
    status('setting up keys…');
    try {
      return await client.e2ee.setup();
    } catch (error) {
      const seconds = Math.min(30, 2 ** attempt);
      status(`⚠ setting up keys failed (${describe(error)}): trying again in ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

/**
 * One sign-in at a time, its buttons disabled meanwhile: Enter and then a click made two
 * sessions (two devices of this page), and a second registration of the name answered CONFLICT.
 */
let signingIn = false;
const signIn = (task: () => Promise<void>) =>
  run(async () => {
    if (signingIn) return;
    signingIn = true;
    const buttons = [...$('auth-form').querySelectorAll('button')];
    for (const b of buttons) b.disabled = true;
    try {
      await task();
    } finally {
      signingIn = false;
      for (const b of buttons) b.disabled = false;
    }
  });

$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  signIn(async () => {
    const { username, password } = credentials();
    const answer = await client.auth.login({ identifier: username, password, device });
    if (answer.status !== 'ok') throw new Error(`login needs ${answer.status}`);
    await signedIn();
  })();
});
$('register').addEventListener(
  'click',
  signIn(async () => {
    const { username, password } = credentials();
    const answer = await client.auth.register({
      username,
      password,
      displayName: username,
      device,
    });
    if (answer.status !== 'ok') throw new Error(`registration needs ${answer.status}`);
    await signedIn();
  }),
);

// --- People ---------------------------------------------------------------------------------

function remember(profile: PublicProfile) {
  state.names.set(profile.id, nameOfProfile(profile));
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const username = ($('search') as HTMLInputElement).value.trim().toLowerCase();
    const found = await client.people.search({ username });
    const list = clear('results');
    for (const user of found.users) {
      remember(user);
      list.append(
        item(nameOf(user.id), [
          user.isContact
            ? button('Chat', () => openChat(user.id), 'chat')
            : button(
                'Add',
                async () => {
                  await client.people.contacts.request(user.id);
                  status(`asked ${nameOf(user.id)}`);
                  await refreshPeople();
                },
                'add',
              ),
        ]),
      );
    }
    if (found.users.length === 0) list.append(item('nobody by that name'));
  })();
});

async function refreshPeople() {
  const [{ contacts }, requests] = await Promise.all([
    client.people.contacts.list(),
    client.people.contacts.requests(),
  ]);
  const pending = clear('requests');
  for (const request of requests.incoming) {
    remember(request.user);
    pending.append(
      item(`${nameOf(request.user.id)} wants to connect`, [
        button(
          'Accept',
          async () => {
            await client.people.contacts.accept(request.id);
            await refreshPeople();
          },
          'accept-request',
        ),
      ]),
    );
  }
  for (const request of requests.outgoing) {
    remember(request.user);
    pending.append(item(`waiting for ${nameOf(request.user.id)}`));
  }
  const list = clear('contacts');
  for (const contact of contacts) {
    remember(contact);
    const li = item(nameOf(contact.id), [
      button('Chat', () => openChat(contact.id), 'chat'),
      button('Audio', () => startCall(contact.id, 'audio'), 'call-audio'),
      button('Video', () => startCall(contact.id, 'video'), 'call-video'),
    ]);
    li.dataset.userId = contact.id;
    list.append(li);
  }
  unread.render();
  await verification.renderMarks();
}

client.people.onEvent(() => void refreshPeople().catch(fail));

// --- Messages -------------------------------------------------------------------------------

async function openChat(userId: string) {
  const conversation = await client.messaging.conversations.createDirect(userId);
  state.conversations.set(conversation.id, Promise.resolve(conversation));
  openConversation(conversation);
}

const titleOf = (conversation: Conversation) =>
  conversation.kind === 'direct'
    ? nameOf(conversation.peerId ?? '')
    : (conversation.title ?? conversation.kind);

const unread = createUnread({ titleOf, open: openConversation });

function openConversation(conversation: Conversation) {
  state.conversationId = conversation.id;
  state.peerId = conversation.peerId;
  unread.seen(conversation.id);
  $('chat-title').textContent =
    conversation.kind === 'direct' ? `With ${titleOf(conversation)}` : titleOf(conversation);
  for (const id of ['text', 'send']) ($(id) as HTMLInputElement).disabled = false;
  show('verify', conversation.kind === 'direct' && conversation.peerId !== null);
  verification.conversationOpened(
    conversation.id,
    conversation.kind === 'direct' ? conversation.peerId : null,
  );
  renderMessages();
  void markShownRead().catch(fail);
}

function conversationOf(conversationId: string): Promise<Conversation> {
  let known = state.conversations.get(conversationId);
  if (!known) {
    known = client.messaging.conversations.get(conversationId);
    state.conversations.set(conversationId, known);
    void known.catch(() => state.conversations.delete(conversationId));
  }
  return known;
}

/**
 * A new message from someone else in a conversation that is not on screen. With nothing open,
 * a direct conversation opens (as a messenger does); otherwise, and always for groups and
 * channels, it only counts as unread: it never replaces the conversation on screen.
 */
async function arrivedElsewhere(conversationId: string) {
  const conversation = await conversationOf(conversationId);
  if (state.conversationId === conversationId) return; // opened meanwhile: it is on screen
  if (!state.conversationId && conversation.kind === 'direct') {
    openConversation(conversation);
    return;
  }
  unread.add(conversation);
}

/** The open conversation's messages are on screen: read up to the newest from the other side. */
async function markShownRead() {
  const conversationId = state.conversationId;
  if (!conversationId || document.visibilityState !== 'visible') return;
  const theirs = (state.lines.get(conversationId) ?? []).filter((l) => !l.mine && l.seq !== null);
  const newest = Math.max(0, ...theirs.map((l) => l.seq!));
  if (newest <= (state.marked.get(conversationId) ?? 0)) return;
  await client.messaging.messages.markRead(conversationId, newest);
  state.marked.set(conversationId, Math.max(newest, state.marked.get(conversationId) ?? 0));
}
document.addEventListener('visibilitychange', () => void markShownRead().catch(fail));

// A reload or a closed tab ends this page's device (its keys lived in memory): it signs out on
// the server too, in a request that outlives the page, or its session and published keys would
// stay behind (and ring in every later call). The SDK hangs up a live call on the same event.
const onClose = { signOut: true }; // the browser suite turns it off to see a call's hangup alone
window.addEventListener('pagehide', () => {
  if (state.me && onClose.signOut)
    void client.auth.logout({ outlivePage: true }).catch(() => undefined);
});

function renderMessages() {
  const list = clear('messages');
  for (const line of state.lines.get(state.conversationId ?? '') ?? []) {
    const li = item(line.text);
    li.className = line.mine ? 'mine' : 'theirs';
    li.title = line.from;
    if (line.mine) {
      const tick = document.createElement('small');
      tick.className = 'tick';
      tick.dataset.testid = 'tick';
      tick.textContent = tickOf(state.peers.get(state.conversationId ?? ''), line.seq);
      li.append(tick);
    }
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
}

/** Adds a line, or fills in the seq (my own, stored) or the text (an edit) of the same message. */
function addLine(conversationId: string, line: Line, edited = false) {
  const lines = state.lines.get(conversationId) ?? [];
  const known = lines.find((l) => l.id === line.id);
  if (known) {
    known.seq ??= line.seq;
    if (edited) known.text = line.text;
  } else lines.push(line);
  state.lines.set(conversationId, lines);
  if (state.conversationId === conversationId) renderMessages();
}

client.e2ee.onMessage(({ message, contentType, body, edited }: DecryptedMessage) => {
  if (contentType !== 'text/plain') return;
  const mine = message.senderId === state.me?.id;
  addLine(
    message.conversationId,
    {
      id: lineId(message.senderId, message.clientMessageId),
      seq: message.seq,
      from: nameOf(message.senderId),
      text: new TextDecoder().decode(body),
      mine,
    },
    edited,
  );
  if (mine || edited) return;
  if (message.conversationId === state.conversationId) void markShownRead().catch(fail);
  else void arrivedElsewhere(message.conversationId).catch(fail);
});

/** Messages gone for everyone (deleted, or expired by their timer): off the screen. */
function removeLines(conversationId: string, seqs: number[]) {
  const lines = state.lines.get(conversationId) ?? [];
  const left = lines.filter((l) => l.seq === null || !seqs.includes(l.seq));
  if (left.length === lines.length) return;
  state.lines.set(conversationId, left);
  if (state.conversationId === conversationId) renderMessages();
}

// A disappearing message goes at its time, on a page offline too; the server's removal (or a
// deletion) may come as well, and removes nothing more.
client.expiry.onExpired(({ conversationId, seq }) => removeLines(conversationId, [seq]));
client.sync.onEvent((event) => {
  if (event.type === 'messages.removed') removeLines(event.conversationId, event.seqs);
  if (event.type === 'message.updated' && event.message.deletedAt !== null)
    removeLines(event.message.conversationId, [event.message.seq]);
});

// An event handed over means the stream works again: a retry on the same socket (after a
// handler's or the server's failure) opens nothing that would say so.
client.sync.onEvent(() => {
  if (!health.trouble) return;
  health.trouble = false;
  status('online');
});

client.sync.onEvent((event) => {
  if (event.type !== 'receipt' || event.userId === state.me?.id) return;
  state.peers.set(event.conversationId, advanced(state.peers.get(event.conversationId), event));
  if (state.conversationId === event.conversationId) renderMessages();
});

$('compose').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('text') as HTMLInputElement;
  const text = input.value.trim();
  const conversationId = state.conversationId;
  if (!text || !conversationId) return;
  input.value = '';
  run(() => sendText(conversationId, text))();
});

/** A send to someone verified whose keys changed is held back until the user decides. */
async function sendText(conversationId: string, text: string) {
  let handle;
  try {
    handle = await client.e2ee.send(conversationId, {
      contentType: 'text/plain',
      body: new TextEncoder().encode(text),
    });
  } catch (error) {
    if (!isUntrustedIdentityError(error)) throw error;
    verification.refused(error, conversationId, text);
    return;
  }
  addLine(conversationId, {
    id: lineId(state.me!.id, handle.clientMessageId),
    seq: null,
    from: 'me',
    text,
    mine: true,
  });
}

// --- Calls ----------------------------------------------------------------------------------

async function startCall(userId: string, media: 'audio' | 'video') {
  // Shown from `dialing` on (by onChange), so the permission prompt has a call and a Hang up.
  track(await client.calls.start(userId, { media }));
}

/** In-progress calls over a ringing one, over an ended one. */
const weight = (call: Call | null) =>
  call === null ? -1 : call.state === 'ended' ? 0 : call.state === 'ringing' ? 1 : 2;

/**
 * Shows `call` unless the one on screen weighs more. In glare `start` answers the losing call,
 * ended, after the peer's call rang here and the SDK answered it: showing that one's end hid a
 * live call (its microphone open) with no way to hang up. A ring that comes while dialing does
 * not cover the dial either.
 */
function track(call: Call) {
  if (call === state.call) return renderCall();
  if (weight(call) < weight(state.call)) return;
  state.call = call;
  state.states = [call.state];
  renderCall();
}

client.calls.onIncoming((call) => track(call));
client.calls.onChange((call) => {
  if (call !== state.call) {
    // The peer's call answered in glare, or a call seen first now (dialing); otherwise another
    // device's ringing that stopped, or a call over before it was shown (busy at its start).
    if (weight(call) > weight(state.call)) return track(call);
    if (call.state === 'ended') void refreshHistory().catch(fail);
    return;
  }
  if (state.states.at(-1) !== call.state) state.states.push(call.state);
  renderCall();
  if (call.state !== 'ended') return;
  void refreshHistory().catch(fail);
  // Another call still rings (it came during this one): it is shown now.
  const next = client.calls.current;
  if (next) track(next);
});
client.calls.onError((error) => {
  console.warn('call error', error);
  status(`⚠ call: ${describe(error)}`);
});

function renderCall() {
  const call = state.call;
  const callState = call?.state ?? 'idle';
  $('call-state').textContent =
    call?.state === 'ended' ? `ended (${call.endReason ?? 'unknown'})` : callState;
  $('call-peer').textContent = call
    ? ` ${call.direction === 'incoming' ? 'from' : 'to'} ${nameOf(call.peerUserId)} · ${call.media}`
    : '';
  const live = call !== null && call.state !== 'ended';
  show('accept', call?.state === 'ringing');
  show('decline', call?.state === 'ringing');
  show('hangup', live && call.state !== 'ringing');
  show('mute', live && call.state !== 'ringing');
  show('camera', live && call.state !== 'ringing');
  $('mute').textContent = call?.muted ? 'Unmute' : 'Mute';
  $('camera').textContent = call?.videoEnabled ? 'Camera off' : 'Camera on';
  const local = $('local') as HTMLVideoElement;
  const remote = $('remote') as HTMLVideoElement;
  const localStream = (live ? call.localStream : null) as MediaStream | null;
  const remoteStream = (live ? call.remoteStream : null) as MediaStream | null;
  if (local.srcObject !== localStream) local.srcObject = localStream;
  if (remote.srcObject !== remoteStream) remote.srcObject = remoteStream;
}

const tap = (id: string, action: () => Promise<unknown>) =>
  onTap($(id) as HTMLButtonElement, action);
tap('accept', async () => state.call?.accept());
tap('decline', async () => state.call?.decline());
tap('hangup', async () => state.call?.hangup());
$('mute').addEventListener('click', () => {
  state.call?.setMuted(!state.call.muted);
});
tap('camera', async () => state.call?.setVideoEnabled(!state.call.videoEnabled));

async function refreshHistory() {
  const { calls } = await client.calls.history({ limit: 10 });
  const list = clear('history');
  for (const call of calls) {
    const who =
      call.direction === 'outgoing'
        ? `to ${nameOf(call.calleeId)}`
        : `from ${nameOf(call.callerId)}`;
    const li = item(
      `${call.direction === 'outgoing' ? '↗' : '↙'} ${call.media} ${who}: ${call.state}` +
        (call.durationSeconds > 0 ? ` · ${call.durationSeconds}s` : ''),
    );
    li.dataset.callId = call.id;
    li.dataset.state = call.state;
    list.append(li);
  }
}

if (__MVP_TEST_HOOKS__) {
  exposeForTests(client, {
    me: () => state.me,
    call: () => state.call,
    callStates: () => [...state.states],
    messages: () => [...(state.lines.get(state.conversationId ?? '') ?? [])],
    keepSessionOnClose: () => void (onClose.signOut = false),
  });
}
