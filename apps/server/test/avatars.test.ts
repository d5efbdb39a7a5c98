import { readdir } from 'node:fs/promises';
import { request, type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobsOnce } from '@mvp/api';
import { createMemoryTokenStore, errorCodeOf, isMvpError } from '@mvp/sdk';
import { clientWithToken, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { startFakeS3, type FakeS3 } from './helpers/fakeS3';
import { defaultConfig } from '../src/config';
import { startServer, type TestServer } from './helpers/startServer';
import { GIF, IMAGES, JPEG, PNG, png, WEBP } from './helpers/images';

// Small limits: the avatar limit is above the general body limit, so an accepted avatar proves
// the upload route is not held to the general one.
const HTTP_MAX_BODY = 4 * 1024;
const AVATAR_MAX = 32 * 1024;

type Answer = { status: number; headers: Headers; json: Record<string, unknown> };
type ErrorJson = { code: string; message: string; data: Record<string, unknown> };

const avatarPath = (userId: string, ext = '(png|jpg|webp)') =>
  new RegExp(`^/avatars/${userId}/[0-9a-f]{32}\\.${ext}$`);

function suite(label: string, start: () => Promise<{ t: TestServer; countBlobs: CountBlobs }>) {
  describe(`avatars: ${label}`, () => {
    let t: TestServer;
    let countBlobs: CountBlobs;
    beforeAll(async () => {
      ({ t, countBlobs } = await start());
    });
    afterAll(() => t.stop());

    const uploadUrl = () => `${t.server.url}/api/v1/me/avatar`;
    const open = (headers: OutgoingHttpHeaders) => openUpload(t.server.url, headers);
    const auth = (a: Account) => ({ authorization: `Bearer ${a.accessToken}` });

    const answer = async (res: Response): Promise<Answer> => ({
      status: res.status,
      headers: res.headers,
      json: (await res.json()) as Record<string, unknown>,
    });
    const putRaw = async (a: Account | null, body: Uint8Array, contentType: string) =>
      answer(
        await fetch(uploadUrl(), {
          method: 'PUT',
          headers: { 'content-type': contentType, ...(a ? auth(a) : {}) },
          body,
        }),
      );
    const putForm = async (a: Account, bytes: Uint8Array, type: string) => {
      const form = new FormData();
      form.append('caption', 'me');
      form.append('file', new Blob([bytes], { type }), 'me');
      return answer(await fetch(uploadUrl(), { method: 'PUT', headers: auth(a), body: form }));
    };
    const avatarKeyOf = async (userId: string) =>
      (
        await t.server.infra.ports.db
          .selectFrom('users')
          .select('avatar_key')
          .where('id', '=', userId)
          .executeTakeFirst()
      )?.avatar_key;
    const fetchAvatar = (path: string, init?: RequestInit) => fetch(`${t.server.url}${path}`, init);

    /** Uploads one image and answers the account's avatar URL. */
    const withAvatar = async (a: Account, bytes: Uint8Array = PNG) => {
      const res = await putRaw(a, bytes, 'application/octet-stream');
      expect(res.status).toBe(200);
      return res.json.avatarUrl as string;
    };

    it.each(IMAGES)(
      'a raw $name is stored and served byte for byte with cache headers, 304 and HEAD',
      async ({ bytes, contentType, extension }) => {
        const ada = await registerUser(t);
        const bob = await registerUser(t);
        const res = await putRaw(ada, bytes, contentType);
        expect(res.status).toBe(200);
        const url = res.json.avatarUrl as string;
        expect(url).toMatch(avatarPath(ada.userId, extension));
        expect(res.json).toMatchObject({ id: ada.userId, username: ada.username });
        expect((await clientWithToken(t, ada.accessToken).api.me.get.query()).avatarUrl).toBe(url);
        const seen = await clientWithToken(t, bob.accessToken).api.users.get.query({
          id: ada.userId,
        });
        expect(seen.avatarUrl).toBe(url);

        const got = await fetchAvatar(url);
        expect(got.status).toBe(200);
        expect(Buffer.from(await got.arrayBuffer())).toEqual(bytes);
        const etag = got.headers.get('etag')!;
        expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
        expect(Object.fromEntries(got.headers)).toMatchObject({
          'content-type': contentType,
          'content-length': String(bytes.length),
          'cache-control': 'public, max-age=31536000, immutable',
          'x-content-type-options': 'nosniff',
          'content-security-policy': "default-src 'none'",
        });

        const cached = await fetchAvatar(url, { headers: { 'if-none-match': `W/"x", ${etag}` } });
        expect(cached.status).toBe(304);
        expect(cached.headers.get('etag')).toBe(etag);
        expect((await cached.arrayBuffer()).byteLength).toBe(0);
        const stale = await fetchAvatar(url, { headers: { 'if-none-match': '"0000"' } });
        expect(stale.status).toBe(200);
        await stale.arrayBuffer();

        const head = await fetchAvatar(url, { method: 'HEAD' });
        expect(head.status).toBe(200);
        expect(head.headers.get('content-length')).toBe(String(bytes.length));
        expect(head.headers.get('etag')).toBe(etag);
        expect((await head.arrayBuffer()).byteLength).toBe(0);
      },
    );

    it.each(IMAGES)('a $name as multipart field "file" is stored', async ({ bytes, extension }) => {
      const ada = await registerUser(t);
      // The declared part type is ignored: the bytes decide.
      const res = await putForm(ada, bytes, 'application/octet-stream');
      expect(res.status).toBe(200);
      const url = res.json.avatarUrl as string;
      expect(url).toMatch(avatarPath(ada.userId, extension));
      const got = await fetchAvatar(url);
      expect(Buffer.from(await got.arrayBuffer())).toEqual(bytes);
    });

    it('takes an avatar larger than the general body limit, up to its own limit', async () => {
      const ada = await registerUser(t);
      const big = png(AVATAR_MAX - PNG.length - 12);
      expect(big.length).toBe(AVATAR_MAX);
      expect(big.length).toBeGreaterThan(HTTP_MAX_BODY);
      const url = await withAvatar(ada, big);
      expect(Buffer.from(await (await fetchAvatar(url)).arrayBuffer())).toEqual(big);
    });

    it('replacing the avatar deletes the old blob; unknown and malformed paths are 404', async () => {
      const ada = await registerUser(t);
      const first = await withAvatar(ada, PNG);
      const second = await withAvatar(ada, JPEG);
      expect(second).not.toBe(first);
      const gone = await fetchAvatar(first);
      expect(gone.status).toBe(404);
      expect(await gone.json()).toMatchObject({
        code: 'NOT_FOUND',
        data: { appCode: 'NOT_FOUND' },
      });
      expect((await fetchAvatar(second)).status).toBe(200);
      expect(await countBlobs(ada.userId)).toBe(1);
      for (const path of [
        `/avatars/${ada.userId}/${'0'.repeat(32)}.png`,
        `/avatars/${ada.userId}/../${ada.userId}/x.png`,
        `/avatars/${ada.userId}/${second.split('/').pop()!.toUpperCase()}`,
        '/avatars/%2e%2e/secrets.json',
      ]) {
        const res = await fetchAvatar(path);
        expect(res.status, path).toBe(404);
        await res.arrayBuffer();
      }
      const post = await fetchAvatar(second, { method: 'POST', body: 'x' });
      expect(post.status).toBe(405);
      await post.arrayBuffer();
    });

    it('concurrent uploads of one account leave exactly the winning blob', async () => {
      const ada = await registerUser(t);
      const images = [PNG, JPEG, WEBP, PNG, JPEG, WEBP];
      const answers = await Promise.all(
        images.map((bytes) => putRaw(ada, bytes, 'application/octet-stream')),
      );
      // A swap lost twice in a row answers CONFLICT (and deletes its own blob).
      for (const res of answers) expect([200, 409]).toContain(res.status);
      expect(answers.some((res) => res.status === 200)).toBe(true);
      const key = await avatarKeyOf(ada.userId);
      expect(await countBlobs(ada.userId)).toBe(1);
      expect((await fetchAvatar(`/${key}`)).status).toBe(200);
    });

    it('DELETE /api/v1/me/avatar and the SDK remove it, blob and all', async () => {
      const ada = await registerUser(t);
      const url = await withAvatar(ada);
      const res = await fetch(uploadUrl(), { method: 'DELETE', headers: auth(ada) });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: ada.userId, avatarUrl: null });
      expect((await fetchAvatar(url)).status).toBe(404);
      expect(await countBlobs(ada.userId)).toBe(0);
      expect(await avatarKeyOf(ada.userId)).toBeNull();

      const again = await withAvatar(ada, WEBP);
      const client = clientWithToken(t, ada.accessToken);
      expect((await client.avatar.remove()).avatarUrl).toBeNull();
      expect((await fetchAvatar(again)).status).toBe(404);
      // Nothing to remove is fine.
      expect((await client.avatar.remove()).avatarUrl).toBeNull();
      expect(await countBlobs(ada.userId)).toBe(0);
      const noToken = await fetch(uploadUrl(), { method: 'DELETE' });
      expect(noToken.status).toBe(401);
      await noToken.arrayBuffer();
    });

    it('deleting the account deletes its avatar file, even when telling it fails (the bus down)', async () => {
      const ada = await registerUser(t);
      const url = await withAvatar(ada);
      const { bus } = t.server.infra.ports;
      const publish = bus.publish.bind(bus);
      bus.publish = () => Promise.reject(new Error('redis down'));
      try {
        await clientWithToken(t, ada.accessToken).api.me.delete.mutate({ password: PASSWORD });
      } finally {
        bus.publish = publish;
      }
      expect((await fetchAvatar(url)).status).toBe(404);
      expect(await countBlobs(ada.userId)).toBe(0);
    });

    describe('refusals leave nothing behind', () => {
      let ada: Account;
      let keyBefore: string | null | undefined;
      beforeAll(async () => {
        ada = await registerUser(t);
        await withAvatar(ada);
        keyBefore = await avatarKeyOf(ada.userId);
      });
      const unchanged = async () => {
        expect(await avatarKeyOf(ada.userId)).toBe(keyBefore);
        expect(await countBlobs(ada.userId)).toBe(1);
      };
      const refused = (res: Answer, status: number, appCode: string) => {
        expect(res.status).toBe(status);
        expect(res.json).toMatchObject({ data: { appCode, httpStatus: status } });
        expect(typeof (res.json as ErrorJson).data.requestId).toBe('string');
      };

      it('a non-image is UNSUPPORTED_MEDIA_TYPE (415)', async () => {
        const text = Buffer.from('certainly not a picture, whatever the header says\n'.repeat(3));
        refused(await putRaw(ada, text, 'image/png'), 415, 'UNSUPPORTED_MEDIA_TYPE');
        refused(await putRaw(ada, GIF, 'image/png'), 415, 'UNSUPPORTED_MEDIA_TYPE');
        refused(await putRaw(ada, PNG, 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
        refused(await putForm(ada, GIF, 'image/gif'), 415, 'UNSUPPORTED_MEDIA_TYPE');
        await unchanged();
      });

      it('a truncated image is BAD_REQUEST (400)', async () => {
        refused(
          await putRaw(ada, PNG.subarray(0, PNG.length - 5), 'image/png'),
          400,
          'BAD_REQUEST',
        );
        refused(await putForm(ada, JPEG.subarray(0, 70), 'image/jpeg'), 400, 'BAD_REQUEST');
        refused(await putRaw(ada, Buffer.alloc(0), 'image/png'), 400, 'BAD_REQUEST');
        await unchanged();
      });

      it('an oversize image is PAYLOAD_TOO_LARGE (413): declared, chunked and multipart', async () => {
        // Declared over the limit: refused from the headers alone (the body is never sent).
        const declared = open({ ...auth(ada), 'content-type': 'image/png', 'content-length': 5e7 });
        declared.req.flushHeaders();
        const early = await declared.reply;
        refused(early, 413, 'PAYLOAD_TOO_LARGE');
        expect(early.headers.get('connection')).toBe('close');
        declared.req.destroy();

        // No Content-Length: refused once the stream passes the limit, before it ends.
        const chunked = open({ ...auth(ada), 'content-type': 'image/png' });
        chunked.req.write(png(AVATAR_MAX));
        const late = await chunked.reply;
        refused(late, 413, 'PAYLOAD_TOO_LARGE');
        expect(late.headers.get('connection')).toBe('close');
        chunked.req.destroy();

        refused(await putForm(ada, png(AVATAR_MAX), 'image/png'), 413, 'PAYLOAD_TOO_LARGE');
        await unchanged();
      });

      it('no token, a bad token and a revoked session are UNAUTHORIZED (401)', async () => {
        refused(await putRaw(null, PNG, 'image/png'), 401, 'UNAUTHORIZED');
        const forged = { ...ada, accessToken: 'not.a.token' };
        refused(await putRaw(forged, PNG, 'image/png'), 401, 'UNAUTHORIZED');

        const victim = await registerUser(t);
        await clientWithToken(t, victim.accessToken).api.auth.logout.mutate();
        refused(await putRaw(victim, PNG, 'image/png'), 401, 'UNAUTHORIZED');
        expect(await avatarKeyOf(victim.userId)).toBeNull();
        expect(await countBlobs(victim.userId)).toBe(0);
        await unchanged();
      });

      it('other methods on the upload path are 405', async () => {
        for (const method of ['POST', 'PATCH', 'GET']) {
          const res = await fetch(uploadUrl(), {
            method,
            headers: auth(ada),
            ...(method === 'GET' ? {} : { body: PNG }),
          });
          expect(res.status, method).toBe(405);
          await res.arrayBuffer();
        }
        await unchanged();
      });
    });

    it('uploads are limited per account: TOO_MANY_REQUESTS (429) with Retry-After', async () => {
      const ada = await registerUser(t);
      for (let i = 0; i < 20; i++) await withAvatar(ada, i % 2 ? PNG : WEBP);
      const keyBefore = await avatarKeyOf(ada.userId);
      const res = await putRaw(ada, PNG, 'image/png');
      expect(res.status).toBe(429);
      expect(res.json).toMatchObject({ data: { appCode: 'TOO_MANY_REQUESTS' } });
      expect((res.json as ErrorJson).data.retryAfterMs).toBeGreaterThan(0);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await avatarKeyOf(ada.userId)).toBe(keyBefore);
      expect(await countBlobs(ada.userId)).toBe(1);
      // Another account is not affected.
      await withAvatar(await registerUser(t));
    });

    it('a user who blocked me shows no avatar to me', async () => {
      const ada = await registerUser(t);
      const bob = await registerUser(t);
      const eve = await registerUser(t);
      const url = await withAvatar(bob);
      await clientWithToken(t, bob.accessToken).api.blocks.add.mutate({ userId: ada.userId });
      const adaSees = await clientWithToken(t, ada.accessToken).api.users.get.query({
        id: bob.userId,
      });
      expect(adaSees.avatarUrl).toBeNull();
      const eveSees = await clientWithToken(t, eve.accessToken).api.users.get.query({
        id: bob.userId,
      });
      expect(eveSees.avatarUrl).toBe(url);
    });

    it('deleting the account, or the inactivity job, deletes the avatar', async () => {
      const ada = await registerUser(t);
      const url = await withAvatar(ada);
      await clientWithToken(t, ada.accessToken).api.me.delete.mutate({ password: PASSWORD });
      expect((await fetchAvatar(url)).status).toBe(404);
      expect(await countBlobs(ada.userId)).toBe(0);

      const idle = await registerUser(t);
      const idleUrl = await withAvatar(idle);
      await t.server.infra.ports.db
        .updateTable('users')
        .set({ last_active_at: Date.now() - 40 * 24 * 3600 * 1000 })
        .where('id', '=', idle.userId)
        .execute();
      const { settings } = t.server;
      await runJobsOnce(t.server.infra.ports, {
        ...settings,
        auth: { ...settings.auth, deleteInactiveAfterDays: 30 },
      });
      expect(await avatarKeyOf(idle.userId)).toBeUndefined();
      expect((await fetchAvatar(idleUrl)).status).toBe(404);
      expect(await countBlobs(idle.userId)).toBe(0);
    });

    describe('SDK', () => {
      const signedIn = async () => {
        const account = await registerUser(t);
        const client = t.newClient({
          tokenStore: createMemoryTokenStore({
            accessToken: account.accessToken,
            refreshToken: account.refreshToken,
            expiresAt: Date.now() + 3600_000,
            sessionId: account.sessionId,
            user: { id: account.userId, uniqueId: account.uniqueId, username: account.username },
          }),
        });
        return { account, client };
      };

      it('uploads a Uint8Array and a Blob, and resolves URLs', async () => {
        const { account, client } = await signedIn();
        const fromBytes = await client.avatar.upload(new Uint8Array(JPEG), {
          contentType: 'image/jpeg',
        });
        expect(fromBytes.avatarUrl).toMatch(avatarPath(account.userId, 'jpg'));
        const fromBlob = await client.avatar.upload(new Blob([WEBP], { type: 'image/webp' }));
        expect(fromBlob.avatarUrl).toMatch(avatarPath(account.userId, 'webp'));
        const absolute = client.avatar.url(fromBlob.avatarUrl)!;
        expect(absolute).toBe(`${t.server.url}${fromBlob.avatarUrl}`);
        expect(Buffer.from(await (await fetch(absolute)).arrayBuffer())).toEqual(WEBP);
        expect(client.avatar.url(null)).toBeNull();
        const fromArrayBuffer = await client.avatar.upload(new Uint8Array(PNG).buffer);
        expect(fromArrayBuffer.avatarUrl).toMatch(avatarPath(account.userId, 'png'));
        expect(await countBlobs(account.userId)).toBe(1);
      });

      it('maps refusals to typed errors', async () => {
        const { client } = await signedIn();
        const error = await client.avatar
          .upload(GIF, { contentType: 'image/png' })
          .catch((e: unknown) => e);
        expect(errorCodeOf(error)).toBe('UNSUPPORTED_MEDIA_TYPE');
        expect(isMvpError(error) && error.data?.httpStatus).toBe(415);
        const signedOut = t.newClient();
        expect(errorCodeOf(await signedOut.avatar.upload(PNG).catch((e: unknown) => e))).toBe(
          'UNAUTHORIZED',
        );
      });

      it('a refused access token is refreshed once and the upload sent again', async () => {
        const { account, client } = await signedIn();
        const session = (await client.auth.session())!;
        const store = createMemoryTokenStore({ ...session, accessToken: 'not.a.token' });
        const stale = t.newClient({ tokenStore: store });
        const me = await stale.avatar.upload(PNG);
        expect(me.avatarUrl).toMatch(avatarPath(account.userId, 'png'));
        expect((await store.load())?.accessToken).not.toBe('not.a.token');
      });
    });
  });
}

