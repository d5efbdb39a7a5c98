import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type SeenRequest = {
  method: string;
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  metaEtag: string | undefined;
};

export type FakeS3 = {
  url: string;
  bucket: string;
  seen: SeenRequest[];
  /** How many objects the bucket holds now. */
  size(): number;
  keys(): string[];
  server: Server;
  close(): Promise<void>;
};

/** Just enough of S3 for the adapter: path-style PUT/GET/DELETE of one object, in memory. */
export function startFakeS3(bucket = 'avatars-test'): Promise<FakeS3> {
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
      const key = pathname.slice(`/${bucket}/`.length);
      const object = objects.get(key);
      if (!pathname.startsWith(`/${bucket}/`)) {
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
      resolve({
        url: `http://127.0.0.1:${port}`,
        bucket,
        seen,
        size: () => objects.size,
        keys: () => [...objects.keys()],
        server,
        close: async () => {
          server.closeAllConnections();
          await new Promise((done) => server.close(done));
        },
      });
    });
  });
}
