import { describe, expect, it } from 'vitest';
import { createApiCallTransport } from './calls/transport';
import { createMvpClient } from './createMvpClient';
import { fakeServer } from './fakeServer.testing';

describe('a call that must outlive the page', () => {
  it('goes alone, with keepalive; the others go as before, batched and without it', async () => {
    const server = fakeServer(() => ({ data: { id: 'call-1' } }));
    const requests: { url: string; keepalive: boolean }[] = [];
    const client = createMvpClient({
      url: 'http://mvp.test',
      getToken: () => 'access-1',
      fetch: (url, init) => {
        requests.push({
          url: url instanceof Request ? url.url : url.toString(),
          keepalive: init?.keepalive === true,
        });
        return server.fetch(url, init);
      },
    });
    const transport = createApiCallTransport(client.api);
    await Promise.all([
      transport.hangup('call-1', 'user_hangup', { outlivePage: true }),
      transport.get('call-1'),
      transport.history({}),
    ]);
    expect(requests.map((r) => [new URL(r.url).pathname, r.keepalive]).sort()).toEqual([
      ['/trpc/calls.get,calls.history', false],
      ['/trpc/calls.hangup', true],
    ]);
    expect(server.calls.find((c) => c.path === 'calls.hangup')).toMatchObject({
      input: { callId: 'call-1', reason: 'user_hangup' },
      auth: 'Bearer access-1',
    });
    await client.close();
  });
});
