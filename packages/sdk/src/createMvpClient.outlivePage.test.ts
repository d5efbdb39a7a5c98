import { describe, expect, it } from 'vitest';
import { createApiCallTransport } from './calls/transport';
import { createMvpClient } from './createMvpClient';
import { fakeServer } from './fakeServer.testing';
import { createMemoryTokenStore } from './tokenStore';

const storeExpiringIn = (ms: number) =>
  createMemoryTokenStore({
    accessToken: 'access-1',
    refreshToken: 'refresh-1',
    expiresAt: Date.now() + ms,
    sessionId: 's1',
    user: { id: 'u1', uniqueId: '12345678', username: 'alice' },
  });

describe('calls that must outlive the page', () => {
  it('go alone, with keepalive (a hangup, a sign-out); the others as before, batched and without it', async () => {
    const server = fakeServer(() => ({ data: { id: 'call-1' } }));
    const requests: [path: string, keepalive: boolean][] = [];
    const client = createMvpClient({
      url: 'http://mvp.test',
      tokenStore: storeExpiringIn(10 * 60_000),
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

  it('go with the token as stored, though due for a refresh (a closing page cannot wait for one); none once it expired', async () => {
    const server = fakeServer(() => ({ data: { id: 'call-1' } }));
    const clientWith = (expiresInMs: number) =>
      createMvpClient({
        url: 'http://mvp.test',
        tokenStore: storeExpiringIn(expiresInMs),
        fetch: server.fetch,
      });
    const due = clientWith(30_000); // inside the minute a refresh goes ahead of expiry
    await createApiCallTransport(due.api).hangup('call-1', 'user_hangup', { outlivePage: true });
    await due.auth.logout({ outlivePage: true });
    expect(server.calls.map((c) => [c.path, c.auth])).toEqual([
      ['calls.hangup', 'Bearer access-1'],
      ['auth.logout', 'Bearer access-1'],
    ]);
    await due.close();

    const expired = clientWith(-1_000);
    await expired.auth.logout({ outlivePage: true });
    expect(server.calls).toHaveLength(2); // nothing to send it with: signed out here only
    expect(await expired.auth.isSignedIn()).toBe(false);
    await expired.close();
  });
});
