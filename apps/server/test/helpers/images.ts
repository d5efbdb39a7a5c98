import { crc32, deflateSync } from 'node:zlib';

/** Minimal valid images, built by hand (each checked once with dwebp/djpeg to decode 1×1). */

export function pngChunk(type: string, data: Uint8Array): Buffer {
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/**
 * 1×1 RGBA: signature, IHDR, one IDAT with a filter byte and one pixel, IEND. `padding` bytes of
 * a private ancillary chunk make it as large as a test needs. `declared` puts other dimensions in
 * the header (the pixel data stays one pixel: a decompression bomb's header, as far as a server
 * that reads headers can tell).
 */
export function png(padding = 0, declared = { width: 1, height: 1 }): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(declared.width, 0);
  ihdr.writeUInt32BE(declared.height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // bit depth 8, RGBA, deflate, adaptive filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.from([0, 0x33, 0x66, 0x99, 0xff]))),
    ...(padding ? [pngChunk('prVt', Buffer.alloc(padding, 0x5a))] : []),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
export const PNG = png();

/**
 * 1×1 grey baseline JPEG: a flat quantisation table and Huffman tables with a single one-bit code
 * each, so the scan is just "DC diff 0, end of block" (bits 00, padded with ones).
 */
// prettier-ignore
export const JPEG = Buffer.from([
  0xff, 0xd8, // SOI
  0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array<number>(64).fill(1), // DQT
  0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, // SOF0 1×1 grey
  0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, ...new Array<number>(15).fill(0), 0x00, // DHT DC: 0 -> '0'
  0xff, 0xc4, 0x00, 0x14, 0x10, 0x01, ...new Array<number>(15).fill(0), 0x00, // DHT AC: EOB -> '0'
  0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, // SOS
  0x3f, // entropy-coded data
  0xff, 0xd9, // EOI
]);

/** JPEG's header declaring `width` × `height` (the scan still holds one pixel's worth). */
export function jpegDeclaring(width: number, height: number): Buffer {
  const bytes = Buffer.from(JPEG);
  const sof = bytes.indexOf(Buffer.from([0xff, 0xc0]));
  bytes.writeUInt16BE(height, sof + 5);
  bytes.writeUInt16BE(width, sof + 7);
  return bytes;
}

/** 1×1 transparent lossless WebP (RIFF size 26 = 34 bytes - 8). */
export const WEBP = Buffer.concat([
  Buffer.from('RIFF', 'latin1'),
  Buffer.from([0x1a, 0x00, 0x00, 0x00]),
  Buffer.from('WEBPVP8L', 'latin1'),
  Buffer.from([0x0d, 0x00, 0x00, 0x00]),
  Buffer.from([0x2f, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00]),
]);

/** 1×1 GIF89a. */
export const GIF = Buffer.from(
  'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7',
  'base64',
);

export const IMAGES = [
  { name: 'png', bytes: PNG, contentType: 'image/png', extension: 'png' },
  { name: 'jpeg', bytes: JPEG, contentType: 'image/jpeg', extension: 'jpg' },
  { name: 'webp', bytes: WEBP, contentType: 'image/webp', extension: 'webp' },
] as const;
