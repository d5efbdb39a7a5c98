import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientWithToken, DEVICE, freshUsername, PASSWORD, registerUser } from './helpers/accounts';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { codeOf } from './helpers/errors';

describe(`me: profile basics, password, deletion (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('reads and updates display name and username', async () => {
    const account = await registerUser(t);
    const api = clientWithToken(t, account.accessToken).api;
    const username = freshUsername('new');
    const me = await api.me.update.mutate({
      displayName: '  Grace Hopper  ',
      username: username.toUpperCase(),
    });
    expect(me).toMatchObject({ displayName: 'Grace Hopper', username, requireOtpLogin: false });
    expect((await api.me.get.query()).username).toBe(username);
  });

  it('refuses a taken username (CONFLICT), an empty change and a bad name (BAD_REQUEST), changing nothing', async () => {
    const a = await registerUser(t);
    const b = await registerUser(t);
    const api = clientWithToken(t, b.accessToken).api;
    expect(await codeOf(api.me.update.mutate({ username: a.username }))).toBe('CONFLICT');
    expect(await codeOf(api.me.update.mutate({}))).toBe('BAD_REQUEST');
    expect(await codeOf(api.me.update.mutate({ displayName: '' }))).toBe('BAD_REQUEST');
    expect(await codeOf(api.me.update.mutate({ requireOtpLogin: true }))).toBe('BAD_REQUEST'); // no phone
    expect(await api.me.get.query()).toMatchObject({
      username: b.username,
      displayName: 'Test User',
      requireOtpLogin: false,
    });
  });

  it('nobody else can read or change me: without a token UNAUTHORIZED', async () => {
    expect(await codeOf(t.client.api.me.get.query())).toBe('UNAUTHORIZED');
    expect(await codeOf(t.client.api.me.update.mutate({ displayName: 'x' }))).toBe('UNAUTHORIZED');
    expect(await codeOf(t.client.api.me.delete.mutate({ password: PASSWORD }))).toBe(
      'UNAUTHORIZED',
    );
  });

  it('changing the password needs the current one and signs other devices out', async () => {
    const account = await registerUser(t);
    const other = await t.client.api.auth.login.mutate({
      identifier: account.username,
      password: PASSWORD,
      device: DEVICE,
    });
    if (other.status !== 'ok') throw new Error('expected tokens');
    const api = clientWithToken(t, account.accessToken).api;
    const newPassword = 'a much better passphrase 7';
    expect(
      await codeOf(api.me.changePassword.mutate({ currentPassword: 'wrong', newPassword })),
    ).toBe('FORBIDDEN');
    expect(
      await codeOf(
        api.me.changePassword.mutate({ currentPassword: PASSWORD, newPassword: 'password1' }),
      ),
    ).toBe('BAD_REQUEST');
    expect(await api.me.changePassword.mutate({ currentPassword: PASSWORD, newPassword })).toEqual({
      revoked: 1,
    });
    expect(await codeOf(clientWithToken(t, other.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(await codeOf(api.me.get.query())).toBe('ok');
    const login = (password: string) =>
      codeOf(
        t.client.api.auth.login.mutate({ identifier: account.username, password, device: DEVICE }),
      );
    expect(await login(PASSWORD)).toBe('UNAUTHORIZED');
    expect(await login(newPassword)).toBe('ok');
  });

  it('deleting my account needs my password, removes my data and ends every session', async () => {
    const account = await registerUser(t);
    const api = clientWithToken(t, account.accessToken).api;
    expect(await codeOf(api.me.delete.mutate({ password: 'wrong' }))).toBe('FORBIDDEN');
    await api.me.delete.mutate({ password: PASSWORD });
    const db = t.server.infra.ports.db;
    expect(
      await db.selectFrom('users').select('id').where('id', '=', account.userId).executeTakeFirst(),
    ).toBeUndefined();
    expect(
      await db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', '=', account.userId)
        .executeTakeFirst(),
    ).toBeUndefined();
    expect(await codeOf(api.me.get.query())).toBe('UNAUTHORIZED');
    expect(
      await codeOf(
        t.client.api.auth.login.mutate({
          identifier: account.username,
          password: PASSWORD,
          device: DEVICE,
        }),
      ),
    ).toBe('UNAUTHORIZED');
  });
});
