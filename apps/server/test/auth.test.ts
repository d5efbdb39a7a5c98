import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodeOf } from '@mvp/sdk';
import {
  clientWithToken,
  DEVICE,
  freshPhone,
  freshUsername,
  lastOtp,
  PASSWORD,
  registerByPhone,
  registerUser,
  startPhoneRegistration,
} from './helpers/accounts';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { codeOf } from './helpers/errors';

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e as { message: string; data: Record<string, unknown> },
  );

const threePerHour = { points: 3, durationSeconds: 3600 };
/** A test server whose auth limits are the generous test ones but for these. */
const withLimits = (limits: Partial<ReturnType<typeof testAuthConfig>['limits']>) =>
  startServer({}, { auth: { limits: { ...testAuthConfig().limits, ...limits } } });

describe(`auth: register, OTP, login (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const userRow = (username: string) =>
    t.server.infra.ports.db
      .selectFrom('users')
      .selectAll()
      .where('username', '=', username)
      .executeTakeFirst();

  it('registers with a username and signs in at once', async () => {
    const username = freshUsername();
    const res = await t.client.api.auth.register.mutate({
      username,
      password: PASSWORD,
      displayName: 'Ada',
      device: DEVICE,
    });
    expect(res.status).toBe('ok');
    if (res.status !== 'ok') return;
    expect(res.user.username).toBe(username);
    expect(res.user.uniqueId).toMatch(/^\d{8}$/);
    expect(Date.parse(res.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    const me = await clientWithToken(t, res.accessToken).api.me.get.query();
    expect(me).toMatchObject({ id: res.user.id, username, displayName: 'Ada', phone: null });
  });

  it('registers with a phone only after the SMS code comes back', async () => {
    const phone = freshPhone();
    const res = await t.client.api.auth.register.mutate({
      phone,
      password: PASSWORD,
      displayName: 'Bo',
      device: DEVICE,
    });
    expect(res.status).toBe('otp_required');
    if (res.status !== 'otp_required') return;
    expect(res.sentTo).toMatch(/^\+49•+\d\d$/);
    const index = t.server.infra.ports.cipher.blindIndex(phone, 'phone');
    const before = await t.server.infra.ports.db
      .selectFrom('users')
      .select('id')
      .where('phone_index', '=', index)
      .executeTakeFirst();
    expect(before).toBeUndefined(); // nothing stored before verification

    const tokens = await t.client.api.auth.otp.verify.mutate({
      challengeId: res.challengeId,
      code: lastOtp(t.logs, phone),
    });
    const me = await clientWithToken(t, tokens.accessToken).api.me.get.query();
    expect(me.phone).toBe(phone);

    // The same number again: the caller learns nothing until the phone's owner enters the code.
    const again = await t.client.api.auth.register.mutate({
      phone,
      password: PASSWORD,
      displayName: 'Eve',
      device: DEVICE,
    });
    expect(again.status).toBe('otp_required');
    if (again.status !== 'otp_required') return;
    const error = await failure(
      t.client.api.auth.otp.verify.mutate({
        challengeId: again.challengeId,
        code: lastOtp(t.logs, phone),
      }),
    );
    expect(errorCodeOf(error)).toBe('CONFLICT');
  });

  it.each([
    ['a bad username', { username: 'No Spaces!' }, 'username'],
    ['a short password', { password: 'short' }, 'password'],
    ['no username and no phone', { username: undefined }, 'username'],
    ['an invalid phone', { username: undefined, phone: '+1 555' }, 'phone'],
    ['a bad device', { device: { name: '', platform: 'toaster' } }, 'device.name'],
  ])(
    'refuses %s with BAD_REQUEST naming the field, writing nothing',
    async (_label, change, path) => {
      const username = freshUsername();
      const input = { username, password: PASSWORD, displayName: 'X', device: DEVICE, ...change };
      const error = await failure(t.client.api.auth.register.mutate(input as never));
      expect(errorCodeOf(error)).toBe('BAD_REQUEST');
      expect((error!.data.issues as { path: string }[]).map((i) => i.path)).toContain(path);
      expect(await userRow(username)).toBeUndefined();
    },
  );

  it('refuses one of the most common passwords, writing nothing', async () => {
    const username = freshUsername();
    const error = await failure(
      t.client.api.auth.register.mutate({
        username,
        password: 'password123',
        displayName: 'X',
        device: DEVICE,
      }),
    );
    expect(errorCodeOf(error)).toBe('BAD_REQUEST');
    expect(error!.message).toMatch(/common/);
    expect(await userRow(username)).toBeUndefined();
  });

  it('usernames are unique case-insensitively', async () => {
    const account = await registerUser(t);
    const error = await failure(
      t.client.api.auth.register.mutate({
        username: account.username.toUpperCase(),
        password: PASSWORD,
        displayName: 'X',
        device: DEVICE,
      }),
    );
    expect(errorCodeOf(error)).toBe('CONFLICT');
  });

  it('logs in by username, unique id and phone; a wrong password and an unknown account answer alike', async () => {
    const account = await registerUser(t);
    for (const identifier of [account.username, account.username.toUpperCase(), account.uniqueId]) {
      const res = await t.client.api.auth.login.mutate({
        identifier,
        password: PASSWORD,
        device: DEVICE,
      });
      expect(res.status).toBe('ok');
    }
    const wrong = await failure(
      t.client.api.auth.login.mutate({
        identifier: account.username,
        password: 'not the password',
        device: DEVICE,
      }),
    );
    const unknown = await failure(
      t.client.api.auth.login.mutate({
        identifier: freshUsername(),
        password: 'not the password',
        device: DEVICE,
      }),
    );
    expect(errorCodeOf(wrong)).toBe('UNAUTHORIZED');
    expect(errorCodeOf(unknown)).toBe('UNAUTHORIZED');
    expect(wrong!.message).toBe(unknown!.message);

    const phone = freshPhone();
    await registerByPhone(t, phone, 'P');
    // Typed with spaces, the number still finds the account: the blind index is over E.164.
    const spaced = `${phone.slice(0, 3)} ${phone.slice(3, 6)} ${phone.slice(6)}`;
    expect(
      (
        await t.client.api.auth.login.mutate({
          identifier: spaced,
          password: PASSWORD,
          device: DEVICE,
        })
      ).status,
    ).toBe('ok');
  });

  it('an account can require a code after the password', async () => {
    const phone = freshPhone();
    const tokens = await registerByPhone(t, phone, 'Q');
    await clientWithToken(t, tokens.accessToken).api.me.update.mutate({ requireOtpLogin: true });

    const step1 = await t.client.api.auth.login.mutate({
      identifier: phone,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(step1.status).toBe('otp_required');
    if (step1.status !== 'otp_required') return;
    const step2 = await t.client.api.auth.otp.verify.mutate({
      challengeId: step1.challengeId,
      code: lastOtp(t.logs, phone),
    });
    expect(step2.user.id).toBe(tokens.user.id);

    // Off again only with the password: a stolen access token cannot strip the second factor.
    const me = clientWithToken(t, step2.accessToken).api.me;
    expect(await codeOf(me.update.mutate({ requireOtpLogin: false }))).toBe('FORBIDDEN');
    expect(
      await codeOf(me.update.mutate({ requireOtpLogin: false, currentPassword: 'not it 123' })),
    ).toBe('FORBIDDEN');
    expect((await me.get.query()).requireOtpLogin).toBe(true);
    await me.update.mutate({ requireOtpLogin: false, currentPassword: PASSWORD });
    const direct = await t.client.api.auth.login.mutate({
      identifier: phone,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(direct.status).toBe('ok');
  });

  it('OTP brute force: after the allowed tries the code is dead, even the right one', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'R');
    const right = lastOtp(t.logs, phone);
    const wrong = right === '000000' ? '111111' : '000000';
    const max = t.server.config.auth.otp.maxAttempts;
    for (let i = 0; i < max; i++) {
      const e = await failure(
        t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code: wrong }),
      );
      expect(errorCodeOf(e)).toBe('UNAUTHORIZED');
    }
    const late = await failure(
      t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code: right }),
    );
    expect(['NOT_FOUND', 'TOO_MANY_REQUESTS']).toContain(errorCodeOf(late));
    const index = t.server.infra.ports.cipher.blindIndex(phone, 'phone');
    expect(
      await t.server.infra.ports.db
        .selectFrom('users')
        .select('id')
        .where('phone_index', '=', index)
        .executeTakeFirst(),
    ).toBeUndefined();
  });

  it('a code is single use and a malformed one is BAD_REQUEST', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'S');
    const bad = await failure(
      t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code: '12ab' }),
    );
    expect(errorCodeOf(bad)).toBe('BAD_REQUEST');
    const code = lastOtp(t.logs, phone);
    await t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code });
    const replay = await failure(
      t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code }),
    );
    expect(errorCodeOf(replay)).toBe('NOT_FOUND');
  });

  it('of several verifies with the right code at once, one signs in', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'S');
    const code = lastOtp(t.logs, phone);
    const verify = () =>
      t.client.api.auth.otp.verify
        .mutate({ challengeId: pending.challengeId, code })
        .then(() => 'ok', errorCodeOf);
    const outcomes = await Promise.all([verify(), verify(), verify(), verify()]);
    expect(outcomes.sort()).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'ok']);
  });
});

describe(`auth: malformed input everywhere, secrets nowhere (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ logLevel: 'debug' });
  });
  afterAll(() => t.stop());

  it('every procedure answers malformed input with BAD_REQUEST', async () => {
    const account = await registerUser(t);
    const api = clientWithToken(t, account.accessToken).api;
    const calls: [string, () => Promise<unknown>][] = [
      [
        'auth.login without device',
        () => t.client.api.auth.login.mutate({ identifier: 'x', password: 'y' } as never),
      ],
      [
        'auth.login empty identifier',
        () => t.client.api.auth.login.mutate({ identifier: ' ', password: 'y', device: DEVICE }),
      ],
      [
        'auth.login bad device cookie',
        () =>
          t.client.api.auth.login.mutate({
            identifier: account.username,
            password: PASSWORD,
            device: DEVICE,
            deviceCookies: ['1.2.3'],
          }),
      ],
      [
        'auth.login too many device cookies',
        () =>
          t.client.api.auth.login.mutate({
            identifier: account.username,
            password: PASSWORD,
            device: DEVICE,
            deviceCookies: Array.from({ length: 9 }, () => account.deviceCookie),
          }),
      ],
      [
        'auth.otp.send bad challenge',
        () => t.client.api.auth.otp.send.mutate({ challengeId: '../../etc' }),
      ],
      [
        'auth.otp.verify bad challenge',
        () => t.client.api.auth.otp.verify.mutate({ challengeId: 'x', code: '123456' }),
      ],
      [
        'auth.refresh wrong type',
        () => t.client.api.auth.refresh.mutate({ refreshToken: 42 } as never),
      ],
      ['me.update wrong type', () => api.me.update.mutate({ displayName: 7 } as never)],
      ['me.update bad username', () => api.me.update.mutate({ username: 'x' })],
      [
        'me.changePassword short',
        () => api.me.changePassword.mutate({ currentPassword: PASSWORD, newPassword: 'short' }),
      ],
      ['me.delete empty', () => api.me.delete.mutate({ password: '' })],
      ['sessions.revoke not a uuid', () => api.sessions.revoke.mutate({ id: '1 or 1=1' })],
    ];
    for (const [label, call] of calls) {
      expect(errorCodeOf(await failure(call())), label).toBe('BAD_REQUEST');
    }
    expect((await api.me.get.query()).username).toBe(account.username); // nothing changed
  });

  it("logs hold no password, token or code (except the development sender's own line)", async () => {
    const account = await registerUser(t);
    const refreshed = await t.client.api.auth.refresh.mutate({
      refreshToken: account.refreshToken,
    });
    await failure(
      t.client.api.auth.login.mutate({
        identifier: account.username,
        password: 'wrong password here',
        device: DEVICE,
      }),
    );
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'L');
    const code = lastOtp(t.logs, phone);
    await failure(
      t.client.api.auth.otp.verify.mutate({
        challengeId: pending.challengeId,
        code: code === '999999' ? '000000' : '999999',
      }),
    );
    const tokens = await t.client.api.auth.otp.verify.mutate({
      challengeId: pending.challengeId,
      code,
    });
    await fetch(`${t.server.url}/api/v1/me`, {
      headers: { authorization: `Bearer ${tokens.accessToken}` },
    });

    const lines = t.logs
      .text()
      .split('\n')
      .filter((l) => !l.includes('"msg":"otp issued"'));
    const text = lines.join('\n');
    const secrets = [
      PASSWORD,
      'wrong password here',
      account.accessToken,
      account.refreshToken,
      refreshed.accessToken,
      refreshed.refreshToken,
      tokens.accessToken,
      tokens.refreshToken,
      pending.challengeId,
    ];
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toMatch(new RegExp(`"${code}"`));
    expect(lines.length).toBeGreaterThan(10); // the suite did log: debug lines are there
  });
});

