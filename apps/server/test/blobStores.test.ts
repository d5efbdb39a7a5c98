import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '@mvp/api';
import { createLocalBlobStore } from '../src/adapters/blob/localBlobStore';
import { createS3BlobStore } from '../src/adapters/blob/s3BlobStore';
import { startFakeS3, type FakeS3 } from './helpers/fakeS3';

const BUCKET = 'avatars-test';

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

let fakeS3: FakeS3;
let root: string;

beforeAll(async () => {
  fakeS3 = await startFakeS3(BUCKET);
  root = await mkdtemp(path.join(tmpdir(), 'mvp-blobs-'));
});

afterAll(async () => {
  await fakeS3.close();
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
