import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '@mvp/api';
import { createLocalBlobStore } from '../src/adapters/blob/localBlobStore';
import { createS3BlobStore } from '../src/adapters/blob/s3BlobStore';

const BUCKET = 'avatars-test';

type SeenRequest = {
  method: string;
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  metaEtag: string | undefined;
};

/** Just enough of S3 for the adapter: path-style PUT/GET/DELETE of one object. */
function startFakeS3(): Promise<{ url: string; seen: SeenRequest[]; server: Server }> {
  const objects = new Map<string, { body: Buffer; contentType: string; metaEtag: string }>();
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const method = req.method ?? '';
      const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://s3').pathname);
      const header = (name: string) => req.headers[name] as string | undefined;
      seen.push({
        method,
        path: pathname,
        contentType: header('content-type'),
        authorization: header('authorization'),
        metaEtag: header('x-amz-meta-etag'),
      });
      const key = pathname.slice(`/${BUCKET}/`.length);
      const object = objects.get(key);
      if (!pathname.startsWith(`/${BUCKET}/`)) {
        res.writeHead(404).end('<Error><Code>NoSuchBucket</Code></Error>');
      } else if (method === 'PUT') {
        const body = Buffer.concat(chunks);
        objects.set(key, {
          body,
          contentType: header('content-type') ?? 'binary/octet-stream',
          metaEtag: header('x-amz-meta-etag') ?? '',
        });
        res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` }).end();
      } else if (method === 'GET' && object) {
        res.writeHead(200, {
          'content-type': object.contentType,
          'content-length': object.body.length,
          'x-amz-meta-etag': object.metaEtag,
        });
        res.end(object.body);
      } else if (method === 'GET') {
        res.writeHead(404, { 'content-type': 'application/xml' });
        res.end('<Error><Code>NoSuchKey</Code></Error>');
      } else if (method === 'DELETE') {
        objects.delete(key);
        res.writeHead(204).end();
      } else {
        res.writeHead(405).end();
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, seen, server });
    });
  });
}

const etagOf = (body: Uint8Array) =>
  `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;

const bytes = (...values: number[]) => new Uint8Array(values);

const BAD_KEYS = [
  '',
  '/avatars/u1/a.png',
  '../a.png',
  'avatars/../../etc/passwd.png',
  'avatars/u1/../../x.png',
  'avatars/..png',
  'Avatars/u1/a.png',
  '_avatars/a.png',
  'avatars/u1/a.gif',
  'avatars/u1/a',
  'avatars/u1/a.png.json',
  'avatars/u1/a.png/b',
  'avatars\\u1\\a.png',
  'avatars/u1/a b.png',
  'avatars/u1/a.png\n',
  `avatars/${'x'.repeat(200)}.png`,
];

let fakeS3: Awaited<ReturnType<typeof startFakeS3>>;
let root: string;

beforeAll(async () => {
  fakeS3 = await startFakeS3();
  root = await mkdtemp(path.join(tmpdir(), 'mvp-blobs-'));
});

afterAll(async () => {
  fakeS3.server.closeAllConnections();
  await new Promise((resolve) => fakeS3.server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

const impls: { name: string; create: () => BlobStore }[] = [
  { name: 'local', create: () => createLocalBlobStore(path.join(root, 'store')) },
  {
    name: 's3',
    create: () =>
      createS3BlobStore({
        endpoint: fakeS3.url,
        region: 'us-east-1',
        bucket: BUCKET,
        accessKeyId: 'AKIDTEST',
        secretAccessKey: 'secret-test',
        forcePathStyle: true,
      }),
  },
];

describe.each(impls)('$name BlobStore', ({ create }) => {
  let store: BlobStore;
  beforeEach(() => {
    store = create();
  });

  it('stores, reads back, overwrites and deletes', async () => {
    const key = `avatars/u-${Math.random().toString(36).slice(2)}/first.png`;
    const first = bytes(1, 2, 3, 4, 5);
    const put = await store.put(key, first, 'image/png');
    expect(put).toEqual({ key, contentType: 'image/png', size: 5, etag: etagOf(first) });
    expect(put.etag).toMatch(/^"[0-9a-f]{32}"$/);

    const got = await store.get(key);
    expect(got).not.toBeNull();
    expect(Buffer.from(got!.body)).toEqual(Buffer.from(first));
    expect(got).toMatchObject({ contentType: 'image/png', size: 5, etag: put.etag });

    const second = bytes(9, 8, 7);
    const overwritten = await store.put(key, second, 'image/webp');
    expect(overwritten.etag).not.toBe(put.etag);
    const again = await store.get(key);
    expect(Buffer.from(again!.body)).toEqual(Buffer.from(second));
    expect(again).toMatchObject({ contentType: 'image/webp', size: 3, etag: etagOf(second) });

    await store.delete(key);
    expect(await store.get(key)).toBeNull();
    await expect(store.delete(key)).resolves.toBeUndefined();
  });

  it('answers null for a key never written', async () => {
    expect(await store.get('avatars/nobody/missing.jpg')).toBeNull();
    await expect(store.delete('avatars/nobody/missing.jpeg')).resolves.toBeUndefined();
  });

  it('stores an empty body', async () => {
    const put = await store.put('avatars/u2/empty.webp', bytes(), 'image/webp');
    expect(put.size).toBe(0);
    const got = await store.get('avatars/u2/empty.webp');
    expect(got).toMatchObject({ size: 0, etag: etagOf(bytes()) });
  });

  it.each(BAD_KEYS)('refuses the key %j for put, get and delete', async (key) => {
    await expect(store.put(key, bytes(1), 'image/png')).rejects.toThrow(/blob key/);
    await expect(store.get(key)).rejects.toThrow(/blob key/);
    await expect(store.delete(key)).rejects.toThrow(/blob key/);
  });
});

describe('local BlobStore on disk', () => {
  it('keeps bytes in <key> and metadata in <key>.json, with no temp files left', async () => {
    const dir = path.join(root, 'disk');
    const store = createLocalBlobStore(dir);
    const body = bytes(0x89, 0x50, 0x4e, 0x47);
    await store.put('avatars/u3/a1.png', body, 'image/png');
    await store.put('avatars/u3/a1.png', body, 'image/png');

    expect(await readFile(path.join(dir, 'avatars/u3/a1.png'))).toEqual(Buffer.from(body));
    const sidecar = JSON.parse(await readFile(path.join(dir, 'avatars/u3/a1.png.json'), 'utf8'));
    expect(sidecar).toEqual({ contentType: 'image/png', etag: etagOf(body), size: 4 });
    expect((await readdir(path.join(dir, 'avatars/u3'))).sort()).toEqual(['a1.png', 'a1.png.json']);

    await store.delete('avatars/u3/a1.png');
    expect(await readdir(path.join(dir, 'avatars/u3'))).toEqual([]);
  });

  it('never writes outside its root for traversal attempts', async () => {
    const dir = path.join(root, 'jail', 'inner');
    const store = createLocalBlobStore(dir);
    for (const key of ['../escape.png', 'a/../../escape.png', '/tmp/escape.png', '..png']) {
      await expect(store.put(key, bytes(1), 'image/png')).rejects.toThrow(/blob key/);
    }
    expect(existsSync(path.join(root, 'jail', 'escape.png'))).toBe(false);
    expect(existsSync(path.join(root, 'escape.png'))).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('S3 BlobStore on the wire', () => {
  it('sends signed path-style requests with content type and etag metadata', async () => {
    const store = impls[1]!.create();
    const key = 'avatars/u4/wire.jpg';
    const body = bytes(0xff, 0xd8, 0xff, 0xd9);
    const from = fakeS3.seen.length;

    const put = await store.put(key, body, 'image/jpeg');
    await store.get(key);
    await store.delete(key);
    expect(await store.get(key)).toBeNull();

    const seen = fakeS3.seen.slice(from);
    expect(seen.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PUT /${BUCKET}/${key}`,
      `GET /${BUCKET}/${key}`,
      `DELETE /${BUCKET}/${key}`,
      `GET /${BUCKET}/${key}`,
    ]);
    expect(seen[0]).toMatchObject({ contentType: 'image/jpeg', metaEtag: put.etag });
    for (const request of seen) {
      expect(request.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/,
      );
    }
  });

  it('sends nothing for a refused key', async () => {
    const store = impls[1]!.create();
    const from = fakeS3.seen.length;
    await expect(store.put('../x.png', bytes(1), 'image/png')).rejects.toThrow(/blob key/);
    await expect(store.get('avatars/x.gif')).rejects.toThrow(/blob key/);
    expect(fakeS3.seen.length).toBe(from);
  });
});