describe(`auth: limits and backoff (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer(
      {},
      {
        auth: {
          loginBackoff: { after: 2, maxSeconds: 600 },
          otp: { ...testAuthConfig().otp, resendSeconds: 60 },
        },
      },
    );
  });
  afterAll(() => t.stop());

  it('failed logins earn a growing wait (TOO_MANY_REQUESTS with retryAfterMs), even for the right password', async () => {
    const account = await registerUser(t);
    const attempt = (password: string) =>
      failure(
        t.client.api.auth.login.mutate({ identifier: account.username, password, device: DEVICE }),
      );
    expect(errorCodeOf(await attempt('wrong one'))).toBe('UNAUTHORIZED');
    expect(errorCodeOf(await attempt('wrong two'))).toBe('UNAUTHORIZED');
    const blocked = await attempt(PASSWORD);
    expect(errorCodeOf(blocked)).toBe('TOO_MANY_REQUESTS');
    expect(blocked!.data.retryAfterMs).toBeGreaterThan(0);
    expect(blocked!.data.retryAfterMs).toBeLessThanOrEqual(1_000);
  });

  it('an unknown account backs off exactly like a real one', async () => {
    const ghost = freshUsername('ghost');
    for (let i = 0; i < 2; i++) {
      expect(
        errorCodeOf(
          await failure(
            t.client.api.auth.login.mutate({ identifier: ghost, password: 'x', device: DEVICE }),
          ),
        ),
      ).toBe('UNAUTHORIZED');
    }
    const blocked = await failure(
      t.client.api.auth.login.mutate({ identifier: ghost, password: 'x', device: DEVICE }),
    );
    expect(errorCodeOf(blocked)).toBe('TOO_MANY_REQUESTS');
  });

  it('asking for another code before the cooldown is TOO_MANY_REQUESTS with the wait', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'T');
    const early = await failure(
      t.client.api.auth.otp.send.mutate({ challengeId: pending.challengeId }),
    );
    expect(errorCodeOf(early)).toBe('TOO_MANY_REQUESTS');
    expect(early!.data.retryAfterMs).toBeGreaterThan(50_000);
  });
});

describe(`auth: another code for the same challenge (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer(); // no resend cooldown
  });
  afterAll(() => t.stop());

  it('the new code works and the old one is dead; the tries made carry over', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'R');
    const first = lastOtp(t.logs, phone);
    const wrong = first === '000000' ? '000001' : '000000';
    const verify = (code: string) =>
      failure(t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code }));
    expect(errorCodeOf(await verify(wrong))).toBe('UNAUTHORIZED');
    await t.client.api.auth.otp.send.mutate({ challengeId: pending.challengeId });
    const second = lastOtp(t.logs, phone);
    if (second !== first) expect(errorCodeOf(await verify(first))).toBe('UNAUTHORIZED');
    expect(await verify(second)).toBeNull();
  });

  it('a code sent while its challenge is used (or spent) does not bring it back', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'R');
    const code = lastOtp(t.logs, phone);
    const sender = t.server.infra.ports.otpSender;
    const send = sender.send.bind(sender);
    // The right code is verified while the new one is on its way.
    sender.send = async (message) => {
      await t.client.api.auth.otp.verify.mutate({ challengeId: pending.challengeId, code });
      return send(message);
    };
    try {
      const resent = await failure(
        t.client.api.auth.otp.send.mutate({ challengeId: pending.challengeId }),
      );
      expect(errorCodeOf(resent)).toBe('NOT_FOUND');
    } finally {
      sender.send = send;
    }
    const again = await failure(
      t.client.api.auth.otp.verify.mutate({
        challengeId: pending.challengeId,
        code: lastOtp(t.logs, phone),
      }),
    );
    expect(errorCodeOf(again)).toBe('NOT_FOUND'); // gone for good: no second session
  });
});

