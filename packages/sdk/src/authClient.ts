import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import type { AuthSession } from './authSession';
import { OUTLIVE_PAGE } from './outlivePage';
import type { StoredSession } from './tokenStore';
import type { RouterInputs, RouterOutputs } from './types';

type AuthIn = RouterInputs['auth'];
type AuthOut = RouterOutputs['auth'];
// login answers the same union as register.
type SignInAnswer = AuthOut['register'] | AuthOut['otp']['verify'];

/** `client.auth`: every sign-in flow, with the tokens kept in the client's TokenStore. */
export type MvpAuth = {
  /**
   * Creates an account. Answers tokens (kept), or `otp_required` when a phone must confirm. Once
   * tokens are kept it stops `client.sync` and drops the WebSocket, then answers; a failure of
   * that goes to `sync.onError`, and the sign-in still answers (every sign-in alike).
   */
  register(input: AuthIn['register']): Promise<AuthOut['register']>;
  /**
   * Signs in with username, phone or unique id. Same answers as `register`. Shows the device
   * cookies kept from earlier sign-ins on this device, so a stranger failing on the username
   * cannot lock it out.
   */
  login(input: AuthIn['login']): Promise<AuthOut['login']>;
  /** Sends a new code for a pending challenge (`resendAfter` says when the next may go). */
  sendOtp(input: AuthIn['otp']['send']): Promise<AuthOut['otp']['send']>;
  /** Answers a challenge with its code; the tokens are kept. */
  verifyOtp(input: AuthIn['otp']['verify']): Promise<AuthOut['otp']['verify']>;
  /**
   * Ends the session on the server and on this device, then calls `onSessionEnded('signed_out')`.
   * The device is signed out even when this rejects: a rejection only says the server could not
   * be told (offline), so the session there ends when it expires or is revoked elsewhere.
   * `outlivePage`: the page is going away (`pagehide`); the request is sent so that it still
   * reaches the server after it (`fetch` `keepalive`), with the access token as stored: a refresh
   * would not finish, so with an expired one the server is not told. The server ends this
   * device's calls.
   */
  logout(options?: { outlivePage?: boolean }): Promise<void>;
  /** Exchanges the refresh token now; null when signed out (or the session just ended). */
  refresh(): Promise<StoredSession | null>;
  /** The stored session, or null. */
  session(): Promise<StoredSession | null>;
  isSignedIn(): Promise<boolean>;
};

export type SignInHooks = {
  /** Runs once new tokens are kept, before the sign-in call answers. */
  onSignedIn(): Promise<void>;
  /** Told when `onSignedIn` fails: the sign-in still answers (it happened). */
  onSignedInError(error: unknown): void;
};

/** `raw` is a client without the auth link: sign-in calls carry no token and never retry. */
export function createAuthClient(
  raw: TRPCClient<AppRouter>,
  session: AuthSession,
  hooks?: SignInHooks,
): MvpAuth {
  // Returns the server's answer unchanged, so apps see exactly what the API documents.
  const keep = async <T extends SignInAnswer>(answer: T): Promise<T> => {
    const known: SignInAnswer = answer;
    if (known.status !== 'ok') return answer;
    await session.start(known);
    // Signed in from here: the tokens are kept and will be used. A rejection now would tell the
    // app the sign-in failed while it holds a session, so the follow-up's failure goes elsewhere.
    try {
      await hooks?.onSignedIn();
    } catch (error) {
      hooks?.onSignedInError(error);
    }
    return answer;
  };
  return {
    register: async (input) => keep(await raw.auth.register.mutate(input)),
    // The app may name the cookies itself; otherwise those this device kept are shown.
    login: async (input) =>
      keep(
        await raw.auth.login.mutate({
          ...input,
          deviceCookies: input.deviceCookies ?? (await session.deviceCookies()),
        }),
      ),
    sendOtp: (input) => raw.auth.otp.send.mutate(input),
    verifyOtp: async (input) => keep(await raw.auth.otp.verify.mutate(input)),
    logout: (options) =>
      session.signOut(
        (token) =>
          raw.auth.logout.mutate(undefined, {
            context: { token, ...(options?.outlivePage ? { [OUTLIVE_PAGE]: true } : {}) },
          }),
        { refresh: !options?.outlivePage },
      ),
    refresh: () => session.refresh(),
    session: () => session.current(),
    isSignedIn: async () => (await session.current()) !== null,
  };
}
