import superjson from 'superjson';

export type Answer = { data: unknown } | { appCode: 'UNAUTHORIZED' | 'TOO_MANY_REQUESTS' };
export type Call = { path: string; input: unknown; auth: string | null };
export type Handler = (call: Call) => Answer | Promise<Answer>;

/**
 * Just enough of the tRPC HTTP protocol (batched and single, superjson) to stand in for the
 * server: the client's links, headers and retries run for real, with no network.
 */
export function fakeServer(handler: Handler) {
  const calls: Call[] = [];
  const fetch = async (url: string | URL | Request, init?: RequestInit) => {
    const u = new URL(url instanceof Request ? url.url : String(url));
    const paths = decodeURIComponent(u.pathname.replace(/^\/trpc\//, '')).split(',');
    const batch = u.searchParams.get('batch') === '1';
    const rawInput =
      init?.method === 'POST' ? (init.body as string) : (u.searchParams.get('input') ?? '{}');
    type Serialized = Parameters<typeof superjson.deserialize>[0];
    // Batched requests key each input by its index; a single request sends the input itself.
    const parsed: unknown = JSON.parse(rawInput);
    const inputAt = (i: number) =>
      (batch
        ? (parsed as Record<string, Serialized | undefined>)[String(i)]
        : (parsed as Serialized)) ?? { json: undefined };
    const auth = new Headers(init?.headers).get('authorization');
    const answers = await Promise.all(
      paths.map(async (path, i) => {
        const input = superjson.deserialize(inputAt(i));
        const call = { path, input, auth };
        calls.push(call);
        const answer = await handler(call);
        if ('data' in answer) return { result: { data: superjson.serialize(answer.data) } };
        const data = { appCode: answer.appCode, code: answer.appCode, httpStatus: 401 };
        return { error: superjson.serialize({ message: answer.appCode, code: -32001, data }) };
      }),
    );
    return new Response(JSON.stringify(batch ? answers : answers[0]), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  };
  return { fetch, calls, count: (path: string) => calls.filter((c) => c.path === path).length };
}

/**
 * A WebSocket that opens and answers only a subscription's stop (so that closing the client ends):
 * the sync stream of a client on it stays starting, after its snapshot (over HTTP) was read.
 */
export class SilentSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly OPEN = SilentSocket.OPEN;
  readyState = SilentSocket.CONNECTING;
  binaryType = 'blob';

  // Opens once someone listens for it: a real socket opens a network round trip later.
  override addEventListener(...args: Parameters<EventTarget['addEventListener']>): void {
    super.addEventListener(...args);
    if (args[0] !== 'open' || this.readyState !== SilentSocket.CONNECTING) return;
    queueMicrotask(() => {
      if (this.readyState !== SilentSocket.CONNECTING) return;
      this.readyState = SilentSocket.OPEN;
      this.dispatchEvent(new Event('open'));
    });
  }

  send(data: string): void {
    for (const message of [JSON.parse(data) as unknown].flat() as {
      id?: unknown;
      method?: unknown;
    }[]) {
      if (message.method !== 'subscription.stop') continue;
      const stopped = JSON.stringify({ id: message.id, result: { type: 'stopped' } });
      queueMicrotask(() => this.dispatchEvent(new MessageEvent('message', { data: stopped })));
    }
  }

  close(): void {
    if (this.readyState === SilentSocket.CLOSED) return;
    this.readyState = SilentSocket.CLOSED;
    this.dispatchEvent(new Event('close'));
  }
}

/** The server's answer to `messages.send`: the message stored as the first of its conversation. */
export const storedMessage = (input: unknown) => {
  const { conversationId, clientMessageId } = input as Record<string, string>;
  return {
    id: 'm1',
    conversationId,
    seq: 1,
    senderId: 'u1',
    senderDeviceId: 'd1',
    clientMessageId,
    contentType: 'text/plain',
    ciphertext: 'AQ==',
    replyToSeq: null,
    forwarded: false,
    createdAt: new Date(0).toISOString(),
    editedAt: null,
    deletedAt: null,
    expiresAt: null,
    reactions: [],
  };
};