describe(`auth: the deployment's SMS bill is capped (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await withLimits({ otpSendAll: { points: 2, durationSeconds: 3600 } });
  });
  afterAll(() => t.stop());

  it('codes to any numbers stop at the cap; premium-rate numbers get none, and spend nothing', async () => {
    const premium = await failure(startPhoneRegistration(t, '+44 909 879 0000', 'Pump'));
    expect(errorCodeOf(premium)).toBe('BAD_REQUEST');
    await startPhoneRegistration(t, freshPhone(), 'One');
    await startPhoneRegistration(t, freshPhone(), 'Two');
    const third = await failure(startPhoneRegistration(t, freshPhone(), 'Three'));
    expect(errorCodeOf(third)).toBe('TOO_MANY_REQUESTS');
  });
});

describe(`auth: a stranger spending a number's SMS budget (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await withLimits({ otpSendPhone: { points: 2, durationSeconds: 3600 } });
  });
  afterAll(() => t.stop());

  it('registrations naming my number do not spend the codes my sign-in needs', async () => {
    const phone = freshPhone();
    const { accessToken } = await registerByPhone(t, phone, 'Owner');
    await clientWithToken(t, accessToken).api.me.update.mutate({ requireOtpLogin: true });
    // Anyone can start a registration with any number, and each one texts it a code.
    await startPhoneRegistration(t, phone, 'Stranger');
    expect(errorCodeOf(await failure(startPhoneRegistration(t, phone, 'Stranger')))).toBe(
      'TOO_MANY_REQUESTS',
    );
    const login = await t.client.api.auth.login.mutate({
      identifier: phone,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(login.status).toBe('otp_required');
  });
});

