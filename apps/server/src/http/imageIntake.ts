import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { fileTypeFromBuffer } from 'file-type';
import { imageSize } from 'image-size';

export type ImageIntakeResult =
  | {
      ok: true;
      body: Uint8Array;
      contentType: 'image/png' | 'image/jpeg' | 'image/webp';
      extension: 'png' | 'jpg' | 'webp';
    }
  | { ok: false; status: 400 | 413 | 415; reason: string };

type Refusal = Extract<ImageIntakeResult, { ok: false }>;
type Read = { ok: true; body: Buffer } | Refusal;
type Kind = Pick<Extract<ImageIntakeResult, { ok: true }>, 'contentType' | 'extension'>;

const RAW_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream']);

// Room for boundaries, part headers and the few small text fields a form may carry.
const MULTIPART_OVERHEAD = 64 * 1024;

const KINDS: Record<string, Kind> = {
  png: { contentType: 'image/png', extension: 'png' },
  // An animated PNG is still a PNG to every decoder.
  apng: { contentType: 'image/png', extension: 'png' },
  jpg: { contentType: 'image/jpeg', extension: 'jpg' },
  webp: { contentType: 'image/webp', extension: 'webp' },
};

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_IEND = [0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];
const JPEG_SOI = [0xff, 0xd8, 0xff];
const RIFF = [0x52, 0x49, 0x46, 0x46];
const WEBP = [0x57, 0x45, 0x42, 0x50];

const refuse = (status: Refusal['status'], reason: string): Refusal => ({
  ok: false,
  status,
  reason,
});
const tooLarge = (maxBytes: number) => refuse(413, `image larger than ${maxBytes} bytes`);
const TRUNCATED = refuse(400, 'truncated image');
const NOT_AN_IMAGE = refuse(415, 'not a PNG, JPEG or WebP image');
/**
 * Every client that shows an avatar decodes it: a few kilobytes declaring 60 000 × 60 000 pixels
 * would take gigabytes to draw, in every contact list it appears in. A phone photo (4032 × 3024)
 * fits; anything larger is resized by the app first.
 */
const MAX_SIDE = 4096;
const TOO_MANY_PIXELS = refuse(413, `larger than ${MAX_SIDE} × ${MAX_SIDE} pixels`);
const ABORTED = refuse(400, 'upload aborted');

const noop = (): void => {};

/**
 * Reads an avatar upload (a raw image body, or multipart/form-data with one file field `file`)
 * into memory, holding at most `maxBytes` + 1 bytes of it, and checks from the bytes themselves
 * that it is a complete PNG, JPEG or WebP. The declared type is never trusted. Writes nothing.
 *
 * On a refusal the rest of the body may be left unread: answer it with `connection: close`.
 */
export async function readImageUpload(
  req: IncomingMessage,
  maxBytes: number,
): Promise<ImageIntakeResult> {
  const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const multipart = mediaType === 'multipart/form-data';
  if (!multipart && !RAW_TYPES.has(mediaType)) {
    return refuse(
      415,
      'send image/png, image/jpeg, image/webp, application/octet-stream or multipart/form-data',
    );
  }
  const cap = multipart ? maxBytes + MULTIPART_OVERHEAD : maxBytes;
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > cap) return tooLarge(maxBytes);
  if (req.readableEnded || req.destroyed) return refuse(400, 'request body already consumed');

  const read = multipart ? await readMultipart(req, maxBytes, cap) : await readRaw(req, maxBytes);
  if (!read.ok) return read;
  return checkImage(read.body);
}

/** Wires the request's end, abort and error to `settle`; returns the function that unwires. */
function watchRequest(
  req: IncomingMessage,
  onData: (chunk: Buffer) => void,
  onEnd: () => void,
  settle: (result: Read) => void,
): () => void {
  const onClose = () => {
    if (!req.complete) settle(ABORTED);
  };
  const onError = () => settle(ABORTED);
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
  req.on('error', onError);
  return () => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    req.off('error', onError);
    // A late client abort must not surface as an unhandled 'error'.
    req.on('error', noop);
    req.pause();
  };
}

function readRaw(req: IncomingMessage, maxBytes: number): Promise<Read> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: Read) => {
      if (settled) return;
      settled = true;
      unwire();
      resolve(result);
    };
    const unwire = watchRequest(
      req,
      (chunk) => {
        size += chunk.length;
        if (size > maxBytes) return settle(tooLarge(maxBytes));
        chunks.push(chunk);
      },
      () => settle({ ok: true, body: Buffer.concat(chunks, size) }),
      settle,
    );
  });
}

