import { TRPCClientError, type TRPCClient } from '@trpc/client';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import type { AppRouter } from '@mvp/api';
import type { AuthSession } from './authSession';
import type { MvpErrorData } from './errors';
import type { RouterOutputs } from './types';

type Me = RouterOutputs['me']['get'];

/** What `upload` sends; the server reads the real type from the bytes. */
export type AvatarContentType =
  'image/png' | 'image/jpeg' | 'image/webp' | 'application/octet-stream';

export type AvatarUploadOptions = {
  /** Defaults to the Blob's own type when it has one, else `application/octet-stream`. */
  contentType?: AvatarContentType;
  signal?: AbortSignal;
};

/** `client.avatar`: PNG, JPEG or WebP up to the server's limit (2 MiB by default). */
export type MvpAvatar = {
  /**
   * Makes these bytes my avatar; answers my account with the new `avatarUrl`. Fails like any
   * call (`errorCodeOf`): `UNSUPPORTED_MEDIA_TYPE` (not a PNG, JPEG or WebP), `PAYLOAD_TOO_LARGE`,
   * `BAD_REQUEST` (truncated), `TOO_MANY_REQUESTS` (`retryAfterMs`), `UNAUTHORIZED`.
   */
  upload(data: Blob | ArrayBuffer | Uint8Array, options?: AvatarUploadOptions): Promise<Me>;
  /** Removes my avatar (no avatar is fine); answers my account. */
  remove(): Promise<Me>;
  /** The absolute URL of an `avatarUrl` (a path on the server), for an `<img src>`; null stays. */
  url(path: string | null): string | null;
};

export type AvatarClientDeps = {
  baseUrl: string;
  fetch: typeof fetch | undefined;
  api: TRPCClient<AppRouter>;
  token: () => Promise<string | null>;
  /** Absent when the app manages tokens itself (`getToken`): then no refresh and no retry. */
  session: Pick<AuthSession, 'recover'> | null;
};

export const AVATAR_UPLOAD_PATH = '/api/v1/me/avatar';

const JSON_RPC_CODES: Record<string, number> = TRPC_ERROR_CODES_BY_KEY;

function isErrorBody(value: unknown): value is { message: string; data: MvpErrorData } {
  if (typeof value !== 'object' || value === null) return false;
  const { message, data } = value as { message?: unknown; data?: unknown };
  return (
    typeof message === 'string' &&
    typeof data === 'object' &&
    data !== null &&
    typeof (data as { appCode?: unknown }).appCode === 'string'
  );
}

/**
 * The server's REST error as the same TRPCClientError every other call throws, so `errorCodeOf`
 * and `error.data` work alike. An answer that is not ours (a proxy's 502 page) has no `data`.
 */
async function errorFrom(response: Response): Promise<TRPCClientError<AppRouter>> {
  const body: unknown = await response.json().catch(() => undefined);
  if (!isErrorBody(body)) {
    return new TRPCClientError(`Avatar upload failed with HTTP ${response.status}`);
  }
  const code = JSON_RPC_CODES[body.data.code] ?? TRPC_ERROR_CODES_BY_KEY.INTERNAL_SERVER_ERROR;
  return TRPCClientError.from<AppRouter>({
    error: { code, message: body.message, data: body.data },
  });
}

function resolveContentType(
  data: Blob | ArrayBuffer | Uint8Array,
  given: AvatarContentType | undefined,
): string {
  if (given) return given;
  const own = typeof Blob !== 'undefined' && data instanceof Blob ? data.type : '';
  return own || 'application/octet-stream';
}

export function createAvatarClient(deps: AvatarClientDeps): MvpAvatar {
  const fetchImpl = (...args: Parameters<typeof fetch>) =>
    (deps.fetch ?? globalThis.fetch)(...args);

  const send = async (
    body: Blob | ArrayBuffer | Uint8Array,
    contentType: string,
    token: string | null,
    signal: AbortSignal | undefined,
  ): Promise<Response> => {
    try {
      return await fetchImpl(`${deps.baseUrl}${AVATAR_UPLOAD_PATH}`, {
        method: 'PUT',
        headers: {
          'content-type': contentType,
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        // Every accepted shape is a valid fetch body in browsers, Node and React Native.
        body,
        signal,
      });
    } catch (error) {
      // Offline, aborted: the same error type a query would fail with.
      throw TRPCClientError.from<AppRouter>(
        error instanceof Error ? error : new Error(String(error)),
      );
    }
  };

  return {
    async upload(data, options = {}) {
      const contentType = resolveContentType(data, options.contentType);
      let token = await deps.token();
      let response = await send(data, contentType, token, options.signal);
      // Like authRetryLink: a rejected token is refreshed (single-flight) and the upload sent
      // once more; the bytes are in memory, so sending them again is safe.
      if (response.status === 401 && token && deps.session) {
        if (await deps.session.recover(token)) {
          await response.body?.cancel().catch(() => undefined);
          token = await deps.token();
          response = await send(data, contentType, token, options.signal);
        }
      }
      if (!response.ok) throw await errorFrom(response);
      return (await response.json()) as Me;
    },
    remove: () => deps.api.me.deleteAvatar.mutate(),
    // The server's paths are relative to where it is mounted (tRPC is at `${baseUrl}/trpc` too).
    url: (path) => {
      if (path === null || /^https?:\/\//i.test(path)) return path;
      return `${deps.baseUrl}${path.startsWith('/') ? '' : '/'}${path}`;
    },
  };
}
