import { randomBytes } from 'node:crypto';
import type { CapturedLogs, TestServer } from './startServer';

export const PASSWORD = 'correct horse battery staple 42';
export const DEVICE = { name: 'Test runner', platform: 'node' as const };

/** A username no other test (or earlier run on a shared database) has used. */
export const freshUsername = (prefix = 'u') => `${prefix}_${randomBytes(6).toString('hex')}`;

/** A valid, unused-looking German mobile number (+49 15x…). */
export const freshPhone = () => `+49151${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;

/** The development OTP sender's log line for this phone: the last code sent to it. */
export function lastOtp(logs: CapturedLogs, phone: string): string {
  const line = [...logs.lines].reverse().find((l) => l.msg === 'otp issued' && l.to === phone);
  if (!line) throw new Error(`no otp issued to ${phone}`);
  return String(line.code);
}

export type Account = {
  username: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  userId: string;
  uniqueId: string;
  deviceCookie: string;
};

export async function registerUser(t: TestServer, username = freshUsername()): Promise<Account> {
  const res = await t.client.api.auth.register.mutate({
    username,
    password: PASSWORD,
    displayName: 'Test User',
    device: DEVICE,
  });
  if (res.status !== 'ok') throw new Error('expected tokens');
  return {
    username,
    accessToken: res.accessToken,
    refreshToken: res.refreshToken,
    sessionId: res.sessionId,
    userId: res.user.id,
    uniqueId: res.user.uniqueId,
    deviceCookie: res.deviceCookie,
  };
}

/** Registers a phone number: the server answers with an SMS challenge (sent to the log here). */
export async function startPhoneRegistration(
  t: TestServer,
  phone: string,
  displayName = 'Phone User',
) {
  const res = await t.client.api.auth.register.mutate({
    phone,
    password: PASSWORD,
    displayName,
    device: DEVICE,
  });
  if (res.status !== 'otp_required') throw new Error('expected an SMS challenge');
  return res;
}

/** A phone registration carried through: the SMS code from the log verified; answers the tokens. */
export async function registerByPhone(t: TestServer, phone: string, displayName?: string) {
  const pending = await startPhoneRegistration(t, phone, displayName);
  return t.client.api.auth.otp.verify.mutate({
    challengeId: pending.challengeId,
    code: lastOtp(t.logs, phone),
  });
}

/** A client that sends this bearer token (no refresh logic: tests see raw server answers). */
export function clientWithToken(t: TestServer, token: string) {
  return t.newClient({ getToken: () => token });
}

export async function countRows(
  t: TestServer,
  table: 'users' | 'sessions' | 'devices' | 'refresh_tokens',
) {
  const row = await t.server.infra.ports.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The device behind a token's session (a login is one session and one device). */
export async function currentDeviceId(t: TestServer, token: string): Promise<string> {
  const { sessions } = await clientWithToken(t, token).api.sessions.list.query();
  return sessions.find((s) => s.current)!.device.id;
}

/** The same user signed in again: a second device with its own session; answers its token. */
export async function signInOnAnotherDevice(
  t: TestServer,
  account: Account,
  name = 'Second device',
): Promise<string> {
  const res = await t.client.api.auth.login.mutate({
    identifier: account.username,
    password: PASSWORD,
    device: { ...DEVICE, name },
  });
  if (res.status !== 'ok') throw new Error('expected tokens');
  return res.accessToken;
}

/** Contacts both ways: a request, answered by a request back. */
export async function befriend(t: TestServer, a: Account, b: Account): Promise<void> {
  // `b` asks and `a`'s request back accepts: `a` (often a group's owner befriending many) makes
  // no new request, which the server limits per account.
  await clientWithToken(t, b.accessToken).api.contacts.request.mutate({ userId: a.userId });
  await clientWithToken(t, a.accessToken).api.contacts.request.mutate({ userId: b.userId });
}