describe(`auth: a stranger spending an identifier's login budget (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await withLimits({ loginAccount: threePerHour, loginDevice: threePerHour });
  });
  afterAll(() => t.stop());

  const attempt = (identifier: string, password: string, deviceCookies?: string[]) =>
    failure(
      t.client.api.auth.login.mutate({ identifier, password, device: DEVICE, deviceCookies }),
    );

  /** Spends the identifier's whole budget on wrong passwords, as anyone knowing it can. */
  async function lockOut(identifier: string) {
    for (let i = 0; i < 3; i++) {
      expect(errorCodeOf(await attempt(identifier, 'guess'))).toBe('UNAUTHORIZED');
    }
    expect(errorCodeOf(await attempt(identifier, PASSWORD))).toBe('TOO_MANY_REQUESTS');
  }

  it("the owner's device, which kept its cookie past sign-out, still signs in; devices without one wait", async () => {
    const owner = t.newClient();
    const username = freshUsername();
    await owner.auth.register({ username, password: PASSWORD, displayName: 'O', device: DEVICE });
    await owner.auth.logout();
    await lockOut(username);

    expect(
      await owner.auth.login({ identifier: username, password: PASSWORD, device: DEVICE }),
    ).toMatchObject({ status: 'ok' });
    const newDevice = t.newClient();
    const refused = await failure(
      newDevice.auth.login({ identifier: username, password: PASSWORD, device: DEVICE }),
    );
    expect(errorCodeOf(refused)).toBe('TOO_MANY_REQUESTS');
  });

  it("another account's, a forged or a reused-elsewhere cookie earns nothing", async () => {
    const victim = await registerUser(t);
    const attacker = await registerUser(t);
    await lockOut(victim.username);
    const [expiry, nonce, tag] = victim.deviceCookie.split('.') as [string, string, string];
    const forged = `${expiry}.${nonce}.${tag.slice(0, -1)}${tag.endsWith('0') ? '1' : '0'}`;
    const later = `${Number(expiry) + 1}.${nonce}.${tag}`;
    for (const cookie of [attacker.deviceCookie, forged, later]) {
      expect(errorCodeOf(await attempt(victim.username, PASSWORD, [cookie]))).toBe(
        'TOO_MANY_REQUESTS',
      );
    }
    // The attacker's own cookie names the attacker's account, so it is only good there.
    expect(errorCodeOf(await attempt(attacker.username, 'guess', [attacker.deviceCookie]))).toBe(
      'UNAUTHORIZED',
    );
    expect(
      await attempt(victim.username, PASSWORD, [attacker.deviceCookie, victim.deviceCookie]),
    ).toBeNull();
  });

  it('a cookie has its own budget: guessing with a stolen one stops there', async () => {
    const victim = await registerUser(t);
    for (let i = 0; i < 3; i++) {
      expect(errorCodeOf(await attempt(victim.username, 'guess', [victim.deviceCookie]))).toBe(
        'UNAUTHORIZED',
      );
    }
    expect(errorCodeOf(await attempt(victim.username, PASSWORD, [victim.deviceCookie]))).toBe(
      'TOO_MANY_REQUESTS',
    );
    // The identifier's own budget was not touched by those.
    expect(await attempt(victim.username, PASSWORD)).toBeNull();
  });

  it('the cookies every refresh hands out share one budget: a thief who kept many guesses no more', async () => {
    const victim = await registerUser(t);
    const first = await t.client.api.auth.refresh.mutate({ refreshToken: victim.refreshToken });
    const second = await t.client.api.auth.refresh.mutate({ refreshToken: first.refreshToken });
    const cookies = [victim.deviceCookie, first.deviceCookie, second.deviceCookie];
    expect(new Set(cookies).size).toBe(3);
    expect(errorCodeOf(await attempt(victim.username, 'guess', [cookies[0]!]))).toBe(
      'UNAUTHORIZED',
    );
    expect(errorCodeOf(await attempt(victim.username, 'guess', [cookies[0]!]))).toBe(
      'UNAUTHORIZED',
    );
    expect(errorCodeOf(await attempt(victim.username, 'guess', [cookies[1]!]))).toBe(
      'UNAUTHORIZED',
    );
    // Three for the account's cookies together, though this cookie's own budget is untouched.
    expect(errorCodeOf(await attempt(victim.username, PASSWORD, [cookies[2]!]))).toBe(
      'TOO_MANY_REQUESTS',
    );
  });

  it('a cookie ends with the password it was issued under', async () => {
    const victim = await registerUser(t);
    const NEW_PASSWORD = `${PASSWORD}-renewed`;
    await clientWithToken(t, victim.accessToken).api.me.changePassword.mutate({
      currentPassword: PASSWORD,
      newPassword: NEW_PASSWORD,
    });
    await lockOut(victim.username);
    // A thief's old cookie is now worth what no cookie is: the identifier's spent budget.
    expect(errorCodeOf(await attempt(victim.username, NEW_PASSWORD, [victim.deviceCookie]))).toBe(
      'TOO_MANY_REQUESTS',
    );
  });
});

describe(`auth: register and login storms are limited (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await withLimits({ registerIp: threePerHour, loginIp: threePerHour });
  });
  afterAll(() => t.stop());

  it('the fourth registration from one address in the window is refused, with Retry-After over REST', async () => {
    for (let i = 0; i < 3; i++) await registerUser(t);
    const res = await fetch(`${t.server.url}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        username: freshUsername(),
        password: PASSWORD,
        displayName: 'X',
        device: DEVICE,
      }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('the fourth login attempt from one address is refused with retryAfterMs', async () => {
    for (let i = 0; i < 3; i++) {
      await failure(
        t.client.api.auth.login.mutate({
          identifier: freshUsername(),
          password: 'x',
          device: DEVICE,
        }),
      );
    }
    const error = await failure(
      t.client.api.auth.login.mutate({
        identifier: freshUsername(),
        password: 'x',
        device: DEVICE,
      }),
    );
    expect(errorCodeOf(error)).toBe('TOO_MANY_REQUESTS');
    expect(error!.data.retryAfterMs).toBeGreaterThan(0);
  });
});
