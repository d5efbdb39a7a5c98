import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpLink,
  splitLink,
  wsLink,
  type Operation,
  type TRPCClient,
  type TRPCLink,
} from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import superjson from 'superjson';
import { createAuthClient, type MvpAuth } from './authClient';
import { createAvatarClient, type MvpAvatar } from './avatar';
import { createPeopleClient, type MvpPeople } from './people';
import { createMessagingClient, decodeMessage, type MvpMessaging } from './messaging';
import { createOutbox } from './outbox';
import type { MvpOutbox, OutboxStore } from './outboxTypes';
import { createSyncEngine } from './syncEngine';
import type { MvpSync } from './syncTypes';
import { createApiSyncTransport, type CursorStore } from './syncTransport';
import { authRetryLink, isPublicAuthPath, noteSentToken } from './authRetryLink';
import { createAuthSession, type SessionEndReason } from './authSession';
import { subjectOf } from './base64';
import { DEFAULT_BACKOFF, reconnectDelayMs, type BackoffOptions } from './backoff';
import { createMemoryTokenStore, type TokenStore } from './tokenStore';
import { createE2ee, disabledE2ee, type E2eeOptions, type MvpE2ee } from './e2ee/e2ee';
import { createExpiry, type MvpExpiry } from './expiry';
import { createApiE2eeTransport } from './e2ee/transport';
import { createCallManager, type CallManagerOptions, type MvpCalls } from './calls/callManager';
import { createApiCallTransport } from './calls/transport';
import { keptAlive, outlivesPage } from './outlivePage';
import type { Awaitable } from './types';

// The server closes a session's sockets with this code when the session ends (revoked, signed
// out elsewhere). A refresh then finds out for sure, and tells the app through onSessionEnded.
const SESSION_ENDED_CLOSE_CODE = 4401;
// An outbox send names the account it must go out as in its operation context.
const SEND_AS = 'mvpSendAs';
type WSClient = ReturnType<typeof createWSClient>;
/** An access token to send and the user it is for (undefined when it cannot be told). */
type Credential = { token: string | null; user: () => string | undefined };

/** The WebSocket constructor shape tRPC needs; the browser's, `ws`'s and React Native's fit. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'closed';

export type MvpClientOptions = {
  /** The server's base URL, e.g. `https://chat.example.com` (tRPC lives under `/trpc`). */
  url: string;
  /**
   * Where the session's tokens live (default: memory, gone with the process). See the README for
   * localStorage, AsyncStorage and SecureStore adapters.
   */
  tokenStore?: TokenStore;
  /**
   * Told once when the session is over: `refresh_failed` (revoked, expired or signed out
   * elsewhere; the store is already cleared) or `signed_out` (after `auth.logout()`).
   */
  onSessionEnded?: (reason: SessionEndReason) => void;
  /**
   * Refresh the access token when it expires within this long (default 60 s; at most half its
   * lifetime).
   */
  refreshAheadMs?: number;
  /**
   * For apps that manage tokens themselves: the access token to send, read before each HTTP
   * request and each WebSocket connect. When given it wins over the store, and the client never
   * refreshes or retries on its own (`auth.*` still call the server and fill the store).
   */
  getToken?: () => Awaitable<string | null | undefined>;
  /**
   * The WebSocket implementation for subscriptions. Defaults to `globalThis.WebSocket`
   * (browsers, React Native, Node 22+); on Node 20 pass `ws`'s export.
   */
  WebSocket?: WebSocketConstructor;
  /** Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Backoff (exponential with jitter) for WebSocket reconnects, sync restarts, outbox retries. */
  reconnect?: Partial<BackoffOptions>;
  /** Where the sync stream's cursor lives (default: memory, so every start is a cold start). */
  cursorStore?: CursorStore;
  /**
   * Marks messages from others delivered as the sync stream hands them to the app (default
   * true, as Signal sends delivery receipts). False leaves `markDelivered` to the app.
   */
  deliveryReceipts?: boolean;
  /** Where unsent messages live across restarts (default: memory). */
  outboxStore?: OutboxStore;
  /** Told when the subscription socket opens or closes. */
  onConnectionStateChange?: (state: ConnectionState) => void;
  /**
   * Turns on end-to-end encryption (`client.e2ee`); `store` keeps this device's secrets
   * (default: memory). Off by default.
   */
  crypto?: E2eeOptions;
  /**
   * Calls (`client.calls`): SDP and ICE are encrypted to the peer device with `e2ee.pairwise`
   * when the `crypto` option is on (`calls.crypto` replaces that; without either, calls fail
   * with `NO_CALL_CRYPTO`). `RTCPeerConnection` and `getUserMedia` default to the browser's.
   * See src/calls/README.md.
   */
  calls?: Omit<CallManagerOptions, 'transport' | 'sync'>;
};

