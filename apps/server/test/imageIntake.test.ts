import { EventEmitter, once } from 'node:events';
import {
  createServer,
  request,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImageUpload, type ImageIntakeResult } from '../src/http/imageIntake';
import { GIF, IMAGES, JPEG, PNG, WEBP, jpegDeclaring, png } from './helpers/images';

const MAX = 1024;

// --- A real HTTP server around readImageUpload, answering the result as JSON ---

type Reply = {
  status: number;
  json: { reason?: string; contentType?: string; extension?: string; body?: string };
};

const results = new EventEmitter();
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((req, res) => {
    const max = Number(req.headers['x-max-bytes'] ?? MAX);
    void readImageUpload(req, max).then((result) => {
      results.emit('result', result);
      const json = result.ok
        ? {
            contentType: result.contentType,
            extension: result.extension,
            body: Buffer.from(result.body).toString('base64'),
          }
        : { reason: result.reason };
      res.writeHead(result.ok ? 200 : result.status, {
        'content-type': 'application/json',
        ...(result.ok ? {} : { connection: 'close' }),
      });
      res.end(JSON.stringify(json));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Starts an upload, leaving the body to the caller; `reply` settles when the answer arrives. */
function open(headers: OutgoingHttpHeaders): { req: ClientRequest; reply: Promise<Reply> } {
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/avatar',
    headers,
    agent: false,
  });
  const reply = new Promise<Reply>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Reply['json'],
        });
      });
    });
  });
  return { req, reply };
}

function post(headers: OutgoingHttpHeaders, body: Uint8Array): Promise<Reply> {
  const { req, reply } = open({ 'content-length': body.length, ...headers });
  req.end(body);
  return reply;
}

type Part = { name: string; filename?: string; type?: string; data: Uint8Array | string };

function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----mvp-test-${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const filename = part.filename === undefined ? '' : `; filename="${part.filename}"`;
    const type = part.type === undefined ? '' : `Content-Type: ${part.type}\r\n`;
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"${filename}\r\n${type}\r\n`,
      ),
      Buffer.from(part.data),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

function postForm(parts: Part[], headers: OutgoingHttpHeaders = {}): Promise<Reply> {
  const form = multipart(parts);
  return post({ 'content-type': form.contentType, ...headers }, form.body);
}

const refused = (status: number, reason: string) => ({ status, json: { reason } });

describe('readImageUpload: accepted images', () => {
  it.each(IMAGES)('takes a raw $name body', async ({ bytes, contentType, extension }) => {
    for (const declared of [contentType, 'application/octet-stream']) {
      const reply = await post({ 'content-type': declared }, bytes);
      expect(reply).toEqual({
        status: 200,
        json: { contentType, extension, body: bytes.toString('base64') },
      });
    }
  });

  it.each(IMAGES)('takes a $name as the multipart field "file"', async (image) => {
    const reply = await postForm([
      { name: 'caption', data: 'me at the beach' },
      {
        name: 'file',
        filename: `me.${image.extension}`,
        type: image.contentType,
        data: image.bytes,
      },
    ]);
    expect(reply).toEqual({
      status: 200,
      json: {
        contentType: image.contentType,
        extension: image.extension,
        body: image.bytes.toString('base64'),
      },
    });
  });

  it('believes the bytes, not the declared type', async () => {
    const reply = await post({ 'content-type': 'image/png' }, JPEG);
    expect(reply.json).toMatchObject({ contentType: 'image/jpeg', extension: 'jpg' });
    const form = await postForm([
      { name: 'file', filename: 'a.png', type: 'image/png', data: WEBP },
    ]);
    expect(form.json).toMatchObject({ contentType: 'image/webp', extension: 'webp' });
  });

  it('takes a body of exactly maxBytes, raw and multipart', async () => {
    const limit = { 'x-max-bytes': PNG.length };
    expect((await post({ 'content-type': 'image/png', ...limit }, PNG)).status).toBe(200);
    const form = await postForm([{ name: 'file', filename: 'a.png', data: PNG }], limit);
    expect(form.status).toBe(200);
  });
});