type CountBlobs = (userId: string) => Promise<number>;

/** Starts an upload over node:http, leaving the body to the caller; `reply` is the answer. */
function openUpload(
  baseUrl: string,
  headers: OutgoingHttpHeaders,
): { req: ClientRequest; reply: Promise<Answer> } {
  const target = new URL('/api/v1/me/avatar', baseUrl);
  const req = request(target, { method: 'PUT', headers, agent: false });
  const reply = new Promise<Answer>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (const [name, value] of Object.entries(res.headers)) h.set(name, String(value));
        resolve({
          status: res.statusCode ?? 0,
          headers: h,
          json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        });
      });
    });
  });
  return { req, reply };
}

/** Files (bytes and metadata) the local store holds for this user. */
async function countLocalFiles(dataDir: string, userId: string): Promise<number> {
  try {
    return (await readdir(join(dataDir, 'blobs', 'avatars', userId))).length;
  } catch {
    return 0;
  }
}

suite(`local folder (${backendLabel})`, async () => {
  const t = await startServer({ httpMaxBodyBytes: HTTP_MAX_BODY, avatarMaxBytes: AVATAR_MAX });
  const { dataDir } = t.server.config;
  // Bytes and metadata sidecar: two files per stored avatar.
  return { t, countBlobs: async (userId) => (await countLocalFiles(dataDir, userId)) / 2 };
});

