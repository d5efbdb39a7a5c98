import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { BlobStore, StoredBlob } from '@mvp/api';

const KEY_PATTERN = /^[a-z0-9][a-z0-9/_-]{0,200}\.(png|jpe?g|webp)$/;

export type S3BlobStoreOptions = {
  /** Omit for AWS itself; set for MinIO and other S3-compatible stores. */
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `true` for MinIO: `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>/<key>`. */
  forcePathStyle: boolean;
};

function assertKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.includes('..')) throw new Error(`invalid blob key: ${key}`);
}

function etagOf(body: Uint8Array): string {
  return `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
}

function isNotFound(error: unknown): boolean {
  if (error instanceof NoSuchKey) return true;
  // Some S3-compatible servers answer a bare 404 without the NoSuchKey code.
  return error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404;
}

/**
 * The production BlobStore on any S3-compatible service. Our ETag (SHA-256 based, unlike S3's
 * MD5 one) travels as `x-amz-meta-etag` for other readers; `get` recomputes it from the bytes.
 */
export function createS3BlobStore(options: S3BlobStoreOptions): BlobStore {
  const { bucket } = options;
  const client = new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    // The SDK's default CRC trailers are not understood by every S3-compatible server.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    async put(key, body, contentType): Promise<StoredBlob> {
      assertKey(key);
      const etag = etagOf(body);
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          ContentLength: body.byteLength,
          Metadata: { etag },
        }),
      );
      return { key, contentType, size: body.byteLength, etag };
    },

    async get(key) {
      assertKey(key);
      try {
        const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (!object.Body) return null;
        const body = await object.Body.transformToByteArray();
        return {
          body,
          contentType: object.ContentType ?? 'application/octet-stream',
          etag: etagOf(body),
          size: body.byteLength,
        };
      } catch (error) {
        if (isNotFound(error)) return null;
        throw error;
      }
    },

    async delete(key) {
      assertKey(key);
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
  };
}