function readMultipart(req: IncomingMessage, maxBytes: number, cap: number): Promise<Read> {
  return new Promise((resolve) => {
    let form: busboy.Busboy;
    try {
      form = busboy({
        headers: req.headers,
        // busboy flags a file as over the limit once it *reaches* fileSize, so allow one byte
        // more: reaching maxBytes + 1 is then exactly "larger than maxBytes".
        limits: { files: 1, fileSize: maxBytes + 1, fields: 5, parts: 10, fieldSize: 1024 },
      });
    } catch {
      resolve(refuse(400, 'malformed multipart/form-data request'));
      return;
    }
    let file: Buffer[] | null = null;
    let fileSize = 0;
    let received = 0;
    let settled = false;
    const settle = (result: Read) => {
      if (settled) return;
      settled = true;
      unwire();
      form.removeAllListeners();
      form.on('error', noop);
      // Not from inside busboy's own callbacks (it still touches its state after emitting).
      process.nextTick(() => form.destroy());
      resolve(result);
    };

    form.on('file', (name, stream) => {
      // Destroying the form fails any file still open; that is expected once we have settled.
      stream.on('error', noop);
      if (name !== 'file' || file) {
        stream.resume();
        return;
      }
      const parts: Buffer[] = (file = []);
      stream.on('data', (chunk: Buffer) => {
        fileSize += chunk.length;
        parts.push(chunk);
      });
      stream.on('limit', () => settle(tooLarge(maxBytes)));
    });
    form.on('filesLimit', () => settle(refuse(400, 'send exactly one file')));
    form.on('fieldsLimit', () => settle(refuse(400, 'too many form fields')));
    form.on('partsLimit', () => settle(refuse(400, 'too many form parts')));
    form.on('error', () => settle(refuse(400, 'malformed multipart/form-data body')));
    form.on('close', () =>
      settle(
        file
          ? { ok: true, body: Buffer.concat(file, fileSize) }
          : refuse(400, 'missing file field "file"'),
      ),
    );

    const unwire = watchRequest(
      req,
      (chunk) => {
        received += chunk.length;
        if (received > cap) return settle(tooLarge(maxBytes));
        if (!form.write(chunk)) {
          req.pause();
          form.once('drain', () => {
            if (!settled) req.resume();
          });
        }
      },
      () => form.end(),
      settle,
    );
  });
}

async function checkImage(body: Buffer): Promise<ImageIntakeResult> {
  if (body.length === 0) return TRUNCATED;
  const sniffed = await fileTypeFromBuffer(body).catch(() => undefined);
  const kind = sniffed ? KINDS[sniffed.ext] : undefined;
  if (!kind) return startsLikeOurs(body) ? TRUNCATED : NOT_AN_IMAGE;
  if (!isComplete(kind.extension, body)) return TRUNCATED;
  const size = dimensionsOf(body);
  if (!size) return TRUNCATED; // no readable header: nobody could draw it either
  if (size.width > MAX_SIDE || size.height > MAX_SIDE) return TOO_MANY_PIXELS;
  return { ok: true, body, ...kind };
}

/** The dimensions its header declares (image-size reads only the header). */
function dimensionsOf(body: Buffer): { width: number; height: number } | undefined {
  try {
    const { width, height } = imageSize(body);
    return { width, height };
  } catch {
    return undefined;
  }
}

/** Whether `body` has `prefix` at `at`; a body that ends inside the prefix matches from 3 bytes. */
function startsWith(body: Buffer, prefix: number[], at = 0): boolean {
  const n = Math.min(prefix.length, body.length - at);
  if (n < Math.min(3, prefix.length)) return false;
  return prefix.slice(0, n).every((byte, i) => body[at + i] === byte);
}

/** Too short or too damaged for the sniffer, but begun as one of the accepted formats. */
function startsLikeOurs(body: Buffer): boolean {
  if (startsWith(body, PNG_SIGNATURE) || startsWith(body, JPEG_SOI)) return true;
  return startsWith(body, RIFF) && (body.length < 12 || startsWith(body, WEBP, 8));
}

function isComplete(extension: Kind['extension'], body: Buffer): boolean {
  switch (extension) {
    case 'png':
      return (
        body.length >= PNG_SIGNATURE.length + PNG_IEND.length &&
        startsWith(body, PNG_IEND, body.length - PNG_IEND.length)
      );
    case 'jpg':
      return body.length >= 4 && body[body.length - 2] === 0xff && body[body.length - 1] === 0xd9;
    case 'webp':
      return body.length >= 12 && body.readUInt32LE(4) + 8 === body.length;
  }
}
