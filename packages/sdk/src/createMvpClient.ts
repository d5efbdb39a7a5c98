import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  splitLink,
  wsLink,
  type TRPCClient,
  type TRPCLink,
} from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import superjson from 'superjson';
import { DEFAULT_BACKOFF, reconnectDelayMs, type BackoffOptions } from './backoff';

type Awaitable<T> = T | Promise<T>;
type WSClient = ReturnType<typeof createWSClient>;

/** The WebSocket constructor shape tRPC needs; the browser's, `ws`'s and React Native's fit. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'closed';

export type MvpClientOptions = {
  /** The server's base URL, e.g. `https://chat.example.com` (tRPC lives under `/trpc`). */
  url: string;
  /** The access token to send, read before each HTTP request and each WebSocket connect. */
  getToken?: () => Awaitable<string | null | undefined>;
  /**
   * The WebSocket implementation for subscriptions. Defaults to `globalThis.WebSocket`
   * (browsers, React Native, Node 22+); on Node 20 pass `ws`'s export.
   */
  WebSocket?: WebSocketConstructor;
  /** Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Reconnect backoff for the WebSocket (exponential with jitter). */
  reconnect?: Partial<BackoffOptions>;
  /** Told when the subscription socket opens or closes. */
  onConnectionStateChange?: (state: ConnectionState) => void;
};

export type MvpClient = {
  /** The typed API: `client.api.system.info.query()`, `client.api.system.ticks.subscribe(…)`. */
  api: TRPCClient<AppRouter>;
  /** Closes the subscription socket (if one was opened); queries keep working over HTTP. */
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
  const token = async () => (await options.getToken?.()) ?? null;

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
      connectionParams: async () => {
        const value = await token();
        return value ? { token: value } : {};
      },
      retryDelayMs: (attempt) => reconnectDelayMs(attempt, backoff),
      keepAlive: { enabled: true, intervalMs: 20_000, pongTimeoutMs: 10_000 },
      onOpen: () => notify?.('open'),
      onClose: () => notify?.('closed'),
    });
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

  const api = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: lazyWsLink,
        false: httpBatchLink({
          url: `${base}/trpc`,
          transformer: superjson,
          fetch: options.fetch,
          headers: async () => {
            const value = await token();
            return value ? { authorization: `Bearer ${value}` } : {};
          },
        }),
      }),
    ],
  });

  return {
    api,
    async close() {
      const closing = wsClient;
      wsClient = undefined;
      await closing?.close();
    },
  };
}
