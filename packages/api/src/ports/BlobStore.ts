/** What a store answers after a write; `etag` is quoted, ready for an HTTP `ETag` header. */
export type StoredBlob = { key: string; contentType: string; size: number; etag: string };

/**
 * Opaque bytes by key (avatars today). Keys look like `avatars/<userId>/<random>.webp` and must
 * match `/^[a-z0-9][a-z0-9/_-]{0,200}\.(png|jpe?g|webp)$/` without `..`; every adapter refuses
 * anything else by throwing, so a key built from user input can never escape its namespace.
 * The ETag is `"` + the first 32 hex chars of the body's SHA-256 + `"`, the same in every adapter.
 */
export type BlobStore = {
  /** Writes or overwrites the blob at `key`. */
  put(key: string, body: Uint8Array, contentType: string): Promise<StoredBlob>;
  /** Null when nothing is stored at `key`. */
  get(
    key: string,
  ): Promise<{ body: Uint8Array; contentType: string; etag: string; size: number } | null>;
  /** Removes the blob; a missing key is not an error. */
  delete(key: string): Promise<void>;
};
