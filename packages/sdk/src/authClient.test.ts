import type { TRPCClient } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { createAuthClient } from './authClient';
import { createAuthSession } from './authSession';
import { createMemoryTokenStore } from './tokenStore';
import type { AppRouter } from './types';

const user = { id: 'u1', uniqueId: '12345678', username: 'alice' };
const tokens = {
  status: 'ok' as const,
  accessToken: 'access-1',
  refreshToken: 'refresh-1',
  expiresAt: new Date(Date.now() + 15 * 60_000).toISOString(),
  sessionId: 's1',
  user,
  deviceCookie: 'cookie-1',
};
const login = {
  identifier: 'alice',
  password: 'pw',
  device: { name: 'test', platform: 'node' as const },
};

/** Only the sign-in calls these tests make, each answering tokens. */
const raw = {
  auth: {
    login: { mutate: () => Promise.resolve(tokens) },
    register: { mutate: () => Promise.resolve(tokens) },
  },
} as unknown as TRPCClient<AppRouter>;

describe('auth client', () => {
  it('a sign-in whose follow-up fails still answers its tokens, kept; the failure is reported', async () => {
    const store = createMemoryTokenStore();
    const session = createAuthSession({ store, exchange: () => Promise.reject(new Error('no')) });
    const reported: unknown[] = [];
    const failure = new Error('the stream could not be stopped');
    const auth = createAuthClient(raw, session, {
      onSignedIn: () => Promise.reject(failure),
      onSignedInError: (error) => reported.push(error),
    });

    await expect(auth.login(login)).resolves.toMatchObject({ status: 'ok', user });
    expect(await auth.session()).toMatchObject({ accessToken: 'access-1', user });
    expect(reported).toEqual([failure]);

    const register = {
      username: 'alice',
      password: 'password',
      displayName: 'A',
      device: login.device,
    };
    await expect(auth.register(register)).resolves.toEqual(tokens);
    expect(reported).toEqual([failure, failure]);
  });

  it('a sign-in whose tokens cannot be kept fails, and nothing follows it', async () => {
    const failure = new Error('keychain locked');
    const store = { ...createMemoryTokenStore(), save: () => Promise.reject(failure) };
    const session = createAuthSession({ store, exchange: () => Promise.reject(new Error('no')) });
    const followed: string[] = [];
    const auth = createAuthClient(raw, session, {
      onSignedIn: async () => void followed.push('signed in'),
      onSignedInError: () => followed.push('error'),
    });

    await expect(auth.login(login)).rejects.toBe(failure);
    expect(followed).toEqual([]);
  });

  it('a login shows the device cookies kept from earlier sign-ins, unless the app names its own', async () => {
    const sent: unknown[] = [];
    const recording = {
      auth: {
        login: {
          mutate: (input: unknown) => {
            sent.push(input);
            return Promise.resolve(tokens);
          },
        },
      },
    } as unknown as TRPCClient<AppRouter>;
    const session = createAuthSession({
      store: createMemoryTokenStore(),
      exchange: () => Promise.reject(new Error('no')),
    });
    const auth = createAuthClient(recording, session);

    await auth.login(login);
    await auth.logout().catch(() => undefined);
    await auth.login(login);
    await auth.login({ ...login, deviceCookies: [] });
    expect(sent).toEqual([
      { ...login, deviceCookies: [] },
      { ...login, deviceCookies: ['cookie-1'] },
      { ...login, deviceCookies: [] },
    ]);
  });
});
