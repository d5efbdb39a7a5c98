import { describe, expect, it } from 'vitest';
import { createApiCallTransport } from './calls/transport';
import { createMvpClient } from './createMvpClient';
import { fakeServer } from './fakeServer.testing';
import { createMemoryTokenStore } from './tokenStore';

describe('calls that must outlive the page', () => {
  it('go alone, with keepalive (a hangup, a sign-out); the others as before, batched and without it', async () => {
    const server = fakeServer(() => ({ data: { id: 'call-1' } }));
    const requests: [path: string, keepalive: boolean][] = [];
    const client = createMvpClient({
      url: 'http://mvp.test',
      tokenStore: createMemoryTokenStore({
        accessToken: 'access-1',
        refreshToken: 'refresh-1',
        expiresAt: Date.now() + 10 * 60_000,
        sessionId: 's1',
        user: { id: 'u1', uniqueId: '12345678', username: 'alice' },
      }),
      fetch: (url, init) => {
        const href = url instanceof Request ? url.url : url.toString();
        requests.push([new URL(href).pathname, init?.keepalive === true]);
        return server.fetch(url, init);
      },
    });
    const transport = createApiCallTransport(client.api);
    await Promise.all([
      transport.hangup('call-1', 'user_hangup', { outlivePage: true }),
      transport.get('call-1'),
      transport.history({}),
    ]);
    await client.auth.logout({ outlivePage: true });
    expect(requests.sort()).toEqual([
      ['/trpc/auth.logout', true],
      ['/trpc/calls.get,calls.history', false],
      ['/trpc/calls.hangup', true],
    ]);
    for (const path of ['calls.hangup', 'auth.logout'])
      expect(server.calls.find((c) => c.path === path)?.auth).toBe('Bearer access-1');
    expect(await client.auth.isSignedIn()).toBe(false);
    await client.close();
  });
});
