import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore, StoredBlob } from '@mvp/api';

const KEY_PATTERN = /^[a-z0-9][a-z0-9/_-]{0,200}\.(png|jpe?g|webp)$/;

const TYPE_BY_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

type Sidecar = { contentType: string; etag: string; size: number };

function assertKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.includes('..')) throw new Error(`invalid blob key: ${key}`);
}

function etagOf(body: Uint8Array): string {
  return `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** Temp file in the same directory, then rename: readers see old or new bytes, never half. */
async function writeAtomically(target: string, data: Uint8Array | string): Promise<void> {
  // `.tmp` can never be a valid key, so a leftover temp file never shadows a blob.
  const temp = `${target}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    await writeFile(temp, data);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * The embedded BlobStore: `<rootDir>/<key>` holds the bytes, `<rootDir>/<key>.json` the content
 * type. The ETag handed out by `get` is computed from the bytes actually read, so it matches them
 * even while an overwrite of the same key is racing.
 */
export function createLocalBlobStore(rootDir: string): BlobStore {
  const root = path.resolve(rootDir);

  const locate = (key: string): string => {
    assertKey(key);
    const file = path.resolve(root, key);
    if (!file.startsWith(root + path.sep)) throw new Error(`blob key escapes the store: ${key}`);
    return file;
  };

  return {
    async put(key, body, contentType): Promise<StoredBlob> {
      const file = locate(key);
      const stored: StoredBlob = { key, contentType, size: body.byteLength, etag: etagOf(body) };
      const sidecar: Sidecar = { contentType, etag: stored.etag, size: stored.size };
      await mkdir(path.dirname(file), { recursive: true });
      // Sidecar first: a crash in between leaves metadata without bytes, which reads as missing.
      await writeAtomically(`${file}.json`, JSON.stringify(sidecar));
      await writeAtomically(file, body);
      return stored;
    },

    async get(key) {
      const file = locate(key);
      let body: Buffer;
      try {
        body = await readFile(file);
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
      let contentType =
        TYPE_BY_EXTENSION[path.extname(file).slice(1)] ?? 'application/octet-stream';
      try {
        const sidecar = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Partial<Sidecar>;
        if (typeof sidecar.contentType === 'string') contentType = sidecar.contentType;
      } catch (error) {
        if (!isMissing(error) && !(error instanceof SyntaxError)) throw error;
      }
      const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
      return { body: bytes, contentType, etag: etagOf(bytes), size: bytes.byteLength };
    },

    async delete(key) {
      const file = locate(key);
      // Bytes first, so that no moment exists where bytes are readable without their sidecar.
      await rm(file, { force: true });
      await rm(`${file}.json`, { force: true });
    },
  };
}