export type MvpClient = {
  /** The typed API: `client.api.system.info.query()`, `client.api.system.ticks.subscribe(…)`. */
  api: TRPCClient<AppRouter>;
  /** Register, sign in, OTP, sign out; tokens are kept in `tokenStore` and refreshed as needed. */
  auth: MvpAuth;
  /** Upload (REST, bytes), remove and resolve my avatar. */
  avatar: MvpAvatar;
  /** Profiles, privacy, search, contacts, blocks, and their live events. */
  people: MvpPeople;
  /** Conversations, members, history and receipts (ciphertexts as bytes). */
  messaging: MvpMessaging;
  /** Sends messages in order, retried with the same client message id until stored. */
  outbox: MvpOutbox;
  /** The device's one event stream: in order, once, resumable; unread counts. */
  sync: MvpSync;
  /**
   * End-to-end encryption (with the `crypto` option): device keys, encrypted sends, decrypted
   * receives, undecryptable messages and safety numbers. Without the option every call throws.
   */
  e2ee: MvpE2ee;
  /** Voice and video calls on WebRTC: start, ring, accept, hang up, history. */
  calls: MvpCalls;
  /** Disappearing messages removed at their time on this device, connected or not. */
  expiry: MvpExpiry;
  /**
   * Stops the sync stream and the outbox (pending sends stay in its store) and closes the
   * subscription socket (if one was opened); queries keep working over HTTP.
   */
  close(): Promise<void>;
};

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function toWsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http(s?):\/\//, 'ws$1://');
}