describe('readImageUpload: wrong kind of file', () => {
  it('refuses a GIF declared as image/png, raw and multipart', async () => {
    expect(await post({ 'content-type': 'image/png' }, GIF)).toEqual(
      refused(415, 'not a PNG, JPEG or WebP image'),
    );
    expect(
      await postForm([{ name: 'file', filename: 'a.png', type: 'image/png', data: GIF }]),
    ).toEqual(refused(415, 'not a PNG, JPEG or WebP image'));
  });

  it('refuses text declared as image/png', async () => {
    const text = Buffer.from('hello, this is certainly not a picture\n'.repeat(4));
    expect(await post({ 'content-type': 'image/png' }, text)).toEqual(
      refused(415, 'not a PNG, JPEG or WebP image'),
    );
  });

  it('refuses other declared types before reading', async () => {
    for (const declared of ['image/gif', 'text/plain', 'application/json']) {
      const reply = await post({ 'content-type': declared }, PNG);
      expect(reply.status).toBe(415);
    }
    const { req, reply } = open({ 'content-length': PNG.length });
    req.end(PNG);
    expect((await reply).status).toBe(415);
  });
});

describe('readImageUpload: size', () => {
  it('refuses a body one byte over the limit, raw and multipart', async () => {
    const limit = { 'x-max-bytes': PNG.length - 1 };
    expect(await post({ 'content-type': 'image/png', ...limit }, PNG)).toEqual(
      refused(413, `image larger than ${PNG.length - 1} bytes`),
    );
    const form = await postForm([{ name: 'file', filename: 'a.png', data: PNG }], limit);
    expect(form.status).toBe(413);
  });

  it('refuses at once when Content-Length is over the limit, before any body arrives', async () => {
    for (const type of ['image/png', multipart([]).contentType]) {
      const { req, reply } = open({ 'content-type': type, 'content-length': 50_000_000 });
      req.flushHeaders();
      // The body is never sent: only an answer from the headers alone can settle this.
      expect((await reply).status).toBe(413);
      req.destroy();
    }
  });

  it('refuses a chunked upload as soon as it passes the limit, before it ends', async () => {
    const { req, reply } = open({ 'content-type': 'application/octet-stream' });
    req.write(Buffer.concat([PNG, Buffer.alloc(MAX)]));
    expect(await reply).toEqual(refused(413, `image larger than ${MAX} bytes`));
    req.destroy();
  });

  it('refuses a chunked multipart upload as soon as the file passes the limit', async () => {
    const form = multipart([{ name: 'file', filename: 'big.png', data: Buffer.alloc(MAX + 1) }]);
    const { req, reply } = open({ 'content-type': form.contentType });
    // Everything but the closing boundary: the form never ends unless the server reads on.
    req.write(form.body.subarray(0, form.body.length - 20));
    expect((await reply).status).toBe(413);
    req.destroy();
  });

  it.each([
    ['raw', { 'content-type': 'application/octet-stream' }, [] as Buffer[]],
    [
      'multipart',
      { 'content-type': 'multipart/form-data; boundary=xyz' },
      [
        Buffer.from(
          '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n',
        ),
      ],
    ],
  ])('stops pulling a %s stream soon after the limit', async (_name, headers, head) => {
    let pulled = 0;
    const body = new Readable({
      read() {
        pulled += 1;
        this.push(head[pulled - 1] ?? (pulled > 10_000 ? null : Buffer.alloc(1024, 0x41)));
      },
    });
    const req = Object.assign(body, { headers, complete: false }) as unknown as IncomingMessage;
    const result = await readImageUpload(req, 4 * 1024);
    expect(result).toMatchObject({ ok: false, status: 413 });
    // 10 MB were on offer; only the limit plus the stream's read-ahead may have been taken.
    expect(pulled).toBeLessThan(64);
  });
});

