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
  let wsClient: ReturnType<typeof createWSClient> | undefined;
  const openWsClient = () => {
    const WebSocketImpl = options.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
    if (!WebSocketImpl) {
      throw new Error('@mvp/sdk: no WebSocket available; pass `WebSocket` (e.g. from "ws") to createMvpClient');
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

  const lazyWsLink: TRPCLink<AppRouter> = (runtime) => {
    let operationLink: ReturnType<TRPCLink<AppRouter>> | undefined;
    return (op) => {
      if (!operationLink) {
        wsClient ??= openWsClient();
        operationLink = wsLink<AppRouter>({ client: wsClient, transformer: superjson })(runtime);
      }
      return operationLink(op);
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
      wsClient?.close();
      wsClient = undefined;
    },
  };
}