let fakeS3: FakeS3;
afterAll(() => fakeS3?.close());

suite(`S3 (${backendLabel})`, async () => {
  fakeS3 = await startFakeS3('mvp-avatars');
  const t = await startServer({
    httpMaxBodyBytes: HTTP_MAX_BODY,
    avatarMaxBytes: AVATAR_MAX,
    s3: {
      endpoint: fakeS3.url,
      region: 'us-east-1',
      bucket: fakeS3.bucket,
      accessKeyId: 'AKIDTEST',
      secretAccessKey: 'secret-test',
      forcePathStyle: true,
    },
  });
  const { dataDir } = t.server.config;
  return {
    t,
    countBlobs: async (userId) => {
      // Nothing may land on disk when S3 is configured.
      expect(await countLocalFiles(dataDir, userId)).toBe(0);
      return fakeS3.keys().filter((key) => key.startsWith(`avatars/${userId}/`)).length;
    },
  };
});

describe(`avatar fetches are limited per client address (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      // Behind one proxy, X-Forwarded-For names the client: two addresses from one test.
      trustProxy: 1,
      httpLimits: {
        ...defaultConfig().httpLimits,
        avatarGetIp: { points: 3, durationSeconds: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  const fetchAs = (
    ip: string,
    path: string,
    init: RequestInit & { headers?: Record<string, string> } = {},
  ) =>
    fetch(`${t.server.url}${path}`, {
      ...init,
      headers: { ...init.headers, 'x-forwarded-for': ip },
    });

  it('GET and HEAD, found or not, count; over the limit is 429 with Retry-After', async () => {
    const ada = await registerUser(t);
    const upload = await fetchAs('203.0.113.1', '/api/v1/me/avatar', {
      method: 'PUT',
      headers: { authorization: `Bearer ${ada.accessToken}`, 'content-type': 'image/png' },
      body: PNG,
    });
    expect(upload.status).toBe(200);
    // The upload is not a fetch: it spends none of the budget below.
    const { avatarUrl } = (await upload.json()) as { avatarUrl: string };
    expect(avatarUrl).toMatch(avatarPath(ada.userId, 'png'));

    const got = await fetchAs('203.0.113.1', avatarUrl);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(Buffer.from(PNG));
    expect((await fetchAs('203.0.113.1', avatarUrl, { method: 'HEAD' })).status).toBe(200);
    const missing = await fetchAs('203.0.113.1', `/avatars/${ada.userId}/${'0'.repeat(32)}.png`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();

    const over = await fetchAs('203.0.113.1', avatarUrl);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await over.json()) as ErrorJson;
    expect(body).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      data: { appCode: 'TOO_MANY_REQUESTS', httpStatus: 429 },
    });
    expect(body.data.retryAfterMs).toBeGreaterThan(0);
    expect(over.headers.get('cache-control')).toBeNull();

    const other = await fetchAs('203.0.113.2', avatarUrl);
    expect(other.status).toBe(200);
    await other.arrayBuffer();
    expect((await fetchAs('203.0.113.1', '/readyz')).status).toBe(200);
    expect((await fetchAs('203.0.113.1', '/api/v1/system/info')).status).toBe(200);
  });
});