describe('readImageUpload: declared dimensions', () => {
  it('refuses an image declaring more than 4096 pixels on a side (a decompression bomb)', async () => {
    const bombs = [
      png(0, { width: 60_000, height: 60_000 }),
      png(0, { width: 4097, height: 1 }),
      jpegDeclaring(1, 4097),
    ];
    for (const bomb of bombs)
      expect(await post({ 'content-type': 'image/png' }, bomb)).toEqual(
        refused(413, 'larger than 4096 × 4096 pixels'),
      );
    // At the limit it is taken.
    const largest = png(0, { width: 4096, height: 4096 });
    expect((await post({ 'content-type': 'image/png' }, largest)).status).toBe(200);
    expect((await post({ 'content-type': 'image/jpeg' }, jpegDeclaring(4096, 3072))).status).toBe(
      200,
    );
  });
});

describe('readImageUpload: incomplete uploads', () => {
  it('refuses a PNG cut in half', async () => {
    const half = PNG.subarray(0, Math.floor(PNG.length / 2));
    expect(await post({ 'content-type': 'image/png' }, half)).toEqual(
      refused(400, 'truncated image'),
    );
    const form = await postForm([{ name: 'file', filename: 'a.png', data: half }]);
    expect(form).toEqual(refused(400, 'truncated image'));
  });

  it.each([
    ['a PNG without its IEND chunk', PNG.subarray(0, PNG.length - 12)],
    ['a PNG missing its last byte', PNG.subarray(0, PNG.length - 1)],
    ['a bare PNG signature', PNG.subarray(0, 8)],
    ['a JPEG without EOI', JPEG.subarray(0, JPEG.length - 2)],
    ['a JPEG cut in half', JPEG.subarray(0, 70)],
    ['a WebP shorter than its RIFF size', WEBP.subarray(0, WEBP.length - 2)],
    ['a WebP header alone', WEBP.subarray(0, 10)],
  ])('refuses %s', async (_name, bytes) => {
    expect(await post({ 'content-type': 'application/octet-stream' }, bytes)).toEqual(
      refused(400, 'truncated image'),
    );
  });

  it('refuses an empty body, raw and multipart', async () => {
    expect(await post({ 'content-type': 'image/png' }, Buffer.alloc(0))).toEqual(
      refused(400, 'truncated image'),
    );
    expect(await postForm([{ name: 'file', filename: 'a.png', data: '' }])).toEqual(
      refused(400, 'truncated image'),
    );
  });

  it('refuses a client that aborts mid-upload, raw and multipart', async () => {
    const form = multipart([{ name: 'file', filename: 'a.png', data: PNG }]);
    for (const [type, body] of [
      ['image/png', PNG],
      [form.contentType, form.body],
    ] as const) {
      const started = once(server, 'request');
      const result = once(results, 'result');
      const { req, reply } = open({ 'content-type': type, 'content-length': body.length });
      reply.catch(() => undefined);
      req.write(body.subarray(0, 40));
      await started;
      req.destroy();
      const [answer] = (await result) as [ImageIntakeResult];
      expect(answer).toEqual({ ok: false, status: 400, reason: 'upload aborted' });
    }
  });
});

describe('readImageUpload: form shape', () => {
  it('refuses a form without a "file" field', async () => {
    const missing = refused(400, 'missing file field "file"');
    expect(await postForm([{ name: 'caption', data: 'hi' }])).toEqual(missing);
    expect(await postForm([{ name: 'avatar', filename: 'a.png', data: PNG }])).toEqual(missing);
    // A text field named "file" is not a file.
    expect(await postForm([{ name: 'file', data: PNG.toString('latin1') }])).toEqual(missing);
  });

  it('refuses two files', async () => {
    const two = refused(400, 'send exactly one file');
    const file = { name: 'file', filename: 'a.png', data: PNG };
    expect(await postForm([file, { ...file, filename: 'b.png' }])).toEqual(two);
    expect(await postForm([file, { ...file, name: 'other' }])).toEqual(two);
  });

  it('refuses a malformed form', async () => {
    const noBoundary = await post({ 'content-type': 'multipart/form-data' }, PNG);
    expect(noBoundary.status).toBe(400);
    const cut = multipart([{ name: 'file', filename: 'a.png', data: PNG }]);
    const unfinished = await post({ 'content-type': cut.contentType }, cut.body.subarray(0, 100));
    expect(unfinished.status).toBe(400);
  });
});