export function createMvpClient(options: MvpClientOptions): MvpClient {
  const base = trimSlash(options.url);
  const backoff = { ...DEFAULT_BACKOFF, ...options.reconnect };
  const fetchImpl = options.fetch;

  // Sign-in calls, refresh and logout go through this client: it has no auth link (a refresh
  // must not trigger a refresh) and sends only the token an operation names in its context.
  const rawHttp = {
    url: `${base}/trpc`,
    transformer: superjson,
    headers: ({ op }: { op: { context: Record<string, unknown> } }) =>
      typeof op.context.token === 'string' ? { authorization: `Bearer ${op.context.token}` } : {},
  };
  const raw = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: outlivesPage,
        true: httpLink({ ...rawHttp, fetch: keptAlive(fetchImpl) }),
        false: httpLink({ ...rawHttp, fetch: fetchImpl }),
      }),
    ],
  });
  const session = createAuthSession({
    store: options.tokenStore ?? createMemoryTokenStore(),
    exchange: (refreshToken, signal) => raw.auth.refresh.mutate({ refreshToken }, { signal }),
    onSessionEnded: (reason) => {
      // Signed out: nothing more goes out of the outbox until someone signs in, and nothing of
      // the account stays on show (its stream, its unread counts).
      outbox.accountChanged();
      sync.accountChanged().catch(sync.report);
      options.onSessionEnded?.(reason);
    },
    refreshAheadMs: options.refreshAheadMs,
  });
  const { getToken } = options;

  /**
   * The access token to send, and whose it is, from one read: the stored session's user, or
   * with `getToken` the user its token names in its `sub` claim (read locally, no network, so an
   * offline send still knows its owner). Asking the store again for the user could meet a
   * refresh in between (here, or in another tab sharing the store) and pair this token with the
   * next one's session: a false mismatch that fails an outbox send.
   */
  const credential = async (refresh = true): Promise<Credential> => {
    if (getToken) {
      const value = (await getToken()) ?? null;
      return { token: value, user: () => (value ? subjectOf(value) : undefined) };
    }
    const current = refresh ? await session.accessSession() : await session.unexpired();
    return { token: current?.accessToken ?? null, user: () => current?.user.id };
  };
  const token = async () => (await credential()).token;

  /** The signed-in account, for the outbox: it sends an entry only as the account that queued it. */
  const currentUser = async () => {
    if (!getToken) return (await session.current())?.user.id ?? null;
    const value = await token();
    return value ? (subjectOf(value) ?? null) : null;
  };
  /**
   * The last guard of an outbox send: the token the request is about to carry must be its
   * owner's. An account switch between the outbox's check and the request fails the send
   * (retried later as its owner) instead of sending it as whoever signed in meanwhile.
   *
   * The outbox's own check (`currentUser`, a read of its own before each attempt) is still
   * needed: it picks which entries are tried at all, so that another account's entries wait in
   * the store for it (instead of each being tried, refused here and backed off, holding up the
   * signed-in account's sends behind it), and it decides what `pending` and `onChange` show.
   * This guard only closes the gap between that check and the request.
   *
   * The sync engine's envelope acks and delivered marks carry their owner too: an ack deletes
   * the envelopes, and a mark moves the position, of the account whose token it carries, so one
   * handled in the last account's stream is refused here rather than sent as the account signed
   * in since.
   */
  const checkSendAs = (opList: readonly Operation[], sent: Credential | null) => {
    const owners = opList.map((op) => op.context[SEND_AS]).filter((o) => typeof o === 'string');
    if (owners.length === 0) return;
    const user = sent?.user();
    if (owners.some((owner) => owner !== user)) {
      throw new Error("@mvp/sdk: not sending another account's request under this one's token");
    }
  };

  // The WebSocket client is created on the first subscription only: tRPC reads the WebSocket
  // global when the client is created, and query-only apps (or Node 20) may not have one.
  let wsClient: WSClient | undefined;
  const openWsClient = () => {
    const fallback = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const WebSocketImpl = options.WebSocket ?? fallback;
    if (!WebSocketImpl) {
      throw new Error(
        '@mvp/sdk: no WebSocket available; pass `WebSocket` (e.g. from "ws") to createMvpClient',
      );
    }
    const notify = options.onConnectionStateChange;
    notify?.('connecting');
    return createWSClient({
      url: `${toWsUrl(base)}/trpc`,
      WebSocket: WebSocketImpl as unknown as typeof WebSocket,
      // tRPC evaluates this on every (re)connect, so each new socket gets a current token.
      connectionParams: async () => {
        const value = await token();
        return value ? { token: value } : {};
      },
      retryDelayMs: (attempt) => reconnectDelayMs(attempt, backoff),
      keepAlive: { enabled: true, intervalMs: 20_000, pongTimeoutMs: 10_000 },
      onOpen: () => {
        notify?.('open');
        // The network is back: sends waiting out a backoff need not wait any longer.
        outbox.retryNow();
      },
      onClose: (cause) => {
        notify?.('closed');
        // The reconnect's connectionParams wait for this refresh (and send no token if it failed).
        // A network failure is left for the next request to meet.
        if (cause?.code === SESSION_ENDED_CLOSE_CODE && !getToken) {
          session.refresh().catch(() => undefined);
        }
      },
    });
  };

  /** The next subscription opens a fresh socket; answers the one it leaves, to close. */
  const detachSocket = () => {
    const leaving = wsClient;
    wsClient = undefined;
    return leaving;
  };

  // Rebinds after close(): a later subscription opens a fresh socket instead of a closed one.
  const lazyWsLink: TRPCLink<AppRouter> = (runtime) => {
    let bound: { client: WSClient; link: ReturnType<TRPCLink<AppRouter>> } | undefined;
    return (op) => {
      wsClient ??= openWsClient();
      if (bound?.client !== wsClient) {
        bound = {
          client: wsClient,
          link: wsLink<AppRouter>({ client: wsClient, transformer: superjson })(runtime),
        };
      }
      return bound.link(op);
    };
  };

  const http = { url: `${base}/trpc`, transformer: superjson, fetch: fetchImpl };
  const authHeaders = async (opList: readonly Operation[]) => {
    // A batch of sign-in calls needs no token, and must not refresh an old session first.
    // One that must outlive the page goes with the token it has: a refresh would not finish.
    const sent = opList.every((op) => isPublicAuthPath(op.path))
      ? null
      : await credential(!opList.some(outlivesPage));
    const value = sent?.token ?? null;
    for (const op of opList) noteSentToken(op, value);
    checkSendAs(opList, sent);
    return value ? { authorization: `Bearer ${value}` } : {};
  };

  const api = createTRPCClient<AppRouter>({
    links: [
      ...(getToken ? [] : [authRetryLink(session)]),
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: lazyWsLink,
        false: splitLink({
          condition: outlivesPage,
          true: httpLink({
            ...http,
            fetch: keptAlive(fetchImpl),
            headers: ({ op }) => authHeaders([op]),
          }),
          false: splitLink({
            // An outbox send travels alone, so that its guard (checkSendAs) refusing it during an
            // account switch does not fail the calls a batch would have carried with it.
            condition: (op) => typeof op.context[SEND_AS] === 'string',
            true: httpLink({ ...http, headers: ({ op }) => authHeaders([op]) }),
            false: httpBatchLink({
              ...http,
              // The server refuses larger batches (MAX_BATCH_SIZE there); more go in several.
              maxItems: 50,
              headers: ({ opList }) => authHeaders(opList),
            }),
          }),
        }),
      }),
    ],
  });

  /**
   * The socket authenticated once, when it opened; its token has expired since (or the stream
   * was refused for another reason). With a session still here, the next subscription opens a
   * fresh socket, whose connectionParams carry a current token (refreshed if need be).
   */
  const renewConnection = async (): Promise<boolean> => {
    const current = await token().catch(() => null);
    if (!current) return false;
    await detachSocket()?.close();
    return true;
  };

  const sync = createSyncEngine({
    transport: createApiSyncTransport(api, (owner) => ({ [SEND_AS]: owner }), renewConnection),
    cursorStore: options.cursorStore,
    backoff,
    deliveryReceipts: options.deliveryReceipts,
  });
  const outbox = createOutbox({
    send: async (input, asUser) =>
      decodeMessage(await api.messages.send.mutate(input, { context: { [SEND_AS]: asUser } })),
    edit: async (input, asUser) =>
      decodeMessage(await api.messages.edit.mutate(input, { context: { [SEND_AS]: asUser } })),
    currentUser,
    store: options.outboxStore,
    backoff,
  });

  const {
    expiry,
    observe,
    reset: resetExpiry,
    serverNow,
  } = createExpiry({
    serverTime: async () => (await api.system.info.query()).serverTime,
    expired: (conversationId, seq) => sync.expired(conversationId, seq),
    report: sync.report,
  });
  sync.observe(observe);
  const e2ee = options.crypto
    ? createE2ee({
        transport: createApiE2eeTransport(api),
        sync,
        outbox,
        options: options.crypto,
        time: { now: serverNow, onExpired: (handler) => expiry.onExpired(handler) },
      })
    : disabledE2ee();
  const messaging = createMessagingClient(api, (messages) => {
    for (const message of messages) if (message.deletedAt === null) expiry.watch(message);
  });

  const callCrypto = options.calls?.crypto ?? (options.crypto ? e2ee.pairwise : undefined);
  const calls = createCallManager({
    transport: createApiCallTransport(api),
    sync,
    ...options.calls,
    crypto: callCrypto,
  });

  /**
   * A sign-in makes this client someone (else): the outbox sends only the new account's entries,
   * local expiry forgets the last account's messages (the app watches its stored ones again
   * when it shows that account), the stream stops until `sync.start()` (the unread counts go
   * with it), and the WebSocket, which authenticated once as whoever was signed in when it
   * opened, is dropped so the next subscription opens one with the new token. The socket is
   * dropped even if stopping the stream failed (a handler's failure does not: the engine reports
   * it): it must not carry the next account's subscriptions.
   * Failures reach `sync.onError`; the sign-in answers regardless (see `createAuthClient`).
   */
  const onSignedIn = async () => {
    outbox.accountChanged();
    const closing = detachSocket();
    await sync.accountChanged().catch(sync.report);
    resetExpiry(); // after the stream stopped: the last account's events watch nothing more
    await closing?.close();
  };

  return {
    api,
    e2ee,
    calls,
    auth: createAuthClient(raw, session, { onSignedIn, onSignedInError: sync.report }),
    people: createPeopleClient(api, sync),
    messaging,
    expiry,
    outbox,
    sync,
    avatar: createAvatarClient({
      baseUrl: base,
      fetch: fetchImpl,
      api,
      token,
      session: getToken ? null : session,
    }),
    async close() {
      await calls.close();
      outbox.pause();
      await sync.stop();
      await detachSocket()?.close();
    },
  };
}
