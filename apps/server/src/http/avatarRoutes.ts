import type { IncomingMessage, ServerResponse } from 'node:http';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import {
  AppError,
  requireAuth,
  setAvatar,
  setConversationAvatar,
  spendAvatarUpload,
  spendBudgets,
  type AvatarImage,
  type BlobStore,
  type Context,
  type RateLimiter,
  type RateLimitRule,
} from '@mvp/api';
import type { TAppErrorCode, TErrorData } from '@mvp/contracts';
import { readImageUpload } from './imageIntake';
import { REST_PREFIX } from './openapi';

export const AVATAR_UPLOAD_PATH = `${REST_PREFIX}/me/avatar`;
/** A group's or channel's picture: `PUT /api/v1/conversations/<id>/avatar`. */
const CONVERSATION_AVATAR_PATH = new RegExp(
  `^${REST_PREFIX}/conversations/([0-9a-f-]{36})/avatar$`,
);

/** What an upload is for: my account, or a conversation I administer. */
type ApplyImage = (ctx: Context, userId: string, image: AvatarImage) => Promise<unknown>;

/** Exactly the keys avatar.service makes (`avatars/<userId>/<32 hex>.<ext>`); nothing else. */
const SERVE_PATH = /^\/avatars\/[a-z0-9-]{1,64}\/[0-9a-f]{32}\.(?:png|jpg|webp)$/;
const SERVED_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);

const INTAKE_CODES: Record<400 | 413 | 415, TAppErrorCode> = {
  400: 'BAD_REQUEST',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

export type SendError = (
  res: ServerResponse,
  status: number,
  appCode: TAppErrorCode,
  message: string,
  requestId: string,
  extra?: Pick<TErrorData, 'retryAfterMs'>,
) => void;

export type AvatarRouteDeps = {
  blobs: BlobStore;
  avatarMaxBytes: number;
  contextFor: (req: IncomingMessage, requestId: string) => Promise<Context>;
  sendJson: (res: ServerResponse, status: number, body: unknown) => void;
  sendError: SendError;
  limiter: RateLimiter;
  /** Per client address, whether or not the avatar exists: guessing keys spends it too. */
  serveLimit: RateLimitRule;
  clientIp: (req: IncomingMessage) => string;
};

/** Whether any `If-None-Match` entry (weak or strong, or `*`) names this ETag. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}

/**
 * `PUT /api/v1/me/avatar` and `PUT /api/v1/conversations/<id>/avatar` (uploads) and
 * `GET`/`HEAD /avatars/<owner id>/<file>` (serving). They live
 * outside tRPC because tRPC carries JSON and an image is bytes; the upload still authenticates
 * and spends budgets through the same functions as authedProcedure. Answers false for requests
 * that are not its own (including `DELETE /api/v1/me/avatar`, which the REST shim serves).
 */
export function createAvatarRoutes(deps: AvatarRouteDeps) {
  /**
   * A refusal may come before the body was read (auth, limits, a declared size over the limit):
   * closing the connection spares reading the rest of an upload only to throw it away.
   */
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    status: number,
    appCode: TAppErrorCode,
    message: string,
    retryAfterMs?: number,
  ): void => {
    if (!req.complete) res.setHeader('connection', 'close');
    if (retryAfterMs !== undefined) {
      res.setHeader('retry-after', String(Math.ceil(retryAfterMs / 1000)));
    }
    deps.sendError(res, status, appCode, message, requestId, { retryAfterMs });
  };

  const upload = async (
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    apply: ApplyImage,
  ): Promise<void> => {
    try {
      const ctx = await deps.contextFor(req, requestId);
      // Cheap checks first: nothing of the body is read for a caller who may not upload.
      await spendBudgets(ctx);
      const { userId } = await requireAuth(ctx);
      await spendAvatarUpload(ctx, userId);
      const image = await readImageUpload(req, deps.avatarMaxBytes);
      if (!image.ok) {
        ctx.log.debug({ event: 'avatar_refused', status: image.status }, image.reason);
        refuse(req, res, requestId, image.status, INTAKE_CODES[image.status], image.reason);
        return;
      }
      deps.sendJson(res, 200, await apply(ctx, userId, image));
    } catch (err) {
      // Anything but a typed refusal is a 500 from the caller's catch-all (logged there).
      if (!(err instanceof AppError)) throw err;
      const status = getHTTPStatusCodeFromError(err);
      refuse(req, res, requestId, status, err.appCode, err.message, err.retryAfterMs);
    }
  };

  // No auth: <img> cannot send a bearer token. The key is unguessable and changes with every
  // upload, and profiles hide it from whoever the owner blocked.
  const serve = async (
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    requestId: string,
  ): Promise<void> => {
    const decision = await deps.limiter.consume(deps.serveLimit, deps.clientIp(req));
    if (!decision.allowed) {
      refuse(
        req,
        res,
        requestId,
        429,
        'TOO_MANY_REQUESTS',
        'Too many requests',
        decision.retryAfterMs,
      );
      return;
    }
    const blob = SERVE_PATH.test(pathname) ? await deps.blobs.get(pathname.slice(1)) : null;
    if (!blob) {
      deps.sendError(res, 404, 'NOT_FOUND', 'No such avatar', requestId);
      return;
    }
    res.setHeader('etag', blob.etag);
    res.setHeader('cache-control', 'public, max-age=31536000, immutable');
    res.setHeader('x-content-type-options', 'nosniff');
    // Opened directly, the response can run nothing and load nothing.
    res.setHeader('content-security-policy', "default-src 'none'");
    const ifNoneMatch = req.headers['if-none-match'];
    if (etagMatches(ifNoneMatch, blob.etag)) {
      res.statusCode = 304;
      res.end();
      return;
    }
    res.statusCode = 200;
    // Only what the upload sniffed is ever stored; anything else is served as inert bytes.
    const type = SERVED_TYPES.has(blob.contentType) ? blob.contentType : 'application/octet-stream';
    res.setHeader('content-type', type);
    res.setHeader('content-length', String(blob.size));
    res.end(req.method === 'HEAD' ? undefined : blob.body);
  };

  const notAllowed = (
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    allow: string,
  ): void => {
    res.setHeader('allow', allow);
    refuse(req, res, requestId, 405, 'BAD_REQUEST', 'Method not allowed');
  };

  return async function handleAvatarRequest(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    requestId: string,
  ): Promise<boolean> {
    if (pathname === AVATAR_UPLOAD_PATH) {
      if (req.method === 'DELETE') return false;
      if (req.method === 'PUT') await upload(req, res, requestId, setAvatar);
      else notAllowed(req, res, requestId, 'PUT, DELETE');
      return true;
    }
    const conversationId = CONVERSATION_AVATAR_PATH.exec(pathname)?.[1];
    if (conversationId) {
      if (req.method === 'DELETE') return false;
      if (req.method === 'PUT') {
        await upload(req, res, requestId, (ctx, userId, image) =>
          setConversationAvatar(ctx, userId, conversationId, image),
        );
      } else notAllowed(req, res, requestId, 'PUT, DELETE');
      return true;
    }
    if (pathname.startsWith('/avatars/')) {
      if (req.method === 'GET' || req.method === 'HEAD') await serve(req, res, pathname, requestId);
      else notAllowed(req, res, requestId, 'GET, HEAD');
      return true;
    }
    return false;
  };
}
