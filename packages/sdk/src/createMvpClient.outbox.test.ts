import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { createMvpClient } from './createMvpClient';
import { fakeServer, storedMessage } from './fakeServer.testing';
import type { OutboxItem } from './outboxTypes';
import { createMemoryTokenStore } from './tokenStore';

/** The server's body limit in this test (`MVP_HTTP_MAX_BODY_BYTES` on a real one). */
const MAX_BODY = 1_000;
const tooLarge = { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413, appCode: 'PAYLOAD_TOO_LARGE' };

/** How a body over the limit is answered, before tRPC reads it: always with status 413. */
const refusals = {
  // The server's plain-route error shape (or a proxy's JSON): not a tRPC answer.
  'in its own shape': { code: tooLarge.code, message: 'Request body too large', data: tooLarge },
  "in tRPC's shape": {
    error: superjson.serialize({ message: 'Request body too large', code: -32600, data: tooLarge }),
  },
};

describe('the outbox over HTTP', () => {
  it.each(Object.entries(refusals))(
    "a send over the server's body limit (answered %s) fails for good; the next one goes",
    async (_, body) => {
      const server = fakeServer(({ path, input }) => {
        if (path !== 'messages.send') return { appCode: 'UNAUTHORIZED' };
        return { data: storedMessage(input) };
      });
      const client = createMvpClient({
        url: 'http://mvp.test',
        fetch: async (url, init) =>
          typeof init?.body === 'string' && init.body.length > MAX_BODY
            ? new Response(JSON.stringify(body), {
                status: 413,
                headers: { 'content-type': 'application/json' },
              })
            : server.fetch(url, init),
        tokenStore: createMemoryTokenStore({
          accessToken: 'access-1',
          refreshToken: 'refresh-1',
          expiresAt: Date.now() + 10 * 60_000,
          sessionId: 's1',
          user: { id: 'u1', uniqueId: '12345678', username: 'alice' },
        }),
      });
      const tried = new Promise<OutboxItem>((resolve) =>
        client.outbox.onChange((item) => {
          if (item.attempts > 0 && item.state !== 'sending') resolve(item);
        }),
      );
      const big = client.outbox.send('c1', {
        contentType: 'text/plain',
        ciphertext: new Uint8Array(MAX_BODY),
      });
      const next = client.outbox.send('c1', {
        contentType: 'text/plain',
        ciphertext: new Uint8Array([1]),
      });

      expect(await tried).toMatchObject({
        clientMessageId: big.clientMessageId,
        state: 'failed',
        error: { code: 'PAYLOAD_TOO_LARGE' },
      });
      await expect(big.result).rejects.toThrow();
      expect((await next.result).clientMessageId).toBe(next.clientMessageId);
      expect(client.outbox.pending().map((item) => item.state)).toEqual(['failed']);
      await client.close();
    },
  );
});
